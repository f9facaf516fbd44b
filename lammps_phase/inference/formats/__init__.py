"""Read and write the files users hand to `lammps-phase classify` and the files our tools write.

Formats: LAMMPS text dumps (orthogonal and triclinic, any columns), LAMMPS data files, extended XYZ;
each may be gzip-compressed (detected by content, not by name). Atom blocks are parsed by numpy's C
parser in one call per frame, and dumps are read frame by frame, so a 10^6-atom frame costs about a
second and a 10 GB trajectory never sits in memory at once.

Box convention is LAMMPS's: lower corner `boxlo`, upper corner `boxhi` and tilts (xy, xz, yz), so the
cell rows are a = (lx, 0, 0), b = (xy, ly, 0), c = (xz, yz, lz). Cells in other orientations
(extended XYZ, `write_lammps_data`) are rotated into that form together with the positions.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import warnings
import zlib
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from typing import IO, Iterator, Mapping, Sequence

import numpy as np

from lammps_phase.atomic_write import PendingFile, atomic_path
from lammps_phase.cell import lammps_cell
from lammps_phase.elements import ATOMIC_MASSES
from lammps_phase.errors import LammpsPhaseError

PathLike = str | os.PathLike

SUPPORTED_FORMATS = ("dump", "data", "extxyz")
_SUPPORTED_TEXT = (
    "LAMMPS text dump ('ITEM: TIMESTEP' ...), LAMMPS data file, extended XYZ; each optionally gzip-compressed"
)

# LAMMPS per-atom dump keywords that are integers; fix/compute property/atom integer vectors use i_ and i2_.
_INT_COLUMNS = frozenset({"id", "mol", "proc", "procp1", "type", "ix", "iy", "iz"})
_INT_PREFIXES = ("i_", "i2_")
_STRING_COLUMNS = frozenset({"element"})
_FLOAT_COLUMNS = frozenset(
    "x y z xs ys zs xu yu zu xsu ysu zsu vx vy vz fx fy fz q mass mux muy muz mu radius diameter "
    "omegax omegay omegaz angmomx angmomy angmomz tqx tqy tqz heatflow temperature".split()
)
_FLOAT_PREFIXES = ("c_", "f_", "v_", "d_", "d2_")
_COORDINATE_SETS = (("x", "y", "z"), ("xu", "yu", "zu"), ("xs", "ys", "zs"), ("xsu", "ysu", "zsu"))
_SCALED_SETS = (("xs", "ys", "zs"), ("xsu", "ysu", "zsu"))


# numpy's loadtxt warns about blank atom lines; the parsers report them as an error of their own
warnings.filterwarnings("ignore", message=r"Input line \d+ contained no data", category=UserWarning)

_ROW_CHUNK = 65536  # rows formatted per write: bounds memory for huge frames
MAX_ATOMS = 10**12  # more atoms than any text file can hold: a larger count is a damaged header


@dataclass
class Frame:
    """One configuration: box in LAMMPS convention plus every per-atom column of the source."""

    timestep: int
    boxlo: np.ndarray
    boxhi: np.ndarray
    tilt: np.ndarray
    pbc: tuple[bool, bool, bool]
    columns: dict[str, np.ndarray]
    boundary: tuple[str, str, str] | None = None  # LAMMPS boundary flags as read ("pp", "ss", ...), kept for writing
    masses: dict[int, float] = field(default_factory=dict)  # per-type masses from a data file's Masses section

    @property
    def natoms(self) -> int:
        for values in self.columns.values():
            return len(values)
        return 0

    @property
    def triclinic(self) -> bool:
        return bool(np.any(np.asarray(self.tilt) != 0.0))

    def cell(self) -> np.ndarray:
        """3x3 cell, rows a, b, c (lower-triangular, LAMMPS orientation)."""
        lx, ly, lz = np.asarray(self.boxhi, float) - np.asarray(self.boxlo, float)
        xy, xz, yz = np.asarray(self.tilt, float)
        return np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])

    def positions(self) -> np.ndarray:
        """(N, 3) Cartesian positions from whichever coordinate columns the frame has (unscaled preferred)."""
        for names in _COORDINATE_SETS:
            if all(name in self.columns for name in names):
                coords = np.column_stack([np.asarray(self.columns[n], dtype=np.float64) for n in names])
                if names in _SCALED_SETS:
                    # Row-vector convention: r = lo + s @ cell gives x = xlo + xs*lx + ys*xy + zs*xz, etc.
                    return np.asarray(self.boxlo, float) + coords @ self.cell()
                return coords
        raise LammpsPhaseError(
            f"frame at timestep {self.timestep} has no coordinate columns "
            f"(need x y z, xs ys zs, xu yu zu or xsu ysu zsu); columns are: {' '.join(self.columns) or 'none'}"
        )

    def species(self, type_map: Sequence[str] | None = None) -> np.ndarray:
        """Element names per atom: the `element` column, else `type` mapped through type_map (type 1 -> type_map[0])."""
        if "element" in self.columns:
            return np.asarray(self.columns["element"]).astype(str)
        if "type" not in self.columns:
            raise LammpsPhaseError(
                f"frame at timestep {self.timestep} has neither an 'element' nor a 'type' column; "
                "dump with 'type' (or 'element') so atoms can be told apart"
            )
        types = np.asarray(self.columns["type"], dtype=np.int64)
        present = np.unique(types)
        names = list(type_map) if type_map is not None else []
        missing = [int(t) for t in present if t < 1 or t > len(names)]
        if missing:
            have = f"the type map {' '.join(names)!r} names types 1..{len(names)}" if names else "no type map was given"
            raise LammpsPhaseError(
                f"atom types {' '.join(map(str, missing))} have no element name ({have}); "
                f'give one element per LAMMPS type in type order (lammps-phase classify --types "Si O")'
            )
        return np.asarray(names, dtype=str)[types - 1]


# ----------------------------------------------------------------------------------------------------------
# files


def _is_gzip(path: PathLike) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _check_readable(path: PathLike) -> None:
    if not os.path.exists(path):
        raise LammpsPhaseError(f"{path}: no such file; check the path")
    if os.path.isdir(path):
        raise LammpsPhaseError(f"{path} is a folder: give the path of a dump, data or extxyz file")
    if not os.path.isfile(path):  # a device or a pipe: /dev/zero would never end, a pipe cannot be read twice
        raise LammpsPhaseError(f"{path} is not a regular file: give the path of a dump, data or extxyz file "
                               "(decompress or copy a stream to a file first)")


def _open_text(path: PathLike, errors: str = "strict") -> IO[str]:
    _check_readable(path)
    with _reading(path):
        if _is_gzip(path):
            return gzip.open(path, "rt", encoding="utf-8", errors=errors)
        return open(path, encoding="utf-8", errors=errors)


def _open_binary(path: PathLike) -> IO[bytes]:
    _check_readable(path)
    with _reading(path):
        if _is_gzip(path):
            return gzip.open(path, "rb")
        return open(path, "rb")


def _read_failure(path: PathLike, exc: BaseException) -> str:
    """One line for a file that cannot be read as text: corrupt or truncated gzip, binary bytes, I/O errors."""
    if isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile)):
        return (f"{path}: the gzip stream is truncated or corrupt ({' '.join(str(exc).split()) or type(exc).__name__}); "
                "copy or compress the file again")
    if isinstance(exc, UnicodeDecodeError):
        return (f"{path}: not a text file (byte 0x{exc.object[exc.start]:02x} at offset {exc.start} of a block is not "
                f"UTF-8); supported: {_SUPPORTED_TEXT}. Binary dumps must first be converted with LAMMPS's "
                "tools/binary2txt")
    if isinstance(exc, OSError):
        return f"{path}: cannot be read ({exc.strerror or exc})"
    return f"{path}: cannot be read ({type(exc).__name__}: {exc})"


_READ_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError)


@contextlib.contextmanager
def _reading(path: PathLike) -> Iterator[None]:
    """Turn what a damaged file raises while it is read (gzip, decoding, I/O) into one LammpsPhaseError."""
    try:
        yield
    except _READ_ERRORS as exc:
        raise LammpsPhaseError(_read_failure(path, exc)) from None


_INT_LINE = re.compile(r"^\s*\d+\s*$")
_ATOMS_HEADER = re.compile(r"^\s*\d+\s+atoms\s*(#.*)?$")
_XLO_HEADER = re.compile(r"\sxlo\s+xhi")


def detect_format(path: PathLike) -> str:
    """'dump', 'data' or 'extxyz', judged from the first non-empty lines (gzip is opened transparently)."""
    with _reading(path), _open_text(path, errors="replace") as handle:
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
    if _INT_LINE.match(first):
        return "extxyz"
    raise LammpsPhaseError(
        f"{path}: unknown file format (first line {first[:60]!r}); supported: {_SUPPORTED_TEXT}. "
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
        with _reading(path):
            if fmt == "dump":
                return _count_bytes(path, b"ITEM: TIMESTEP")
            return _count_xyz_frames(path)
    except LammpsPhaseError:
        return None


def _count_bytes(path: PathLike, needle: bytes) -> int:
    count = 0
    tail = b""
    with _open_binary(path) as handle:
        while chunk := handle.read(1 << 22):
            block = tail + chunk
            count += block.count(needle)
            # Keep a tail shorter than the needle so a match split across chunks counts once, never twice.
            tail = block[-(len(needle) - 1) :]
    return count


def _count_xyz_frames(path: PathLike) -> int | None:
    count = 0
    with _open_text(path, errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            if not _INT_LINE.match(line):
                return None
            if int(line) > MAX_ATOMS:
                return None
            deque(islice(handle, int(line) + 1), maxlen=0)
            count += 1
    return count


# ----------------------------------------------------------------------------------------------------------
# atom blocks


def _column_kind(name: str) -> str:
    """'i', 'f', 's' for names whose type LAMMPS fixes; 'auto' to decide from the text."""
    if name in _INT_COLUMNS or name.startswith(_INT_PREFIXES):
        return "i"
    if name in _STRING_COLUMNS:
        return "s"
    if name in _FLOAT_COLUMNS or name.startswith(_FLOAT_PREFIXES):
        return "f"
    return "auto"


_NOT_INTEGER_TEXT = re.compile(r"[^0-9+\-\n]")


def _parse_block(lines: list[str], names: list[str], kinds: list[str], where: str, comments: str | None = None
                 ) -> dict[str, np.ndarray]:
    """Parse atom lines into typed columns with numpy's C parser (no per-atom Python objects).

    kinds: 'i' int64, 'f' float64, 's' str, 'b' bool (T/F), 'auto' (int if every token is an integer literal,
    float if numeric, else str).
    """
    if not lines:
        empty = {"i": np.int64, "f": np.float64, "s": str, "b": bool, "auto": np.float64}
        return {name: np.empty(0, dtype=empty[kind]) for name, kind in zip(names, kinds)}
    text_cols = [j for j, kind in enumerate(kinds) if kind in ("s", "b")]
    number_cols = [j for j, kind in enumerate(kinds) if kind not in ("s", "b")]
    numbers: np.ndarray | None = None
    texts: np.ndarray | None = None
    try:
        if number_cols:
            numbers = np.loadtxt(lines, dtype=np.float64, usecols=number_cols, ndmin=2, comments=comments)
        if text_cols:
            texts = np.loadtxt(lines, dtype=str, usecols=text_cols, ndmin=2, comments=comments)
        rows = len(numbers) if numbers is not None else len(texts)
        if rows != len(lines):
            raise ValueError(f"{rows} rows parsed from {len(lines)} lines")
        if len(lines[0].split("#")[0].split()) != len(names):
            raise ValueError(f"first atom line has {len(lines[0].split())} values, header names {len(names)}")
    except ValueError:
        return _parse_block_slowly(lines, names, kinds, where, comments)
    columns: dict[str, np.ndarray] = {}
    number_at = {j: k for k, j in enumerate(number_cols)}
    text_at = {j: k for k, j in enumerate(text_cols)}
    for j, (name, kind) in enumerate(zip(names, kinds)):
        if j in text_at:
            values = texts[:, text_at[j]]
            columns[name] = np.isin(values, ("T", "True", "true", "1")) if kind == "b" else values
            continue
        values = numbers[:, number_at[j]]
        if kind == "i":
            columns[name] = _integers(values, name, where)
        elif kind == "auto" and _integer_column(lines, j, values, comments):
            columns[name] = values.astype(np.int64)
        else:
            columns[name] = values
    return columns


def _integer_column(lines: list[str], j: int, values: np.ndarray, comments: str | None) -> bool:
    """Whether a column of unknown meaning was written as integers ('3', not '3.0' or '3e0')."""
    if not np.all(values == np.round(values)):
        return False
    try:  # numpy's integer parser rejects '3.0', '1e3' and 'nan': C speed, no string array
        np.loadtxt(lines, dtype=np.int64, usecols=[j], ndmin=1, comments=comments)
    except (ValueError, OverflowError):
        return False
    return True


def _parse_block_slowly(lines: list[str], names: list[str], kinds: list[str], where: str, comments: str | None
                        ) -> dict[str, np.ndarray]:
    """Fallback that finds the bad line or the text columns when the fast numeric parse fails."""
    try:
        table = np.loadtxt(lines, dtype=str, ndmin=2, comments=comments)
    except ValueError as exc:
        raise LammpsPhaseError(f"{where}: malformed atom line ({exc}); every line needs {len(names)} values") from exc
    if table.shape[0] != len(lines):
        raise LammpsPhaseError(f"{where}: {len(lines) - table.shape[0]} of {len(lines)} atom lines are blank; "
                               "the file is corrupt or its atom count is wrong")
    if table.shape[1] != len(names):
        raise LammpsPhaseError(
            f"{where}: atom lines have {table.shape[1]} values but the header names {len(names)} "
            f"columns ({' '.join(names)}); the file is corrupt or the header does not match"
        )
    columns: dict[str, np.ndarray] = {}
    for j, (name, kind) in enumerate(zip(names, kinds)):
        text = table[:, j]
        if kind == "s":
            columns[name] = text
            continue
        if kind == "b":
            columns[name] = np.isin(text, ("T", "True", "true", "1"))
            continue
        try:
            values = text.astype(np.float64)
        except ValueError as exc:
            if kind == "auto":
                columns[name] = text
                continue
            raise LammpsPhaseError(f"{where}: column {name!r} holds non-numeric values ({exc})") from exc
        is_int = kind == "i" or (
            kind == "auto" and np.all(values == np.round(values)) and _NOT_INTEGER_TEXT.search("\n".join(text)) is None
        )
        columns[name] = (_integers(values, name, where) if kind == "i" else values.astype(np.int64)) if is_int else values
    return columns


def _integers(values: np.ndarray, name: str, where: str) -> np.ndarray:
    """An integer column (id, type, i_...) as int64; a fraction, nan or inf there is damage, not a rounding matter."""
    bad = ~np.isfinite(values) | (values != np.round(values)) | (np.abs(values) > 2.0**62)
    if bad.any():
        raise LammpsPhaseError(f"{where}: column {name!r} must hold integers, found {float(values[bad][0]):g} "
                               f"(in {int(bad.sum())} atom line(s)); the file is damaged")
    return values.astype(np.int64)


# ----------------------------------------------------------------------------------------------------------
# LAMMPS dumps


def read_dump(path: PathLike) -> Iterator[Frame]:
    """Frames of a LAMMPS text dump (`dump atom` or `dump custom`), one at a time."""
    with _reading(path), _open_text(path) as handle:
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
            columns = _parse_block(lines, names, [_column_kind(n) for n in names], where)
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


def check_box(lo: np.ndarray, hi: np.ndarray, tilt: np.ndarray, where: str) -> None:
    """A LAMMPS box has finite bounds and tilts and positive edge lengths (hi > lo on every axis)."""
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(np.isfinite(tilt))):
        raise LammpsPhaseError(f"{where}: the box bounds or tilts are not finite numbers (the header is damaged)")
    if np.any(np.asarray(hi) <= np.asarray(lo)):
        raise LammpsPhaseError(f"{where}: the box has hi <= lo on axis {'xyz'[int(np.argmax(np.asarray(hi) <= np.asarray(lo)))]} "
                               f"(lo {np.asarray(lo).tolist()}, hi {np.asarray(hi).tolist()}); the header is damaged")


# ----------------------------------------------------------------------------------------------------------
# LAMMPS data files

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
    with _reading(path), _open_text(path) as handle:
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
    return _parse_block(body, names, [_column_kind(n) for n in names], f"{path}: Atoms section", comments="#")


# ----------------------------------------------------------------------------------------------------------
# extended XYZ

_KEY_VALUE = re.compile(r"""(\w+)\s*=\s*("[^"]*"|'[^']*'|\{[^}]*\}|\S+)""")
_VECTOR_PROPERTIES = {"pos": ("x", "y", "z"), "velo": ("vx", "vy", "vz"), "vel": ("vx", "vy", "vz"),
                      "velocities": ("vx", "vy", "vz"), "forces": ("fx", "fy", "fz"), "force": ("fx", "fy", "fz")}
