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

`outside` runs compiled (``_domain_screen.c``, built and cached like :mod:`cell_knn`'s search): one walk along
each row, OpenMP over rows. The numpy path serves without a C compiler, with ``LAMMPS_PHASE_KNN=tree``, and for
a neighbour list whose rows do not ascend in distance (or hold NaN or out-of-range indices), which the walk
would misread; both give the same flags.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference import cell_knn
from lammps_phase.native import NativeLibrary

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
            chunk: int = 65536, threads: Optional[int] = None) -> np.ndarray:
    """(N,) bool: atoms whose neighbourhood lies outside the training envelope (rows of index/distances = atoms).
    Compiled when possible (``threads``: OpenMP threads, None/0 = all cores); else numpy, in chunks of rows: its
    per-atom distance tables are ≈ 0.6 kB per atom."""
    species = np.asarray(species, dtype=np.int64)
    flagged = _screen(domain, species, index, distances, threads)
    if flagged is not None:
        return flagged
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


# ----------------------------------------------------------------------------------------------- compiled path

_SCREEN_SOURCE = Path(__file__).with_name("_domain_screen.c")
_SCREEN_KINDS = {(np.float32, np.int32): "f32_i32", (np.float32, np.int64): "f32_i64",
                 (np.float64, np.int32): "f64_i32", (np.float64, np.int64): "f64_i64"}
_MAX_ELEMENTS = 64  # MAX_ELEMENTS of _domain_screen.c


def _configure_screen(lib: ctypes.CDLL) -> None:
    """The screen's ctypes signatures."""
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    for kind in _SCREEN_KINDS.values():
        fn = getattr(lib, f"domain_screen_{kind}")
        fn.restype = ctypes.c_int
        fn.argtypes = [i64, i64, i64, ptr, ptr, ptr, i64, i64, i64, i64, ptr, ptr, ptr, ptr, ptr, ptr, ptr,
                       ctypes.c_int, ptr]


# its warning is left out when the neighbour search already gave the same cause
_SCREEN = NativeLibrary(_SCREEN_SOURCE, _configure_screen, "the compiled training-domain screen", "using numpy",
                        quiet=lambda: cell_knn.failure() is not None)


def _screen_library() -> Optional[ctypes.CDLL]:
    """The compiled screen; None when it cannot be built (warned once)."""
    return _SCREEN.get()


def _tables(domain: TrainingDomain) -> tuple[np.ndarray, ...]:
    """The envelope as arrays for the C screen: centre_ok (E,), kth_lo, kth_hi (E,), lo, hi (E, E, RANKS) with
    lo = inf, hi = -inf where no range exists, required (E, E, RANKS) and short_of (E, E, RANKS + 1). Built
    per call (E² RANKS look-ups: tens of µs); the domain's dicts may change between calls."""
    n_el = len(domain.elements)
    centre_ok = np.zeros(n_el, dtype=np.uint8)
    kth_lo = np.full(n_el, np.inf)
    kth_hi = np.full(n_el, -np.inf)
    lo = np.full((n_el, n_el, RANKS), np.inf)
    hi = np.full((n_el, n_el, RANKS), -np.inf)
    required = np.zeros((n_el, n_el, RANKS), dtype=np.uint8)
    needed = set(domain.required)
    for a, name_a in enumerate(domain.elements):
        if name_a in domain.kth:
            centre_ok[a] = 1
            kth_lo[a], kth_hi[a] = domain.kth[name_a]
        for b, name_b in enumerate(domain.elements):
            for m in range(RANKS):
                pair = pair_name(name_a, name_b, m + 1)
                if pair in domain.nearest:
                    lo[a, b, m], hi[a, b, m] = domain.nearest[pair]
                required[a, b, m] = pair in needed
    # short_of[a, b, c]: some rank m >= c is required, so a row with only c B atoms among its k flags
    short_of = np.zeros((n_el, n_el, RANKS + 1), dtype=np.uint8)
    short_of[:, :, :RANKS] = np.flip(np.maximum.accumulate(np.flip(required, axis=2), axis=2), axis=2)
    return tuple(np.ascontiguousarray(t) for t in (centre_ok, kth_lo, kth_hi, lo, hi, required, short_of))


def _screen(domain: TrainingDomain, species: np.ndarray, index: np.ndarray, distances: np.ndarray,
            threads: Optional[int]) -> Optional[np.ndarray]:
    """:func:`outside` by the compiled screen (``species``: int64); None where the numpy path must serve: no
    library, LAMMPS_PHASE_KNN=tree, rows that do not ascend or hold NaN, indices out of range, odd inputs."""
    index, distances = np.asarray(index), np.asarray(distances)
    if (len(domain.elements) > _MAX_ELEMENTS or index.ndim != 2 or index.shape != distances.shape
            or index.shape[1] < 1 or not np.issubdtype(index.dtype, np.integer) or len(species) < len(index)):
        return None
    if cell_knn.forced_off():
        return None
    lib = _screen_library()
    if lib is None:
        return None
    if distances.dtype.type not in (np.float32, np.float64):
        distances = distances.astype(np.float64)
    if index.dtype.type not in (np.int32, np.int64):
        index = index.astype(np.int64)
    distances, index = np.ascontiguousarray(distances), np.ascontiguousarray(index)
    species = np.ascontiguousarray(species, dtype=np.int64)
    rows, ld = index.shape
    flags = np.zeros(rows, dtype=np.bool_)
    if rows == 0:
        return flags
    tables = _tables(domain)
    n_threads = int(threads) if threads and threads > 0 else (os.cpu_count() or 1)
    fn = getattr(lib, f"domain_screen_{_SCREEN_KINDS[(distances.dtype.type, index.dtype.type)]}")
    err = fn(rows, ld, min(int(domain.k), ld), distances.ctypes.data, index.ctypes.data, species.ctypes.data,
             len(species), 0, len(domain.elements), RANKS, *(t.ctypes.data for t in tables), n_threads,
             flags.ctypes.data)
    return flags if err == 0 else None
