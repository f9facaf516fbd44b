"""Which format a file is in, judged from its content, and the one entry point that reads any of them.

Users pass files with any name (.lammpstrj, .atom, .gz, none), so the first lines decide, never the suffix.
"""

from __future__ import annotations

import re
from itertools import islice
from typing import Iterator

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.formats.dump import count_dump_frames, read_dump
from lammps_phase.inference.formats.extxyz import ATOM_COUNT_LINE, count_extxyz_frames, read_extxyz
from lammps_phase.inference.formats.frame import Frame
from lammps_phase.inference.formats.lammps_data import read_data
from lammps_phase.inference.formats.text_files import SUPPORTED_TEXT, PathLike, open_text, reading

SUPPORTED_FORMATS = ("dump", "data", "extxyz")

_ATOMS_HEADER = re.compile(r"^\s*\d+\s+atoms\s*(#.*)?$")
_XLO_HEADER = re.compile(r"\sxlo\s+xhi")


def detect_format(path: PathLike) -> str:
    """'dump', 'data' or 'extxyz', judged from the first non-empty lines (gzip is opened transparently)."""
    with reading(path), open_text(path, errors="replace") as handle:
        head = [line for line in islice(handle, 64)]
    lines = [line for line in head if line.strip()]
    if not lines:
        raise LammpsPhaseError(f"{path}: file is empty")
    first = lines[0].strip()
    if first.startswith("ITEM:"):
        return "dump"
    looks_like_data = any(_ATOMS_HEADER.match(line) for line in lines[1:]) and any(
        _XLO_HEADER.search(line) for line in lines[1:]
    )
    if looks_like_data:
        return "data"
    if ATOM_COUNT_LINE.match(first):
        return "extxyz"
    raise LammpsPhaseError(
        f"{path}: unknown file format (first line {first[:60]!r}); supported: {SUPPORTED_TEXT}. "
        "Binary dumps must first be converted with LAMMPS's tools/binary2txt"
    )


def read_frames(path: PathLike, fmt: str | None = None) -> Iterator[Frame]:
    """Frames of any supported file, lazily; the format is detected now, so a bad file fails at the call."""
    fmt = detect_format(path) if fmt is None else fmt
    if fmt == "dump":
        return read_dump(path)
    if fmt == "extxyz":
        return read_extxyz(path)
    if fmt == "data":
        return iter([read_data(path)])
    raise LammpsPhaseError(f"unknown format {fmt!r} for {path}; use one of {', '.join(SUPPORTED_FORMATS)}")


def count_frames(path: PathLike) -> int | None:
    """Number of frames by a cheap scan (for progress bars); None when the format is unknown."""
    try:
        fmt = detect_format(path)
    except LammpsPhaseError:
        return None
    if fmt == "data":
        return 1
    try:  # a damaged file is reported by the reader, at the frame where it fails
        with reading(path):
            if fmt == "dump":
                return count_dump_frames(path)
            return count_extxyz_frames(path)
    except LammpsPhaseError:
        return None
