"""LAMMPS data files (`read_data` input): read one as a Frame, write one from positions and a cell.

Both directions use LAMMPS's own layout (header counts and box, Masses, `Atoms # style`) so LAMMPS reads what
we write; sections a Frame does not need (Velocities, Bonds, ...) are skipped, not rejected.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np

from lammps_phase.atomic_write import atomic_path
from lammps_phase.cell import lammps_cell
from lammps_phase.elements import ATOMIC_MASSES
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.formats.atom_block import column_kind, parse_block, write_rows
from lammps_phase.inference.formats.frame import Frame, check_box
from lammps_phase.inference.formats.text_files import PathLike, open_for_writing, open_text, reading


# Column layouts of the Atoms section per atom style (image flags ix iy iz may follow).
_ATOM_STYLES: dict[str, tuple[str, ...]] = {
    "atomic": ("id", "type", "x", "y", "z"),
    "charge": ("id", "type", "q", "x", "y", "z"),
    "full": ("id", "mol", "type", "q", "x", "y", "z"),
    "molecular": ("id", "mol", "type", "x", "y", "z"),
    "bond": ("id", "mol", "type", "x", "y", "z"),
    "angle": ("id", "mol", "type", "x", "y", "z"),
}
# Without a style comment, the value count decides: 5/8 atomic, 6/9 charge, 7/10 full.
_STYLE_BY_COUNT = {5: "atomic", 6: "charge", 7: "full"}

_HEADER_PATTERNS = {
    "atoms": re.compile(r"^(\d+)\s+atoms$"),
    "atom types": re.compile(r"^(\d+)\s+atom\s+types$"),
    "x": re.compile(r"^(\S+)\s+(\S+)\s+xlo\s+xhi$"),
    "y": re.compile(r"^(\S+)\s+(\S+)\s+ylo\s+yhi$"),
    "z": re.compile(r"^(\S+)\s+(\S+)\s+zlo\s+zhi$"),
    "tilt": re.compile(r"^(\S+)\s+(\S+)\s+(\S+)\s+xy\s+xz\s+yz$"),
}


def read_data(path: PathLike) -> Frame:
    """A LAMMPS data file as a Frame (timestep 0, fully periodic): header, Masses and Atoms sections."""
    with reading(path), open_text(path) as handle:
        lines = handle.read().splitlines()
    if not any(line.strip() for line in lines):
        raise LammpsPhaseError(f"{path}: file is empty")
    header: dict[str, tuple[str, ...]] = {}
    index = 1  # line 0 is the title
    while index < len(lines):
        content = lines[index].split("#")[0].strip()
        if content and not re.match(r"^[-+.\d]", content):
            break  # first section keyword
        for key, pattern in _HEADER_PATTERNS.items():
            match = pattern.match(content)
            if match:
                header[key] = match.groups()
        index += 1
    for key, label in (("atoms", "'N atoms'"), ("x", "'xlo xhi'"), ("y", "'ylo yhi'"), ("z", "'zlo zhi'")):
        if key not in header:
            raise LammpsPhaseError(f"{path}: data file header lacks the {label} line")
    try:
        natoms = int(header["atoms"][0])
        boxlo = np.array([float(header[axis][0]) for axis in "xyz"])
        boxhi = np.array([float(header[axis][1]) for axis in "xyz"])
        tilt = np.array([float(v) for v in header["tilt"]]) if "tilt" in header else np.zeros(3)
    except ValueError as exc:
        raise LammpsPhaseError(f"{path}: unreadable number in the data file header ({exc})") from exc
    check_box(boxlo, boxhi, tilt, f"{path}: data file header")
    ntypes = int(header["atom types"][0]) if "atom types" in header else 0

    masses: dict[int, float] = {}
    columns: dict[str, np.ndarray] | None = None
    while index < len(lines):
        raw = lines[index]
        keyword = raw.split("#")[0].strip()
        index += 1
        if not keyword:
            continue
        body_start = _skip_blank(lines, index)
        if keyword == "Atoms":
            columns = _read_atoms_section(lines, body_start, natoms, raw, path)
            index = body_start + natoms
        elif keyword == "Masses":
            for line in lines[body_start : body_start + ntypes]:
                values = line.split("#")[0].split()
                if len(values) >= 2:
                    try:
                        masses[int(values[0])] = float(values[1])
                    except ValueError:
                        raise LammpsPhaseError(f"{path}: unreadable Masses line {line.strip()[:60]!r}: "
                                               "give 'type mass', e.g. '1 28.085'") from None
            index = body_start + ntypes
        else:
            index = body_start
            while index < len(lines) and lines[index].strip():
                index += 1  # body of a section we do not use ends at the next blank line
    if columns is None:
        raise LammpsPhaseError(f"{path}: data file has no 'Atoms' section")
    return Frame(timestep=0, boxlo=boxlo, boxhi=boxhi, tilt=tilt, pbc=(True, True, True), columns=columns,
                 boundary=("pp", "pp", "pp"), masses=masses)


def _skip_blank(lines: list[str], index: int) -> int:
    while index < len(lines) and not lines[index].strip():
        index += 1
    return index


def _read_atoms_section(lines: list[str], start: int, natoms: int, keyword_line: str, path: PathLike
                        ) -> dict[str, np.ndarray]:
    body = lines[start : start + natoms]
    complete = [line for line in body if line.split("#")[0].strip()]
    if len(body) < natoms or len(complete) < natoms:
        found = next((k for k, line in enumerate(body) if not line.split("#")[0].strip()), len(body))
        raise LammpsPhaseError(
            f"{path}: Atoms section is truncated: expected {natoms} atom lines, found {found}"
        )
    if natoms == 0:
        return {name: np.empty(0, dtype=np.float64) for name in _ATOM_STYLES["atomic"]}
    nvalues = len(body[0].split("#")[0].split())
    comment = keyword_line.split("#", 1)[1].strip() if "#" in keyword_line else ""
    if comment:
        style = comment.split()[0]
        if style not in _ATOM_STYLES:
            raise LammpsPhaseError(
                f"{path}: atom style {style!r} is not supported; supported: {', '.join(_ATOM_STYLES)}"
            )
    else:
        style = _STYLE_BY_COUNT.get(nvalues if nvalues in _STYLE_BY_COUNT else nvalues - 3, "")
        if not style:
            raise LammpsPhaseError(
                f"{path}: cannot infer the atom style from {nvalues} values per Atoms line; "
                "add the style comment, e.g. 'Atoms # full'"
            )
    names = list(_ATOM_STYLES[style])
    if nvalues == len(names) + 3:
        names += ["ix", "iy", "iz"]
    elif nvalues != len(names):
        raise LammpsPhaseError(
            f"{path}: Atoms lines have {nvalues} values but style {style!r} needs {len(names)} "
            f"({' '.join(names)}) or {len(names) + 3} with image flags"
        )
    return parse_block(body, names, [column_kind(n) for n in names], f"{path}: Atoms section", comments="#")


def write_lammps_data(
    path: PathLike,
    positions: np.ndarray,
    cell: np.ndarray,
    species: Sequence[str] | np.ndarray,
    type_map: Sequence[str],
    masses: Mapping[str, float] | Sequence[float] | None = None,
    charges: np.ndarray | Mapping[str, float] | None = None,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    atom_style: str = "atomic",
) -> None:
    """Write a LAMMPS data file (`read_data` input): atom style atomic or charge, orthogonal or triclinic.

    A cell not in LAMMPS's lower-triangular form is rotated into it together with the positions (about origin).
    Types follow type_map order (type_map[0] is type 1). masses: per element or per type; default: standard
    atomic weights. charges: per atom or per element; required for atom_style 'charge'.
    """
    if atom_style not in ("atomic", "charge"):
        raise LammpsPhaseError(f"atom_style {atom_style!r} is not supported for writing; use 'atomic' or 'charge'")
    positions = np.asarray(positions, dtype=np.float64)
    species = np.asarray(species).astype(str)
    natoms = len(positions)
    if positions.shape != (natoms, 3) or species.shape != (natoms,):
        raise LammpsPhaseError(
            f"{path}: positions must be (N, 3) and species (N,), got {positions.shape} and {species.shape}"
        )
    type_map = [str(name) for name in type_map]
    unknown = sorted(set(species.tolist()) - set(type_map))
    if unknown:
        raise LammpsPhaseError(
            f"{path}: species {' '.join(unknown)} are not in the type map {' '.join(type_map)!r}; add them to it"
        )
    types = _per_atom(species, {name: k + 1 for k, name in enumerate(type_map)}).astype(np.int64)
    type_masses = _type_masses(type_map, masses, path)
    charge_values = _atom_charges(charges, species, type_map, atom_style, path)

    lammps_form, rotation = lammps_cell(cell, str(path))
    origin = np.asarray(origin, dtype=np.float64)
    positions = origin + (positions - origin) @ rotation
    lengths = np.diag(lammps_form)
    xy, xz, yz = lammps_form[1, 0], lammps_form[2, 0], lammps_form[2, 1]

    with atomic_path(path) as tmp, open_for_writing(tmp) as handle:
        handle.write(f"LAMMPS data file written by lammps-phase (atom_style {atom_style})\n\n")
        handle.write(f"{natoms} atoms\n{len(type_map)} atom types\n\n")
        for k, axis in enumerate("xyz"):
            handle.write(f"{origin[k]:.16g} {origin[k] + lengths[k]:.16g} {axis}lo {axis}hi\n")
        if xy != 0 or xz != 0 or yz != 0:
            handle.write(f"{xy:.16g} {xz:.16g} {yz:.16g} xy xz yz\n")
        handle.write("\nMasses\n\n")
        for k, name in enumerate(type_map):
            handle.write(f"{k + 1} {type_masses[k]:.10g} # {name}\n")
        handle.write(f"\nAtoms # {atom_style}\n\n")
        ids = np.arange(1, natoms + 1, dtype=np.int64)
        if atom_style == "charge":
            arrays = [ids, types, charge_values, positions[:, 0], positions[:, 1], positions[:, 2]]
            row = "%d %d %.10g %.16g %.16g %.16g\n"
        else:
            arrays = [ids, types, positions[:, 0], positions[:, 1], positions[:, 2]]
            row = "%d %d %.16g %.16g %.16g\n"
        write_rows(handle, arrays, row)


def _per_atom(species: np.ndarray, value_of: Mapping[str, float]) -> np.ndarray:
    """Per-atom values looked up by element name, vectorised over the distinct names."""
    names, inverse = np.unique(species, return_inverse=True)
    return np.array([value_of[name] for name in names.tolist()], dtype=np.float64)[inverse.reshape(-1)]


def _type_masses(type_map: list[str], masses: Mapping[str, float] | Sequence[float] | None, path: PathLike
                 ) -> list[float]:
    if masses is not None and not isinstance(masses, Mapping):
        values = [float(m) for m in masses]
        if len(values) != len(type_map):
            raise LammpsPhaseError(f"{path}: {len(values)} masses given for {len(type_map)} atom types")
        return values
    given = dict(masses or {})
    missing = [name for name in type_map if name not in given and name not in ATOMIC_MASSES]
    if missing:
        raise LammpsPhaseError(
            f"{path}: no mass known for {' '.join(missing)}; pass masses={{'{missing[0]}': <mass in g/mol>}}"
        )
    return [float(given.get(name, ATOMIC_MASSES.get(name, 0.0))) for name in type_map]


def _atom_charges(charges: np.ndarray | Mapping[str, float] | None, species: np.ndarray, type_map: list[str],
                  atom_style: str, path: PathLike) -> np.ndarray | None:
    if atom_style == "atomic":
        if charges is not None:
            raise LammpsPhaseError(f"{path}: charges were given but atom_style is 'atomic'; use atom_style='charge'")
        return None
    if charges is None:
        raise LammpsPhaseError(f"{path}: atom_style 'charge' needs charges (per atom, or per element like "
                               "{'Si': 2.4, 'O': -1.2})")
    if isinstance(charges, Mapping):
        missing = [name for name in type_map if name not in charges]
        if missing:
            raise LammpsPhaseError(f"{path}: no charge given for {' '.join(missing)}")
        return _per_atom(species, {name: float(charges[name]) for name in type_map})
    values = np.asarray(charges, dtype=np.float64)
    if values.shape != species.shape:
        raise LammpsPhaseError(f"{path}: charges must have one value per atom, got shape {values.shape}")
    return values
