"""Local mode's geometry: each rank labels its own atoms; their rows lie in the ghost shell LAMMPS keeps.

The model has no global pooling and reads, at each layer, an atom's nearest neighbours only. So a rank needs the
true k nearest neighbours of every atom it owns (its *rows*, within the pair style's ghost shell, about 4–5 Å
for SiO2) and, before each layer, the features of the ghost atoms in those rows, which their owners compute
(:mod:`lammps_phase.insitu.halo`). This module builds the rows (with
:func:`lammps_phase.inference.neighbors.knn`, the search the Classifier itself uses) and checks that the ghost
shell really holds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from lammps_phase.cell import rows_times
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.neighbors import INDEX_DTYPE, NeighborList, knn
from lammps_phase.insitu.collectives import describe

__all__ = ["GHOST_GUARD", "ROW_SAFETY", "ClassifierFailure", "GhostShell", "OwnedRows", "checked_rows",
           "local_ghost_cutoff", "owned_rows"]

#: How far beyond the observed ghost shell atoms may have moved in or out since the last reneighboring:
#: the default neighbour skin of metal/real units (2 Å). Ghosts are exchanged within cutghost of the
#: subdomain at reneighboring; afterwards each atom moves at most skin/2, so everything within
#: (observed extent − skin) is certainly present.
GHOST_GUARD = 2.0
#: Set-up margin on the row reach in local mode, so a run does not stop later when the structure expands
#: (melting, tension): the complete shell must exceed the largest k-th neighbour distance × this.
ROW_SAFETY = 1.25
_OPEN_BOUNDARIES = (False, False, False)  # ghost atoms already are the periodic images


class ClassifierFailure(Exception):
    """The model or neighbour search failed on a well-formed deck: skippable with on_error="skip"."""


def local_ghost_cutoff(
    classifier: Any,
    positions: np.ndarray,
    cell: np.ndarray,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    pbc: Sequence[bool] = (True, True, True),
) -> float:
    """The ghost cutoff (Å) that ``mode="local"`` needs for a structure like this one.

    Largest k-th neighbour distance × ROW_SAFETY + GHOST_GUARD, rounded up to whole Å: the figure the labeler's
    own check asks for, known before the run. Pair styles whose cutoff + skin reach it need no ``comm_modify
    cutoff``.
    """
    neighbors = knn(positions, classifier.k, cell=cell, pbc=tuple(bool(p) for p in pbc), origin=origin)
    return float(np.ceil(float(neighbors.distances[:, -1].max()) * ROW_SAFETY + GHOST_GUARD))


def checked_rows(shell: "GhostShell", x: np.ndarray, ids: np.ndarray, types: np.ndarray, nlocal: int, k: int,
                 first: bool) -> "OwnedRows":
    """:func:`owned_rows` of a rank with atoms, checked exact: every owned atom's k neighbours lie in the part of
    the ghost shell that is guaranteed complete (at the ``first`` labelling also with the ROW_SAFETY margin).
    A deck that cannot give that raises LammpsPhaseError; a failing search (non-finite coordinates after a
    blow-up) ClassifierFailure."""
    if not ids[:nlocal].any():
        raise LammpsPhaseError("mode='local' tells atoms apart by their IDs, but this run has none "
                               "(atom_modify id no): drop that line or use mode='gather'")
    if len(x) <= k:
        raise LammpsPhaseError(f"only {len(x)} owned + ghost atoms on this rank, the model needs more than k = {k}")
    try:
        rows = owned_rows(x, ids, types, nlocal, k)
    except Exception as err:  # noqa: BLE001
        raise ClassifierFailure(describe(err)) from None
    if first:
        shell.require(float(rows.kth.max()) * ROW_SAFETY, k)
    shell.require_exact(rows.kth, k)
    return rows


@dataclass(frozen=True)
class OwnedRows:
    """The k-NN rows of a rank's owned atoms, numbered compactly: owned atoms ``[0, nlocal)`` as LAMMPS orders
    them, then the *halo*, the atoms other ranks own that the rows point at, one per atom ID (the periodic
    images of one atom share its features). Ghosts that are images of this rank's own atoms point at those."""

    neighbors: NeighborList  # nlocal rows
    halo_ids: np.ndarray  # (H,) sorted atom IDs
    halo_types: np.ndarray  # (H,) LAMMPS types
    halo_x: np.ndarray  # (H, 3) one ghost image's position per halo atom

    @property
    def kth(self) -> np.ndarray:
        """k-th neighbour distance of every row."""
        return self.neighbors.distances[:, self.neighbors.k - 1]


def owned_rows(x: np.ndarray, ids: np.ndarray, types: np.ndarray, nlocal: int, k: int) -> OwnedRows:
    """Rows of the owned atoms ``x[:nlocal]`` among owned + ghost atoms ``x`` (LAMMPS order, ``ids`` their atom
    IDs, ``types`` theirs); needs more than k atoms in ``x`` when ``nlocal`` > 0."""
    if nlocal == 0:
        empty = NeighborList(index=np.zeros((0, k), dtype=INDEX_DTYPE), vectors=np.zeros((0, k, 3), dtype=np.float32),
                             distances=np.zeros((0, k), dtype=np.float32))
        return OwnedRows(empty, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=types.dtype), np.zeros((0, 3)))
    found = knn(x, k, cell=None, pbc=_OPEN_BOUNDARIES, query=np.arange(nlocal))
    index = found.index
    ghost = index >= nlocal
    ghost_ids = ids[index[ghost]]
    owned_ids = ids[:nlocal]
    order = np.argsort(owned_ids, kind="stable")
    pos = np.minimum(np.searchsorted(owned_ids[order], ghost_ids), nlocal - 1)
    mine = owned_ids[order][pos] == ghost_ids
    halo_ids, first, slot = np.unique(ghost_ids[~mine], return_index=True, return_inverse=True)
    mapped = np.where(mine, order[pos], 0)
    mapped[~mine] = nlocal + slot
    compact = index.copy()
    compact[ghost] = mapped
    ghost_atoms = index[ghost][~mine][first]
    return OwnedRows(NeighborList(index=compact, vectors=found.vectors, distances=found.distances),
                     halo_ids.astype(np.int64), types[ghost_atoms], x[ghost_atoms])


