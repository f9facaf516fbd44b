"""LAMMPS text dumps: read any `dump atom` / `dump custom` file frame by frame, and write frames as one.

Reading is lazy, so a 10 GB trajectory never sits in memory at once. Triclinic dumps store the bounding box of
the tilted cell (LAMMPS dump doc, "triclinic box"); both directions convert it to and from boxlo/boxhi/tilt.
"""

from __future__ import annotations

import contextlib
from itertools import islice
from typing import IO, Iterator, Mapping

import numpy as np

from lammps_phase.atomic_write import PendingFile
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.formats.atom_block import MAX_ATOMS, column_kind, parse_block, write_rows
from lammps_phase.inference.formats.frame import COORDINATE_SETS, Frame, check_box
from lammps_phase.inference.formats.text_files import PathLike, open_binary, open_for_writing, open_text, reading

_FRAME_START = b"ITEM: TIMESTEP"


def read_dump(path: PathLike) -> Iterator[Frame]:
    """Frames of a LAMMPS text dump (`dump atom` or `dump custom`), one at a time."""
    with reading(path), open_text(path) as handle:
        frames = 0
        while True:
            header = _read_dump_header(handle, path, frames)
            if header is None:
                break
            timestep, natoms, bounds_line, bounds, names = header
            where = f"{path}: frame at timestep {timestep}"
            lines = list(islice(handle, natoms))
            if len(lines) < natoms:
                raise LammpsPhaseError(f"{where} is truncated: expected {natoms} atom lines, found {len(lines)}")
            columns = parse_block(lines, names, [column_kind(n) for n in names], where)
            boxlo, boxhi, tilt, boundary = _dump_box(bounds_line, bounds, where)
            frames += 1
            yield Frame(
                timestep=timestep,
                boxlo=boxlo,
                boxhi=boxhi,
                tilt=tilt,
                pbc=tuple("p" in flag for flag in boundary),
                columns=columns,
                boundary=boundary,
            )
    if frames == 0:
        raise LammpsPhaseError(f"{path}: file is empty (no 'ITEM: TIMESTEP' frame)")


def _read_dump_header(handle: IO[str], path: PathLike, frames_read: int
                      ) -> tuple[int, int, str, list[list[float]], list[str]] | None:
    """Header items up to and including 'ITEM: ATOMS'; None at a clean end of file."""
    timestep: int | None = None
    natoms: int | None = None
    bounds_line: str | None = None
    bounds: list[list[float]] | None = None
    started = False

    def where() -> str:
        if timestep is not None:
            return f"{path}: frame at timestep {timestep}"
        return f"{path}: frame {frames_read + 1}"

    def value_line(item: str) -> str:
        line = handle.readline()
        if not line:
            raise LammpsPhaseError(f"{where()} is truncated: file ends after 'ITEM: {item}'")
        return line

    while True:
        line = handle.readline()
        if not line:
            if not started:
                return None
            raise LammpsPhaseError(f"{where()} is truncated: header ends before 'ITEM: ATOMS'")
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("ITEM:"):
            if not started:
                raise LammpsPhaseError(f"{where()}: expected 'ITEM: TIMESTEP', found {stripped[:60]!r}")
            continue  # value lines of items we do not use (UNITS, TIME)
        started = True
        item = stripped[5:].strip()
        try:
            if item == "TIMESTEP":
                timestep = int(value_line(item).split()[0])
            elif item == "NUMBER OF ATOMS":
                natoms = int(value_line(item).split()[0])
                if not 0 <= natoms <= MAX_ATOMS:
                    raise LammpsPhaseError(f"{where()}: NUMBER OF ATOMS is {natoms}; it must be a count between 0 "
                                           f"and {MAX_ATOMS:.0e} (the header is damaged)")
            elif item.startswith("BOX BOUNDS"):
                bounds_line = item
                bounds = [[float(v) for v in value_line(item).split()] for _ in range(3)]
            elif item.startswith("ATOMS"):
                names = item.split()[1:]
                break
        except LammpsPhaseError:
            raise
        except (ValueError, IndexError) as exc:
            raise LammpsPhaseError(f"{where()}: unreadable value after 'ITEM: {item}' ({exc})") from exc
    missing = [name for name, value in (("TIMESTEP", timestep), ("NUMBER OF ATOMS", natoms),
                                        ("BOX BOUNDS", bounds)) if value is None]
    if missing:
        raise LammpsPhaseError(f"{where()}: header lacks {', '.join('ITEM: ' + m for m in missing)}")
    if not names:
        raise LammpsPhaseError(f"{where()}: 'ITEM: ATOMS' names no columns")
    return timestep, natoms, bounds_line, bounds, names


def _dump_box(bounds_line: str, bounds: list[list[float]], where: str
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, str, str]]:
    """lo, hi, tilt and boundary flags from a BOX BOUNDS item (triclinic dumps store the bounding box)."""
    words = bounds_line.split()[2:]
    if words[:1] == ["abc"]:
        raise LammpsPhaseError(
            f"{where}: general triclinic box ('BOX BOUNDS abc origin') is not supported; "
            "write the dump in LAMMPS's restricted triclinic form (dump_modify triclinic/general no)"
        )
    triclinic = words[:3] == ["xy", "xz", "yz"]
    flags = words[3:] if triclinic else words
    boundary = tuple(flags) if len(flags) == 3 else ("pp", "pp", "pp")
    need = 3 if triclinic else 2
    if any(len(row) < need for row in bounds):
        raise LammpsPhaseError(f"{where}: BOX BOUNDS lines need {need} numbers each, found {bounds}")
    lo = np.array([row[0] for row in bounds])
    hi = np.array([row[1] for row in bounds])
    tilt = np.zeros(3)
    if triclinic:
        xy, xz, yz = bounds[0][2], bounds[1][2], bounds[2][2]
        lo = lo - np.array([min(0.0, xy, xz, xy + xz), min(0.0, yz), 0.0])
        hi = hi - np.array([max(0.0, xy, xz, xy + xz), max(0.0, yz), 0.0])
        tilt = np.array([xy, xz, yz])
    check_box(lo, hi, tilt, where)
    return lo, hi, tilt, boundary


