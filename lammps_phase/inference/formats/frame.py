"""The Frame every reader returns and every writer takes: a LAMMPS box plus the per-atom columns of the source.

Columns are kept as read (names and dtypes), so a dump written back out loses nothing; positions and species
are derived on demand because files carry them in several forms (scaled, unwrapped, `element` or `type`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from lammps_phase.errors import LammpsPhaseError

COORDINATE_SETS = (("x", "y", "z"), ("xu", "yu", "zu"), ("xs", "ys", "zs"), ("xsu", "ysu", "zsu"))
_SCALED_SETS = (("xs", "ys", "zs"), ("xsu", "ysu", "zsu"))


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
        """3x3 cell, rows a, b, c (lower-triangular, LAMMPS orientation).

        Not lammps_phase.cell.lammps_box_to_cell: that rejects flat boxes, which a non-periodic frame (an
        extended XYZ without a lattice, a single atom) legitimately has.
        """
        lx, ly, lz = np.asarray(self.boxhi, float) - np.asarray(self.boxlo, float)
        xy, xz, yz = np.asarray(self.tilt, float)
        return np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])

    def positions(self) -> np.ndarray:
        """(N, 3) Cartesian positions from whichever coordinate columns the frame has (unscaled preferred)."""
        for names in COORDINATE_SETS:
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


def check_box(lo: np.ndarray, hi: np.ndarray, tilt: np.ndarray, where: str) -> None:
    """A LAMMPS box has finite bounds and tilts and positive edge lengths (hi > lo on every axis)."""
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(np.isfinite(tilt))):
        raise LammpsPhaseError(f"{where}: the box bounds or tilts are not finite numbers (the header is damaged)")
    if np.any(np.asarray(hi) <= np.asarray(lo)):
        raise LammpsPhaseError(f"{where}: the box has hi <= lo on axis {'xyz'[int(np.argmax(np.asarray(hi) <= np.asarray(lo)))]} "
                               f"(lo {np.asarray(lo).tolist()}, hi {np.asarray(hi).tolist()}); the header is damaged")
