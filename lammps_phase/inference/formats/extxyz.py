"""Extended XYZ (as ASE and OVITO write it): frames with a Lattice and a Properties layout in each comment line.

A Lattice in any orientation is rotated into LAMMPS's lower-triangular form, and positions, velocities and
forces rotate with it, so distances and fractional coordinates keep; a frame without a Lattice is
non-periodic, its box the atoms' bounding box.
"""

from __future__ import annotations

import re
from collections import deque
from itertools import islice
from typing import Iterator

import numpy as np

from lammps_phase.cell import lammps_cell
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.formats.atom_block import MAX_ATOMS, parse_block
from lammps_phase.inference.formats.frame import Frame
from lammps_phase.inference.formats.text_files import PathLike, open_text, reading

ATOM_COUNT_LINE = re.compile(r"^\s*\d+\s*$")  # the first line of every frame
_KEY_VALUE = re.compile(r"""(\w+)\s*=\s*("[^"]*"|'[^']*'|\{[^}]*\}|\S+)""")
_VECTOR_PROPERTIES = {"pos": ("x", "y", "z"), "velo": ("vx", "vy", "vz"), "vel": ("vx", "vy", "vz"),
                      "velocities": ("vx", "vy", "vz"), "forces": ("fx", "fy", "fz"), "force": ("fx", "fy", "fz")}
_ROTATED_PROPERTIES = ("velo", "vel", "velocities", "forces", "force")


def read_extxyz(path: PathLike) -> Iterator[Frame]:
    """Frames of an extended XYZ file; any lattice is rotated (with positions, velocities, forces) to LAMMPS form."""
    with reading(path), open_text(path) as handle:
        frames = 0
        while True:
            line = handle.readline()
            if not line:
                break
            if not line.strip():
                continue
            where = f"{path}: frame {frames + 1}"
            if not ATOM_COUNT_LINE.match(line):
                raise LammpsPhaseError(f"{where}: expected the atom count, found {line.strip()[:60]!r}")
            natoms = int(line)
            if natoms > MAX_ATOMS:
                raise LammpsPhaseError(f"{where}: atom count {natoms} is larger than any file can hold "
                                       "(the frame header is damaged)")
            comment = handle.readline()
            if not comment:
                raise LammpsPhaseError(f"{where} is truncated: file ends before the comment line")
            lines = list(islice(handle, natoms))
            if len(lines) < natoms:
                raise LammpsPhaseError(f"{where} is truncated: expected {natoms} atom lines, found {len(lines)}")
            yield _extxyz_frame(comment, lines, frames, where)
            frames += 1
    if frames == 0:
        raise LammpsPhaseError(f"{path}: file is empty")


def _extxyz_frame(comment: str, lines: list[str], frame_index: int, where: str) -> Frame:
    info = {key.lower(): value.strip("\"'{}") for key, value in _KEY_VALUE.findall(comment)}
    names, kinds, vectors = _extxyz_layout(info.get("properties", "species:S:1:pos:R:3"), where)
    columns = parse_block(lines, names, kinds, where)
    timestep = frame_index
    for key in ("timestep", "step", "time_step"):
        if key in info and re.fullmatch(r"[+-]?\d+", info[key]):
            timestep = int(info[key])
            break

    if "lattice" not in info:
        positions = np.column_stack([columns[a] for a in ("x", "y", "z")]) if "x" in columns else np.zeros((0, 3))
        lo = positions.min(axis=0) if len(positions) else np.zeros(3)
        hi = positions.max(axis=0) if len(positions) else np.zeros(3)
        return Frame(timestep, lo, hi, np.zeros(3), (False, False, False), columns, ("ff", "ff", "ff"))

    try:
        lattice = np.array([float(v) for v in info["lattice"].replace(",", " ").split()]).reshape(3, 3)
    except ValueError as exc:
        raise LammpsPhaseError(f"{where}: Lattice must hold 9 numbers, found {info['lattice']!r}") from exc
    origin = np.zeros(3)
    if "origin" in info:
        try:
            origin = np.array([float(v) for v in info["origin"].replace(",", " ").split()]).reshape(3)
        except ValueError:
            raise LammpsPhaseError(f"{where}: Origin must hold 3 numbers, found {info['origin']!r}") from None
    pbc = (True, True, True)
    if "pbc" in info:
        flags = info["pbc"].split()
        pbc = tuple(flag in ("T", "True", "true", "1") for flag in flags)
        if len(pbc) != 3:
            raise LammpsPhaseError(f"{where}: pbc must hold 3 flags, found {info['pbc']!r}")
    cell, rotation = lammps_cell(lattice, where)
    for prop, axes in vectors.items():
        vec = np.column_stack([columns[a] for a in axes])
        if prop == "pos":
            vec = (vec - origin) @ rotation
        elif prop in _ROTATED_PROPERTIES:
            vec = vec @ rotation
        else:
            continue
        for k, axis in enumerate(axes):
            columns[axis] = vec[:, k]
    lengths = np.diag(cell)
    return Frame(timestep, np.zeros(3), lengths.copy(), np.array([cell[1, 0], cell[2, 0], cell[2, 1]]),
                 pbc, columns, tuple("pp" if p else "ff" for p in pbc))


def _extxyz_layout(properties: str, where: str) -> tuple[list[str], list[str], dict[str, tuple[str, ...]]]:
    fields = properties.split(":")
    if len(fields) % 3:
        raise LammpsPhaseError(f"{where}: Properties must be name:type:count triples, found {properties!r}")
    names: list[str] = []
    kinds: list[str] = []
    vectors: dict[str, tuple[str, ...]] = {}
    kind_of = {"S": "s", "R": "f", "I": "i", "L": "b"}
    for k in range(0, len(fields), 3):
        name, code, count_text = fields[k], fields[k + 1].upper(), fields[k + 2]
        if not re.fullmatch(r"\d{1,4}", count_text) or int(count_text) < 1:
            raise LammpsPhaseError(f"{where}: property {name!r} has count {count_text!r}; give a whole number "
                                   "from 1 (e.g. pos:R:3)")
        count = int(count_text)
        if code not in kind_of:
            raise LammpsPhaseError(f"{where}: property {name!r} has unknown type {code!r} (use S, R, I or L)")
        if name == "species" and count == 1:
            sub = ("element",)
        elif count == 3 and name in _VECTOR_PROPERTIES:
            sub = _VECTOR_PROPERTIES[name]
            vectors[name] = sub
        elif count == 1:
            sub = (name,)
        else:
            sub = tuple(f"{name}[{i + 1}]" for i in range(count))
        names.extend(sub)
        kinds.extend([kind_of[code]] * count)
    if "pos" not in vectors:
        raise LammpsPhaseError(f"{where}: Properties has no 'pos:R:3' entry, so atoms have no coordinates")
    return names, kinds, vectors


def count_extxyz_frames(path: PathLike) -> int | None:
    """Frames by reading only the atom-count lines (skipping atom lines unparsed); None when a count is wrong."""
    count = 0
    with open_text(path, errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            if not ATOM_COUNT_LINE.match(line):
                return None
            if int(line) > MAX_ATOMS:
                return None
            deque(islice(handle, int(line) + 1), maxlen=0)
            count += 1
    return count
