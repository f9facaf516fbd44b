"""P-point environments with a label per atom, and their on-disk datasets (HDF5).

An environment is the centre atom and its P − 1 nearest periodic neighbours, as coordinates relative
to the centre (centre first). Training sees environments; inference sees the whole sample as one.
Every environment carries the metadata needed to split by run and to report per temperature.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.neighbors import knn

META_FIELDS = ("temperature", "pressure", "run_id")


@dataclass
class EnvironmentSet:
    """Arrays of E environments of P points: positions (E,P,3) float32, species (E,P) int8, labels (E,P) int16.

    ``temperature`` (K), ``pressure`` (GPa) and ``run_id`` are per environment; ``classes`` and
    ``elements`` name the label and species indices.
    """

    positions: np.ndarray
    species: np.ndarray
    labels: np.ndarray
    classes: list[str]
    elements: list[str]
    temperature: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    pressure: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    run_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    def __post_init__(self) -> None:
        e = len(self.positions)
        for name in META_FIELDS:
            arr = getattr(self, name)
            if len(arr) == 0 and e:
                setattr(self, name, np.zeros(e, dtype=arr.dtype))
        if not (len(self.species) == len(self.labels) == e):
            raise LammpsPhaseError("environment arrays disagree in length")

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def points(self) -> int:
        return self.positions.shape[1]

    @staticmethod
    def concatenate(sets: Sequence["EnvironmentSet"]) -> "EnvironmentSet":
        if not sets:
            raise LammpsPhaseError("no environments to concatenate")
        first = sets[0]
        for s in sets[1:]:
            if s.classes != first.classes or s.elements != first.elements or s.points != first.points:
                raise LammpsPhaseError("environment sets differ in classes, elements or points and cannot be merged")
        cat = lambda name: np.concatenate([getattr(s, name) for s in sets])  # noqa: E731
        return EnvironmentSet(
            cat("positions"), cat("species"), cat("labels"), list(first.classes), list(first.elements),
            cat("temperature"), cat("pressure"), cat("run_id"),
        )

    ARRAYS = ("positions", "species", "labels", *META_FIELDS)

    def save(self, path: str | os.PathLike, attrs: Optional[dict] = None) -> None:
        """HDF5 with compressed arrays; classes, elements and free-form metadata as attributes."""
        _save_h5(path, {n: getattr(self, n) for n in self.ARRAYS}, self.classes, self.elements, attrs)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "EnvironmentSet":
        return cls(**_load_h5(path, cls.ARRAYS, "environment"))


def _save_h5(path, arrays: dict, classes: Sequence[str], elements: Sequence[str], attrs: Optional[dict] = None) -> None:
    """Write atomically (temp file + rename), so an interrupted stage never leaves a half-written dataset."""
    import h5py

    from lammps_phase.atomic_write import atomic_path

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name, arr in arrays.items():
            f.create_dataset(name, data=arr, compression="gzip", compression_opts=4)
        f.attrs["classes"] = list(classes)
        f.attrs["elements"] = list(elements)
        for key, val in (attrs or {}).items():
            f.attrs[key] = val


def _load_h5(path, names: Sequence[str], what: str) -> dict:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            out = {name: f[name][()] for name in names}
            out["classes"] = [str(c) for c in f.attrs["classes"]]
            out["elements"] = [str(e) for e in f.attrs["elements"]]
    except (OSError, KeyError) as err:
        raise LammpsPhaseError(f"{path} is not a lammps-phase {what} dataset ({err})") from None
    return out


def extract_environments(
    positions: np.ndarray,
    cell: Optional[np.ndarray],
    species_idx: np.ndarray,
    labels: np.ndarray,
    points: int,
    centres: np.ndarray,
    pbc: Sequence[bool] = (True, True, True),
    origin: Sequence[float] = (0.0, 0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Environments around the given centre atoms: (E,P,3) relative positions (centre first), species, labels."""
    nl = knn(positions, points - 1, cell=cell, pbc=pbc, origin=origin, query=np.asarray(centres))
    rel = np.concatenate([np.zeros((len(centres), 1, 3), np.float32), nl.vectors.astype(np.float32)], axis=1)
    idx = np.concatenate([np.asarray(centres)[:, None], nl.index], axis=1)
    return rel, species_idx[idx].astype(np.int8), labels[idx].astype(np.int16)