class GhostShell:
    """The region around this rank's subdomain in which every atom is certainly present as owned or ghost.

    Measured, not configured: LAMMPS 29 Sep 2021 exposes neither the ghost cutoff nor the skin to Python.
    LAMMPS sends ghosts within one cutoff of every subdomain face; the farthest ghost over all faces and
    ranks (``reach``) estimates it from below up to the skin, so every atom within ``reach − GHOST_GUARD``
    of the subdomain is present. (One global figure, because a face facing vacuum has no ghosts.) Faces
    on a non-periodic box boundary are open: no atom exists beyond them. Works in fractional coordinates,
    so triclinic boxes are handled like orthogonal ones (distance to a face = Δfraction × face spacing).
    """

    def __init__(self, lmp: Any, x: np.ndarray, nlocal: int) -> None:
        from lammps_phase.cell import lammps_box_to_cell

        boxlo, boxhi, xy, yz, xz, periodicity, _ = lmp.extract_box()
        cell, origin = lammps_box_to_cell(boxlo, boxhi, xy, xz, yz)
        self.origin = origin
        self.inverse = np.linalg.inv(cell)
        volume = abs(float(np.linalg.det(cell)))
        self.spacing = volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
        if int(lmp.extract_global("triclinic")):
            sub_lo = np.array(lmp.extract_global("sublo_lambda"), dtype=np.float64)
            sub_hi = np.array(lmp.extract_global("subhi_lambda"), dtype=np.float64)
        else:
            lengths = np.diag(cell)
            sub_lo = (np.array(lmp.extract_global("sublo"), dtype=np.float64) - origin) / lengths
            sub_hi = (np.array(lmp.extract_global("subhi"), dtype=np.float64) - origin) / lengths
        self.sub_lo, self.sub_hi = sub_lo, sub_hi
        self.x = x
        periodic = np.array([bool(p) for p in periodicity])
        self.periodic = periodic
        self.open_lo = ~periodic & (sub_lo <= 1e-12)
        self.open_hi = ~periodic & (sub_hi >= 1.0 - 1e-12)
        ghosts = self.fractional(x[nlocal:])
        if len(ghosts):
            beyond = np.concatenate([(sub_lo - ghosts.min(axis=0)), (ghosts.max(axis=0) - sub_hi)])
            self.local_reach = float(np.maximum(beyond * np.tile(self.spacing, 2), 0.0).max())
        else:
            self.local_reach = 0.0
        self.reach = self.local_reach
        self.width = max(self.reach - GHOST_GUARD, 0.0)

    def use_reach(self, reach: float) -> None:
        """Adopt the ghost reach agreed over all ranks."""
        self.reach = reach
        self.width = max(reach - GHOST_GUARD, 0.0)

    def fractional(self, x: np.ndarray) -> np.ndarray:
        """Positions in box fractions."""
        return rows_times(x - self.origin, self.inverse)

    def require(self, needed: float, k: int) -> None:
        """Set-up check: the complete part of the shell must be at least ``needed`` Å wide (if it matters)."""
        if not (self.open_lo.all() and self.open_hi.all()) and self.width < needed:
            raise LammpsPhaseError(self._message(needed, k))

    def require_exact(self, kth: np.ndarray, k: int) -> None:
        """Every owned atom (rows ``kth``: its k-th neighbour distance) must have all its k neighbours inside the
        complete region."""
        frac = self.fractional(self.x[: len(kth)])
        lo = np.where(self.open_lo, -np.inf, self.sub_lo - self.width / self.spacing)
        hi = np.where(self.open_hi, np.inf, self.sub_hi + self.width / self.spacing)
        room = np.minimum((frac - lo) * self.spacing, (hi - frac) * self.spacing).min(axis=1)
        if np.any(kth > room * (1.0 + 1e-9)):
            depth = np.maximum(np.maximum(self.sub_lo - frac, frac - self.sub_hi), 0.0) * self.spacing
            needed = float((kth + depth.max(axis=1)).max())
            raise LammpsPhaseError(self._message(max(needed, float(kth.max()) * ROW_SAFETY), k))

    def _message(self, needed: float, k: int) -> str:
        cutoff = np.ceil(needed + GHOST_GUARD)
        return (
            f"mode='local' needs every atom within {needed:.1f} Å of each subdomain (the k = {k} nearest neighbours "
            f"of every owned atom; the rest of the model's reach comes from the neighbouring ranks), but the ghost "
            f"atoms reach only {self.reach:.1f} Å (of which {GHOST_GUARD:g} Å skin are not guaranteed): "
            f"add `comm_modify cutoff {cutoff:g}` before the run, or use mode='gather'"
        )
