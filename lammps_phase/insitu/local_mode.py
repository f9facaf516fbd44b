"""Local mode's geometry: each rank labels its own atoms from its owned + ghost atoms.

The model has no global pooling, so an owned atom's label depends only on atoms within its receptive hops
(``ModelConfig.hop_neighbors``: each hop reaches a layer's nearest neighbours, the outermost a whole k row). This module builds that receptive graph (with :func:`lammps_phase.inference.neighbors.knn`, the
search the Classifier itself uses) and checks that the ghost shell LAMMPS keeps really holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.neighbors import NeighborList, knn
from lammps_phase.insitu.collectives import describe

__all__ = ["GHOST_GUARD", "RECEPTIVE_SAFETY", "ClassifierFailure", "GhostShell", "ReceptiveGraph", "label_owned",
           "local_ghost_cutoff", "receptive_graph"]

#: How far beyond the observed ghost shell atoms may have moved in or out since the last reneighboring:
#: the default neighbour skin of metal/real units (2 Å). Ghosts are exchanged within cutghost of the
#: subdomain at reneighboring; afterwards each atom moves at most skin/2, so everything within
#: (observed extent − skin) is certainly present.
GHOST_GUARD = 2.0
#: Set-up margin on the receptive field in local mode, so a run does not stop later when the structure
#: expands (melting, tension): the shell must exceed hops × (largest k-th neighbour distance) × this.
RECEPTIVE_SAFETY = 1.1
_OPEN_BOUNDARIES = (False, False, False)  # ghost atoms already are the periodic images


class ClassifierFailure(Exception):
    """The model or neighbour search failed on a well-formed deck: skippable with on_error="skip"."""


def label_owned(
    classifier: Any, shell: "GhostShell", x: np.ndarray, types: np.ndarray, nlocal: int, type_map: list[str],
    with_margin: bool,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Labels and confidences of the owned atoms ``x[:nlocal]`` from owned + ghost atoms ``x``, and how many atoms
    went through the model (the rows of the receptive graph: owned + the halo it needed).

    A ghost shell too thin for the receptive field is a deck mistake (LammpsPhaseError, checked with the
    set-up margin where ``with_margin``: the first labelling); a failing model or search raises ClassifierFailure.
    """
    k, hops = classifier.k, classifier.hop_neighbors
    if len(x) <= k:
        raise LammpsPhaseError(f"only {len(x)} owned + ghost atoms on this rank, the model needs more than k = {k}")
    try:
        graph = receptive_graph(x, nlocal, k, hops)
    except Exception as err:  # noqa: BLE001 - e.g. non-finite coordinates after a blow-up
        raise ClassifierFailure(describe(err)) from None
    radius = classifier.checkpoint.config.receptive_radius(graph.neighbors.distances[:nlocal])
    if with_margin:
        shell.require(radius * RECEPTIVE_SAFETY, hops, radius)
    shell.require_exact(graph.atoms[: graph.n_rows], graph.kth, hops, radius)
    try:
        species = classifier.species_indices(types[graph.atoms], type_map)
        result = classifier.classify_neighbors(species, graph.neighbors, labelled=nlocal)
    except Exception as err:  # noqa: BLE001
        raise ClassifierFailure(describe(err)) from None
    return result.labels, result.confidence.astype(np.float64), int(len(species))


def local_ghost_cutoff(
    classifier: Any,
    positions: np.ndarray,
    cell: np.ndarray,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    pbc: Sequence[bool] = (True, True, True),
) -> float:
    """The ``comm_modify cutoff`` (Å) that ``mode="local"`` needs for a structure like this one.

    receptive radius × RECEPTIVE_SAFETY + GHOST_GUARD, rounded up to whole Å: the figure the labeler's own
    check asks for, known before the run.
    """
    neighbors = knn(positions, classifier.k, cell=cell, pbc=tuple(bool(p) for p in pbc), origin=origin)
    return float(np.ceil(classifier.receptive_radius(neighbors) * RECEPTIVE_SAFETY + GHOST_GUARD))


@dataclass(frozen=True)
class ReceptiveGraph:
    """The k-NN graph of everything the owned atoms' labels depend on, in compact numbering (owned atoms first).

    Rows ``:n_rows`` are true neighbour rows, in breadth-first order (owned atoms, then each hop's new atoms);
    the atoms after them enter only through their position in a row (or their species), so their rows are
    placeholder self-loops that no owned atom's label reads.
    """

    atoms: np.ndarray  # (M,) indices into the owned + ghost positions
    neighbors: NeighborList  # M rows, indices in compact numbering
    n_rows: int  # rows with true neighbours

    @property
    def kth(self) -> np.ndarray:
        """k-th neighbour distance of every true row."""
        return self.neighbors.distances[: self.n_rows, self.neighbors.k - 1]


