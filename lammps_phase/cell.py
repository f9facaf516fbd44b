"""The LAMMPS box convention, in one place: box (boxlo, boxhi, xy, xz, yz) <-> cell (rows a, b, c) and origin.

LAMMPS keeps a lower-triangular cell: a along +x, b in the xy plane, c with c_z > 0. Structures from elsewhere
(ASE, CIF, extended XYZ) are rotated into that frame before they reach LAMMPS; positions rotate with them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lammps_phase.errors import LammpsPhaseError

__all__ = [
    "cell_to_lammps_box", "finite_vector", "lammps_box_to_cell", "lammps_cell", "lammps_frame", "rows_times",
    "validated_cell",
]


def lammps_box_to_cell(
    boxlo: Sequence[float], boxhi: Sequence[float], xy: float = 0.0, xz: float = 0.0, yz: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """LAMMPS box (boxlo, boxhi, tilts) -> (cell with rows a, b, c; origin = boxlo)."""
    lo = finite_vector(boxlo, "boxlo")
    hi = finite_vector(boxhi, "boxhi")
    lengths = hi - lo
    if np.any(lengths <= 0.0):
        raise LammpsPhaseError(
            f"box lengths boxhi - boxlo = {lengths.tolist()} must all be positive; pass boxhi above boxlo"
        )
    tilts = np.array([xy, xz, yz], dtype=np.float64)
    if not np.all(np.isfinite(tilts)):
        raise LammpsPhaseError(f"tilt factors xy, xz, yz = {tilts.tolist()} must be finite numbers")
    cell = np.array(
        [[lengths[0], 0.0, 0.0], [tilts[0], lengths[1], 0.0], [tilts[1], tilts[2], lengths[2]]], dtype=np.float64
    )
    return cell, lo


def cell_to_lammps_box(
    cell: np.ndarray, origin: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, float, float, float]:
    """(cell, origin) -> (boxlo, boxhi, xy, xz, yz); the cell must already be in LAMMPS' lower-triangular form."""
    cell = validated_cell(cell)
    lo = finite_vector(origin, "origin")
    scale = float(np.abs(cell).max())
    upper = np.array([cell[0, 1], cell[0, 2], cell[1, 2]])
    if np.any(np.abs(upper) > 1e-10 * scale) or np.any(np.diag(cell) <= 0.0):
        raise LammpsPhaseError(
            "cell is not in LAMMPS form (a along +x, b in the xy-plane with b_y > 0, c_z > 0): "
            f"rows {cell.tolist()}; rotate the structure so the cell is lower-triangular "
            "(e.g. ase.geometry.cell_to_cellpar then cellpar_to_cell) before converting"
        )
    hi = lo + np.diag(cell)
    return lo, hi, float(cell[1, 0]), float(cell[2, 0]), float(cell[2, 1])


def lammps_cell(cell: np.ndarray, where: str = "cell") -> tuple[np.ndarray, np.ndarray]:
    """The LAMMPS lower-triangular form of a right-handed cell and the rotation R with cell @ R == that form.

    Positions (row vectors) rotate the same way: r_lammps = r @ R. R is a proper rotation, so distances keep.
    """
    cell = np.asarray(cell, dtype=np.float64)
    if cell.shape != (3, 3):
        raise LammpsPhaseError(f"{where}: a cell must be 3x3 (rows a, b, c), got shape {cell.shape}")
    if not np.all(np.isfinite(cell)):
        raise LammpsPhaseError(f"{where}: the cell holds non-finite numbers (nan or inf)")
    if np.linalg.det(cell) <= 0:
        raise LammpsPhaseError(
            f"{where}: the cell vectors a, b, c are left-handed or degenerate (det <= 0); "
            "LAMMPS needs a right-handed cell: swap two vectors or flip one"
        )
    if cell[0, 1] == 0 and cell[0, 2] == 0 and cell[1, 2] == 0:
        return cell.copy(), np.eye(3)
    a, b, c = cell
    lx = np.linalg.norm(a)
    a_hat = a / lx
    xy = b @ a_hat
    ly = np.linalg.norm(np.cross(a_hat, b))
    xz = c @ a_hat
    yz = (b @ c - xy * xz) / ly
    lz = np.sqrt(max(c @ c - xz**2 - yz**2, 0.0))
    target = np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])
    return target, np.linalg.solve(cell, target)


def rows_times(rows: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``rows @ matrix`` for row vectors (..., 3) and a 3×3 matrix (fractions <-> Cartesian, image shifts), without
    BLAS.

    Why not ``@``: numpy's OpenBLAS runs an (N, 3) @ (3, 3) product on its own threads, which then spin for about
    0.1 s waiting for more work and take a core from whatever runs next (the compiled neighbour search, the
    network). On 2 cores that made the neighbour search of 10⁵ atoms 1.8x slower. Equal to ``@`` up to rounding.
    """
    return np.einsum("...j,jk->...k", rows, matrix)  # numpy's own loop (no BLAS without optimize=True)


def lammps_frame(cell: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotate a cell (rows a, b, c) and its atoms into LAMMPS's frame: a ∥ x, b in the xy plane.

    Positions are wrapped into the cell. Returns (cell, positions) in the new frame.
    """
    cell = np.asarray(cell, dtype=float)
    lmp_cell, _ = lammps_cell(cell)
    frac = np.asarray(positions, dtype=float) @ np.linalg.inv(cell)
    frac = np.mod(frac, 1.0)
    frac[frac >= 1.0 - 1e-12] = 0.0
    return lmp_cell, frac @ lmp_cell


def validated_cell(cell: np.ndarray) -> np.ndarray:
    """A finite, non-singular 3x3 cell (rows = box vectors) as float64."""
    arr = np.asarray(cell, dtype=np.float64)
    if arr.shape != (3, 3) or not np.all(np.isfinite(arr)):
        raise LammpsPhaseError(f"cell must be a finite 3x3 array with rows = box vectors, got {arr.tolist()}")
    norms = np.linalg.norm(arr, axis=1)
    volume = abs(float(np.linalg.det(arr)))
    if np.any(norms == 0.0) or volume <= 1e-10 * float(np.prod(norms)):
        raise LammpsPhaseError(
            f"cell {arr.tolist()} is singular (box vectors are zero or coplanar, volume {volume:.3g}); "
            "pass the three box vectors as rows, e.g. from lammps_box_to_cell(boxlo, boxhi, xy, xz, yz)"
        )
    return arr


def finite_vector(values: Sequence[float], name: str) -> np.ndarray:
    """Three finite numbers as a float64 vector, or an error naming `name`."""
    vec = np.asarray(values, dtype=np.float64)
    if vec.shape != (3,) or not np.all(np.isfinite(vec)):
        raise LammpsPhaseError(f"{name} must be three finite numbers, got {values!r}")
    return vec