def count_dump_frames(path: PathLike) -> int:
    """Frames in a dump by counting 'ITEM: TIMESTEP' in raw bytes: no parsing, for progress bars."""
    count = 0
    tail = b""
    with open_binary(path) as handle:
        while chunk := handle.read(1 << 22):
            block = tail + chunk
            count += block.count(_FRAME_START)
            # Keep a tail shorter than the needle so a match split across chunks counts once, never twice.
            tail = block[-(len(_FRAME_START) - 1) :]
    return count


class DumpWriter:
    """Writes frames as a LAMMPS text dump (`dump custom` layout) that LAMMPS tools and OVITO read; .gz compresses.

    Frames go to a temporary file beside ``path`` that becomes ``path`` at :meth:`close` (or at the end of a
    ``with`` block without an exception): a failed run leaves no partial dump and keeps any earlier file.
    """

    def __init__(self, path: PathLike):
        self.path = path
        self._pending = PendingFile(path)
        try:
            self._handle: IO[str] | None = open_for_writing(self._pending.path)
        except BaseException:
            self._pending.discard()
            raise

    def __enter__(self) -> DumpWriter:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()

    def close(self) -> None:
        """Finish the file and move it into place."""
        if self._handle is not None:
            try:
                self._handle.close()
            except BaseException:
                self._pending.discard()
                raise
            finally:
                self._handle = None
            self._pending.commit()

    def discard(self) -> None:
        """Drop what was written; an earlier file at ``path`` stays as it was."""
        if self._handle is not None:
            with contextlib.suppress(Exception):
                self._handle.close()
            self._handle = None
        self._pending.discard()

    def write(self, frame: Frame, extra: Mapping[str, np.ndarray] | None = None,
              formats: Mapping[str, str] | None = None) -> None:
        """One frame: the frame's columns in order, then extra columns (an extra with a frame column's name
        replaces it in place)."""
        if self._handle is None:
            raise LammpsPhaseError(f"{self.path}: DumpWriter is closed; open a new one to write more frames")
        columns = dict(frame.columns)
        columns.update(extra or {})
        natoms = frame.natoms if frame.columns else (len(next(iter(columns.values()))) if columns else 0)
        for name, values in columns.items():
            if np.ndim(values) != 1 or len(values) != natoms:
                raise LammpsPhaseError(
                    f"{self.path}: column {name!r} has shape {np.shape(values)}, expected ({natoms},) "
                    "(one value per atom)"
                )
            if not name or any(ch.isspace() for ch in name):
                raise LammpsPhaseError(f"{self.path}: column name {name!r} must be one word without spaces")
        arrays = [np.asarray(values) for values in columns.values()]
        arrays = [values.astype(str) if values.dtype.kind == "S" else values for values in arrays]
        fmts = [_row_format(name, values, formats or {}) for name, values in zip(columns, arrays)]
        self._handle.write(_dump_header(frame, natoms, list(columns)))
        write_rows(self._handle, arrays, " ".join(fmts) + "\n")


def _dump_header(frame: Frame, natoms: int, names: list[str]) -> str:
    boundary = frame.boundary
    if boundary is None or tuple("p" in flag for flag in boundary) != tuple(frame.pbc):
        boundary = tuple("pp" if periodic else "ff" for periodic in frame.pbc)
    lo = np.asarray(frame.boxlo, float)
    hi = np.asarray(frame.boxhi, float)
    lines = [f"ITEM: TIMESTEP\n{int(frame.timestep)}\nITEM: NUMBER OF ATOMS\n{natoms}\n"]
    if frame.triclinic:
        xy, xz, yz = (float(v) for v in frame.tilt)
        # LAMMPS stores the bounding box of the tilted cell (dump doc, "triclinic box" section).
        lo_bound = lo + np.array([min(0.0, xy, xz, xy + xz), min(0.0, yz), 0.0])
        hi_bound = hi + np.array([max(0.0, xy, xz, xy + xz), max(0.0, yz), 0.0])
        lines.append(f"ITEM: BOX BOUNDS xy xz yz {' '.join(boundary)}\n")
        for k, t in enumerate((xy, xz, yz)):
            lines.append(f"{lo_bound[k]:.16e} {hi_bound[k]:.16e} {t:.16e}\n")
    else:
        lines.append(f"ITEM: BOX BOUNDS {' '.join(boundary)}\n")
        for k in range(3):
            lines.append(f"{lo[k]:.16e} {hi[k]:.16e}\n")
    lines.append(f"ITEM: ATOMS {' '.join(names)}\n")
    return "".join(lines)


def _row_format(name: str, values: np.ndarray, formats: Mapping[str, str]) -> str:
    if name in formats:
        return formats[name]
    if values.dtype.kind in "iub":
        return "%d"
    if values.dtype.kind in "US":
        return "%s"
    if values.dtype.kind == "f":
        return "%.8g" if any(name in names for names in COORDINATE_SETS) else "%.6g"
    raise LammpsPhaseError(f"column {name!r} has dtype {values.dtype}, which a text dump cannot hold; "
                           "pass int, float or str arrays")