def receptive_graph(x: np.ndarray, nlocal: int, k: int, hops: Sequence[int]) -> ReceptiveGraph:
    """Breadth-first over the receptive hops from the owned atoms (``x[:nlocal]``), among owned + ghost atoms.

    ``hops``: neighbour count of each hop, from the owned atoms outwards (``ModelConfig.hop_neighbors``). Hop s
    reaches the ``hops[s]`` nearest neighbours of every atom reached before it. Every atom reached within the
    first ``len(hops) − 1`` hops gets its true k-neighbour row (the network reads its features, which need its
    whole row); the atoms of the last hop's rows are placeholders (see
    :class:`ReceptiveGraph`). Needs more than k atoms in ``x``.
    """
    has_row = np.zeros(len(x), dtype=bool)
    has_row[:nlocal] = True
    frontier = np.arange(nlocal)
    rows = []
    for step, reach in enumerate(hops):
        if frontier.size == 0:
            break
        found = knn(x, k, cell=None, pbc=_OPEN_BOUNDARIES, query=frontier)
        rows.append((frontier, found))
        if step == len(hops) - 1:
            break
        # every atom read so far passes its own features on too (the self term, and the head reads every layer
        # at the owned atoms), so the next hop starts from all of them, not only the newest
        new = np.unique(np.concatenate([f.index[:, :reach].ravel() for _, f in rows]))
        frontier = new[~has_row[new]]
        has_row[frontier] = True
    row_atoms = np.concatenate([f for f, _ in rows])
    seen = np.zeros(len(x), dtype=bool)
    for _, found in rows:
        seen[found.index.ravel()] = True
    placeholders = np.flatnonzero(seen & ~has_row)
    atoms_arr = np.concatenate([row_atoms, placeholders])
    compact = np.full(len(x), -1, dtype=np.int64)
    compact[atoms_arr] = np.arange(len(atoms_arr))
    n_rows = len(row_atoms)
    index = np.empty((len(atoms_arr), k), dtype=np.int64)
    index[:n_rows] = compact[np.concatenate([found.index for _, found in rows])]
    index[n_rows:] = np.arange(n_rows, len(atoms_arr))[:, None]  # never read by owned atoms' labels
    vectors = np.zeros((len(atoms_arr), k, 3), dtype=np.float32)
    distances = np.zeros((len(atoms_arr), k), dtype=np.float32)
    if rows:
        vectors[:n_rows] = np.concatenate([found.vectors for _, found in rows])
        distances[:n_rows] = np.concatenate([found.distances for _, found in rows])
    return ReceptiveGraph(atoms_arr, NeighborList(index=index, vectors=vectors, distances=distances), n_rows)


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
        self.open_lo = ~periodic & (sub_lo <= 1e-12)
        self.open_hi = ~periodic & (sub_hi >= 1.0 - 1e-12)
        ghosts = self._fractional(x[nlocal:])
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

    def _fractional(self, x: np.ndarray) -> np.ndarray:
        return (x - self.origin) @ self.inverse

    def require(self, needed: float, hops: Sequence[int], radius: float) -> None:
        """Set-up check: the complete part of the shell must be at least ``needed`` Å wide (if it matters)."""
        if not (self.open_lo.all() and self.open_hi.all()) and self.width < needed:
            raise LammpsPhaseError(self._message(needed, hops, radius))

    def require_exact(self, row_atoms: np.ndarray, kth: np.ndarray, hops: Sequence[int], radius: float) -> None:
        """Every atom whose neighbour row matters must have all its k neighbours inside the complete region."""
        frac = self._fractional(self.x[row_atoms])
        lo = np.where(self.open_lo, -np.inf, self.sub_lo - self.width / self.spacing)
        hi = np.where(self.open_hi, np.inf, self.sub_hi + self.width / self.spacing)
        room = np.minimum((frac - lo) * self.spacing, (hi - frac) * self.spacing).min(axis=1)
        if np.any(kth > room * (1.0 + 1e-9)):
            depth = np.maximum(np.maximum(self.sub_lo - frac, frac - self.sub_hi), 0.0) * self.spacing
            needed = float((kth + depth.max(axis=1)).max())
            raise LammpsPhaseError(self._message(max(needed, radius * RECEPTIVE_SAFETY), hops, radius))

    def _message(self, needed: float, hops: Sequence[int], radius: float) -> str:
        cutoff = np.ceil(needed + GHOST_GUARD)
        return (
            f"mode='local' needs every atom within {needed:.1f} Å of each subdomain (model receptive field: "
            f"{radius:.1f} Å, hops to the {list(hops)} nearest neighbours), but the ghost atoms reach only "
            f"{self.reach:.1f} Å (of which {GHOST_GUARD:g} Å skin are not guaranteed): "
            f"add `comm_modify cutoff {cutoff:g}` before the run, or use mode='gather'"
        )
