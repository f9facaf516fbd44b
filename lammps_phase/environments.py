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
from lammps_phase.neighbors import knn

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

    def subset(self, mask_or_index: np.ndarray) -> "EnvironmentSet":
        return EnvironmentSet(
            self.positions[mask_or_index],
            self.species[mask_or_index],
            self.labels[mask_or_index],
            list(self.classes),
            list(self.elements),
            self.temperature[mask_or_index],
            self.pressure[mask_or_index],
            self.run_id[mask_or_index],
        )

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

    def save(self, path: str | os.PathLike, attrs: Optional[dict] = None) -> None:
        """HDF5 with compressed arrays; classes, elements and free-form metadata as attributes."""
        import h5py

        tmp = f"{path}.tmp"
        with h5py.File(tmp, "w") as f:
            for name in ("positions", "species", "labels", *META_FIELDS):
                f.create_dataset(name, data=getattr(self, name), compression="gzip", compression_opts=4)
            f.attrs["classes"] = list(self.classes)
            f.attrs["elements"] = list(self.elements)
            for key, val in (attrs or {}).items():
                f.attrs[key] = val
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "EnvironmentSet":
        import h5py

        try:
            with h5py.File(path, "r") as f:
                arrays = {name: f[name][()] for name in ("positions", "species", "labels", *META_FIELDS)}
                classes = [str(c) for c in f.attrs["classes"]]
                elements = [str(e) for e in f.attrs["elements"]]
        except (OSError, KeyError) as err:
            raise LammpsPhaseError(f"{path} is not a lammps-phase environment dataset ({err})") from None
        return cls(classes=classes, elements=elements, **arrays)


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
