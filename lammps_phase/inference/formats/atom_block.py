"""Atom lines <-> typed per-atom columns, shared by the dump, data-file and extended XYZ formats.

Parsing uses numpy's C parser in one call per block (no per-atom Python objects), so a 10^6-atom frame costs
about a second; a column's dtype follows what LAMMPS says it is (id, type, i_* integers; c_*, f_*, v_* floats)
and, for names LAMMPS does not fix, what the text holds.
"""

from __future__ import annotations

import re
import warnings
from typing import IO

import numpy as np

from lammps_phase.errors import LammpsPhaseError

# LAMMPS per-atom dump keywords that are integers; fix/compute property/atom integer vectors use i_ and i2_.
_INT_COLUMNS = frozenset({"id", "mol", "proc", "procp1", "type", "ix", "iy", "iz"})
_INT_PREFIXES = ("i_", "i2_")
_STRING_COLUMNS = frozenset({"element"})
_FLOAT_COLUMNS = frozenset(
    "x y z xs ys zs xu yu zu xsu ysu zsu vx vy vz fx fy fz q mass mux muy muz mu radius diameter "
    "omegax omegay omegaz angmomx angmomy angmomz tqx tqy tqz heatflow temperature".split()
)
_FLOAT_PREFIXES = ("c_", "f_", "v_", "d_", "d2_")


# numpy's loadtxt warns about blank atom lines; the parsers report them as an error of their own
warnings.filterwarnings("ignore", message=r"Input line \d+ contained no data", category=UserWarning)

_ROW_CHUNK = 65536  # rows formatted per write: bounds memory for huge frames
MAX_ATOMS = 10**12  # more atoms than any text file can hold: a larger count is a damaged header


def column_kind(name: str) -> str:
    """'i', 'f', 's' for names whose type LAMMPS fixes; 'auto' to decide from the text."""
    if name in _INT_COLUMNS or name.startswith(_INT_PREFIXES):
        return "i"
    if name in _STRING_COLUMNS:
        return "s"
    if name in _FLOAT_COLUMNS or name.startswith(_FLOAT_PREFIXES):
        return "f"
    return "auto"


_NOT_INTEGER_TEXT = re.compile(r"[^0-9+\-\n]")


def parse_block(lines: list[str], names: list[str], kinds: list[str], where: str, comments: str | None = None
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


def write_rows(handle: IO[str], arrays: list[np.ndarray], row_format: str) -> None:
    """Format rows in chunks with one C-level % per row: no per-atom objects beyond the chunk."""
    natoms = len(arrays[0]) if arrays else 0
    for start in range(0, natoms, _ROW_CHUNK):
        stop = min(start + _ROW_CHUNK, natoms)
        chunk = [values[start:stop].tolist() for values in arrays]
        handle.write("".join(map(row_format.__mod__, zip(*chunk))))