def sample_environments(
    positions: np.ndarray,
    cell: Optional[np.ndarray],
    species_idx: np.ndarray,
    labels: np.ndarray,
    points: int,
    count: int,
    rng: np.random.Generator,
    classes: Sequence[str],
    elements: Sequence[str],
    pbc: Sequence[bool] = (True, True, True),
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    temperature: float = 0.0,
    pressure: float = 0.0,
    run_id: int = 0,
) -> EnvironmentSet:
    """``count`` environments around random distinct centres of one snapshot."""
    n = len(positions)
    centres = rng.choice(n, size=min(count, n), replace=False)
    rel, sp, lab = extract_environments(positions, cell, species_idx, labels, points, centres, pbc, origin)
    e = len(centres)
    return EnvironmentSet(
        rel, sp, lab, list(classes), list(elements),
        np.full(e, temperature, np.float32), np.full(e, pressure, np.float32), np.full(e, run_id, np.int32),
    )


@dataclass
class SampleSet:
    """Whole periodic snapshots as k-NN graphs: every atom with its complete neighbourhood.

    This is what the network sees at inference (the whole sample is one graph), so training on it
    removes the environment-surface bias: in a P-point environment most atoms sit at its surface
    with one-sided neighbourhoods. Atoms of all snapshots are concatenated; ``offsets`` (S+1,)
    delimit snapshots and ``index`` is local to each snapshot.
    """

    species: np.ndarray  # (N,) int8
    labels: np.ndarray  # (N,) int16
    index: np.ndarray  # (N, k) int32, local to the snapshot
    vectors: np.ndarray  # (N, k, 3) float32
    offsets: np.ndarray  # (S+1,) int64
    classes: list[str]
    elements: list[str]
    temperature: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    pressure: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    run_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    def __post_init__(self) -> None:
        s = len(self.offsets) - 1
        for name in META_FIELDS:
            arr = getattr(self, name)
            if len(arr) == 0 and s:
                setattr(self, name, np.zeros(s, dtype=arr.dtype))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def k(self) -> int:
        return self.index.shape[1]

    def atoms(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def subset(self, which: np.ndarray) -> "SampleSet":
        which = np.flatnonzero(which) if np.asarray(which).dtype == bool else np.asarray(which)
        parts = [self.atoms(i) for i in which]
        sizes = np.array([p.stop - p.start for p in parts], dtype=np.int64)
        cat = lambda a: np.concatenate([a[p] for p in parts]) if parts else a[:0]  # noqa: E731
        return SampleSet(
            cat(self.species), cat(self.labels), cat(self.index), cat(self.vectors),
            np.concatenate([[0], np.cumsum(sizes)]), list(self.classes), list(self.elements),
            self.temperature[which], self.pressure[which], self.run_id[which],
        )

    @staticmethod
    def from_snapshot(
        positions: np.ndarray, cell: Optional[np.ndarray], species_idx: np.ndarray, labels: np.ndarray, k: int,
        classes: Sequence[str], elements: Sequence[str], pbc: Sequence[bool] = (True, True, True),
        origin: Sequence[float] = (0.0, 0.0, 0.0), temperature: float = 0.0, pressure: float = 0.0, run_id: int = 0,
    ) -> "SampleSet":
        nl = knn(positions, k, cell=cell, pbc=pbc, origin=origin)
        n = len(positions)
        return SampleSet(
            np.asarray(species_idx, np.int8), np.asarray(labels, np.int16), nl.index.astype(np.int32), nl.vectors,
            np.array([0, n], np.int64), list(classes), list(elements),
            np.array([temperature], np.float32), np.array([pressure], np.float32), np.array([run_id], np.int32),
        )

    @staticmethod
    def concatenate(sets: Sequence["SampleSet"]) -> "SampleSet":
        if not sets:
            raise LammpsPhaseError("no samples to concatenate")
        first = sets[0]
        for s in sets[1:]:
            if s.classes != first.classes or s.elements != first.elements or s.k != first.k:
                raise LammpsPhaseError("sample sets differ in classes, elements or k and cannot be merged")
        sizes = np.concatenate([np.diff(s.offsets) for s in sets])
        cat = lambda name: np.concatenate([getattr(s, name) for s in sets])  # noqa: E731
        return SampleSet(
            cat("species"), cat("labels"), cat("index"), cat("vectors"),
            np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), list(first.classes), list(first.elements),
            cat("temperature"), cat("pressure"), cat("run_id"),
        )

    ARRAYS = ("species", "labels", "index", "vectors", "offsets", *META_FIELDS)

    def save(self, path: str | os.PathLike) -> None:
        _save_h5(path, {n: getattr(self, n) for n in self.ARRAYS}, self.classes, self.elements)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SampleSet":
        return cls(**_load_h5(path, cls.ARRAYS, "sample"))
