"""Read and write the files users hand to `lammps-phase classify` and the files our tools write.

Formats: LAMMPS text dumps (orthogonal and triclinic, any columns), LAMMPS data files, extended XYZ;
each may be gzip-compressed (detected by content, not by name). Atom blocks are parsed by numpy's C
parser in one call per frame, and dumps are read frame by frame, so a 10^6-atom frame costs about a
second and a 10 GB trajectory never sits in memory at once.

Box convention is LAMMPS's: lower corner `boxlo`, upper corner `boxhi` and tilts (xy, xz, yz), so the
cell rows are a = (lx, 0, 0), b = (xy, ly, 0), c = (xz, yz, lz). Cells in other orientations
(extended XYZ, `write_lammps_data`) are rotated into that form together with the positions.

Modules: `frame` (the Frame), `atom_block` (atom lines <-> columns), `text_files` (opening, gzip, read
errors), one per format (`dump`, `lammps_data`, `extxyz`) and `detect` (which format, `read_frames`).
"""

from lammps_phase.inference.formats.atom_block import MAX_ATOMS
from lammps_phase.inference.formats.detect import SUPPORTED_FORMATS, count_frames, detect_format, read_frames
from lammps_phase.inference.formats.dump import DumpWriter, read_dump
from lammps_phase.inference.formats.extxyz import read_extxyz
from lammps_phase.inference.formats.frame import Frame, check_box
from lammps_phase.inference.formats.lammps_data import read_data, write_lammps_data
from lammps_phase.inference.formats.text_files import PathLike

__all__ = [
    "MAX_ATOMS",
    "SUPPORTED_FORMATS",
    "DumpWriter",
    "Frame",
    "PathLike",
    "check_box",
    "count_frames",
    "detect_format",
    "read_data",
    "read_dump",
    "read_extxyz",
    "read_frames",
    "write_lammps_data",
]
