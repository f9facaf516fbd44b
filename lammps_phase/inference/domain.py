"""The training domain: which local geometries the model has seen, so that it says "other" instead of guessing.

A softmax is confident far from its training data: quartz with Si and O swapped in the type map, a few atoms in
a huge box, or a crystal squeezed to three times its density still get a confident label. The network's
lengths are scaled by a local mean neighbour distance, which hides exactly these changes, so the check is made
on the raw geometry, in Å, before the network:

* for every pair (centre element A, neighbour element B): the distances from an A atom to its 1st … `RANKS`-th
  nearest B atoms among its k nearest neighbours — swapped elements put Si next to Si at a Si–O distance and
  leave the new "Si" with two O neighbours instead of four; compression and expansion move the bond lengths;
* for every centre element: the distance to its k-th nearest neighbour — an isolated atom or a very sparse
  sample puts it far beyond anything in training.

`measure` records, over every atom of the training snapshots, the range of each of these distances (between
the `QUANTILE` and 1 − `QUANTILE` quantiles, widened by `MARGIN`) and whether an A atom always had a B atom
among its k neighbours. `outside` flags the atoms of a new structure that fall outside that envelope; the
Classifier labels them −1 ("other") with confidence 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from lammps_phase.errors import LammpsPhaseError

QUANTILE = 1e-4  # a training atom's distance outside [q, 1 - q] is an outlier of the data, not of the domain
MARGIN = 0.05  # the envelope is widened by 5 % of its bounds on either side: unseen but plausible states pass
RANKS = 6  # the 1st to 6th nearest B of an A atom: tells 2-, 3-, 4- and 6-fold coordination apart
ALWAYS = 0.9999  # an A atom "always" has a B neighbour when this fraction of training A atoms had one


def pair_name(a: str, b: str, rank: int = 1) -> str:
    """"Si-O" for the nearest O of a Si atom, "Si-O#2" for its second nearest, ..."""
    return f"{a}-{b}" if rank == 1 else f"{a}-{b}#{rank}"


@dataclass(frozen=True)
class TrainingDomain:
    """Distance envelopes (Å) of the training data; JSON-serialisable via `to_dict` / `from_dict`."""

    elements: list[str]
    k: int
    nearest: dict[str, tuple[float, float]]  # "A-B#m": range of the distance from A to its m-th nearest B (if any)
    kth: dict[str, tuple[float, float]]  # "A": range of the distance from A to its k-th neighbour
    required: list[str] = field(default_factory=list)  # "A-B#m": A always had >= m B atoms among its k neighbours

    def to_dict(self) -> dict[str, Any]:
        return {"elements": list(self.elements), "k": self.k, "required": list(self.required),
                "nearest": {key: [float(lo), float(hi)] for key, (lo, hi) in self.nearest.items()},
                "kth": {key: [float(lo), float(hi)] for key, (lo, hi) in self.kth.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainingDomain":
        try:
            return cls(elements=[str(e) for e in data["elements"]], k=int(data["k"]),
                       nearest={str(key): (float(lo), float(hi)) for key, (lo, hi) in data["nearest"].items()},
                       kth={str(key): (float(lo), float(hi)) for key, (lo, hi) in data["kth"].items()},
                       required=[str(p) for p in data.get("required", [])])
        except (KeyError, TypeError, ValueError) as err:
            raise LammpsPhaseError(f"the checkpoint's training domain is damaged ({type(err).__name__}: {err}); "
                                   "re-run the calibration (lammps-phase-train CONFIG --stage calibrate)") from None


def _per_atom(species: np.ndarray, index: np.ndarray, distances: np.ndarray, n_elements: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """(N, E, RANKS) distances to the 1st..RANKS-th nearest neighbour of each element (inf where fewer among the
    k), and (N,) the k-th neighbour distance."""
    neighbour_species = species[index]
    ranks = min(RANKS, index.shape[1])
    nearest = np.full((len(index), n_elements, RANKS), np.inf)
    for e in range(n_elements):
        nearest[:, e, :ranks] = np.sort(np.where(neighbour_species == e, distances, np.inf), axis=1)[:, :ranks]
    return nearest, distances[:, -1]


def measure(samples: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], elements: Sequence[str], k: int
            ) -> TrainingDomain:
    """The envelope of training data given as (species indices (N,), neighbour index (N, k), distances (N, k))."""
    n_el = len(elements)
    nearest_parts: list[np.ndarray] = []
    kth_parts: list[np.ndarray] = []
    species_parts: list[np.ndarray] = []
    for species, index, distances in samples:
        species = np.asarray(species, dtype=np.int64)
        near, kth = _per_atom(species, np.asarray(index), np.asarray(distances, dtype=np.float64)[:, :k], n_el)
        nearest_parts.append(near)
        kth_parts.append(kth)
        species_parts.append(species[: len(index)])
    if not species_parts:
        raise LammpsPhaseError("no training atoms to measure the training domain on")
    species = np.concatenate(species_parts)
    nearest = np.concatenate(nearest_parts)
    kth = np.concatenate(kth_parts)

    def envelope(values: np.ndarray) -> tuple[float, float]:
        lo, hi = np.quantile(values, [QUANTILE, 1.0 - QUANTILE])
        return float(lo * (1.0 - MARGIN)), float(hi * (1.0 + MARGIN))

    near_ranges: dict[str, tuple[float, float]] = {}
    kth_ranges: dict[str, tuple[float, float]] = {}
    required: list[str] = []
    for a in range(n_el):
        mine = species == a
        if not mine.any():
            continue
        kth_ranges[elements[a]] = envelope(kth[mine])
        for b in range(n_el):
            for m in range(RANKS):
                name = pair_name(elements[a], elements[b], m + 1)
                found = np.isfinite(nearest[mine, b, m])
                if found.any():
                    near_ranges[name] = envelope(nearest[mine, b, m][found])
                if found.mean() >= ALWAYS:
                    required.append(name)
    return TrainingDomain(list(elements), int(k), near_ranges, kth_ranges, required)


def outside(domain: TrainingDomain, species: np.ndarray, index: np.ndarray, distances: np.ndarray,
            chunk: int = 65536) -> np.ndarray:
    """(N,) bool: atoms whose neighbourhood lies outside the training envelope (rows of index/distances = atoms).
    In chunks of rows: the per-atom distance tables are ≈ 0.6 kB per atom."""
    species = np.asarray(species, dtype=np.int64)
    rows = len(index)
    if rows > chunk:
        return np.concatenate([_outside(domain, species, index[s : s + chunk], distances[s : s + chunk], s)
                               for s in range(0, rows, chunk)])
    return _outside(domain, species, index, distances, 0)


def _outside(domain: TrainingDomain, species: np.ndarray, index: np.ndarray, distances: np.ndarray, start: int
             ) -> np.ndarray:
    """:func:`outside` of the rows ``start`` … ``start + len(index)`` (``species``: int64, every atom)."""
    n_el = len(domain.elements)
    rows = len(index)
    centre = species[start : start + rows]
    k = min(domain.k, np.asarray(distances).shape[1])
    near, kth = _per_atom(species, np.asarray(index)[:, :k], np.asarray(distances, dtype=np.float64)[:, :k], n_el)
    flagged = np.zeros(rows, dtype=bool)
    for a, name_a in enumerate(domain.elements):
        mine = centre == a
        if not mine.any():
            continue
        if name_a not in domain.kth:  # the model never saw this element at the centre of a neighbourhood
            flagged |= mine
            continue
        lo, hi = domain.kth[name_a]
        flagged |= mine & ((kth < lo) | (kth > hi))
        for b, name_b in enumerate(domain.elements):
            for m in range(RANKS):
                pair = pair_name(name_a, name_b, m + 1)
                distance = near[:, b, m]
                has = np.isfinite(distance)
                if pair in domain.nearest:
                    lo, hi = domain.nearest[pair]
                    flagged |= mine & has & ((distance < lo) | (distance > hi))
                else:  # never this many B atoms among an A atom's k neighbours in training
                    flagged |= mine & has
                if pair in domain.required:
                    flagged |= mine & ~has
    return flagged