_ROTATED_PROPERTIES = ("velo", "vel", "velocities", "forces", "force")


def read_extxyz(path: PathLike) -> Iterator[Frame]:
    """Frames of an extended XYZ file; any lattice is rotated (with positions, velocities, forces) to LAMMPS form."""
    with _reading(path), _open_text(path) as handle:
        frames = 0
        while True:
            line = handle.readline()
            if not line:
                break
            if not line.strip():
                continue
            where = f"{path}: frame {frames + 1}"
            if not _INT_LINE.match(line):
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
    columns = _parse_block(lines, names, kinds, where)
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




# ----------------------------------------------------------------------------------------------------------
# writers


def _row_format(name: str, values: np.ndarray, formats: Mapping[str, str]) -> str:
    if name in formats:
        return formats[name]
    if values.dtype.kind in "iub":
        return "%d"
    if values.dtype.kind in "US":
        return "%s"
    if values.dtype.kind == "f":
        return "%.8g" if any(name in names for names in _COORDINATE_SETS) else "%.6g"
    raise LammpsPhaseError(f"column {name!r} has dtype {values.dtype}, which a text dump cannot hold; "
                           "pass int, float or str arrays")


def _write_rows(handle: IO[str], arrays: list[np.ndarray], row_format: str) -> None:
    """Format rows in chunks with one C-level % per row: no per-atom objects beyond the chunk."""
    natoms = len(arrays[0]) if arrays else 0
    for start in range(0, natoms, _ROW_CHUNK):
        stop = min(start + _ROW_CHUNK, natoms)
        chunk = [values[start:stop].tolist() for values in arrays]
        handle.write("".join(map(row_format.__mod__, zip(*chunk))))


def _open_for_writing(path: PathLike) -> IO[str]:
    if str(path).endswith(".gz"):
        # Level 1 writes 7x faster than zlib's default 6 for ~10 % more bytes (measured on 10^6-atom dumps).
        return io.TextIOWrapper(gzip.open(path, "wb", compresslevel=1), encoding="utf-8")
    return open(path, "w", encoding="utf-8")


class DumpWriter:
    """Writes frames as a LAMMPS text dump (`dump custom` layout) that LAMMPS tools and OVITO read; .gz compresses.

    Frames go to a temporary file beside ``path`` that becomes ``path`` at :meth:`close` (or at the end of a
    ``with`` block without an exception): a failed run leaves no partial dump and keeps any earlier file.
    """

    def __init__(self, path: PathLike):
        self.path = path
        self._pending = PendingFile(path)
        try:
            self._handle: IO[str] | None = _open_for_writing(self._pending.path)
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
        _write_rows(self._handle, arrays, " ".join(fmts) + "\n")


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

    with atomic_path(path) as tmp, _open_for_writing(tmp) as handle:
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
        _write_rows(handle, arrays, row)


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

