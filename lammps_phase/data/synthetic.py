"""Synthetic labelled samples without MD: noisy lattices and random dense packings.

They exercise the whole pipeline (environments → training → Classifier) in seconds, which the
test suite and the quick demo need; real training data comes from heating runs (heating.py).
Lattices are scaled to one nearest-neighbour distance so that only the arrangement tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.spatial import cKDTree

from lammps_phase.data.datasets import EnvironmentSet, SampleSet, sample_environments
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.data.structures import build, supercell

# lattice constant giving nearest-neighbour distance 1 for each simple lattice
_A_FOR_UNIT_NN = {"fcc": np.sqrt(2.0), "bcc": 2.0 / np.sqrt(3.0), "hcp": 1.0, "sc": 1.0, "diamond": 4.0 / np.sqrt(3.0)}
RANDOM = "random_packing"


@dataclass
class Sample:
    """One periodic configuration with a label per atom."""

    positions: np.ndarray
    cell: np.ndarray
    symbols: np.ndarray
    labels: np.ndarray


def noisy_lattice(
    lattice: str, min_length: float, nn_distance: float, noise: float, rng: np.random.Generator, element: str = "Cu"
) -> tuple[np.ndarray, np.ndarray]:
    """A periodic orthogonal supercell of a simple lattice with Gaussian thermal noise (σ = noise·d_nn)."""
    if lattice not in _A_FOR_UNIT_NN:
        raise LammpsPhaseError(f"unknown lattice {lattice!r}: choose from {', '.join(_A_FOR_UNIT_NN)}")
    crystal = supercell(build(lattice, element=element, a=_A_FOR_UNIT_NN[lattice] * nn_distance), min_length)
    pos = crystal.positions + rng.normal(scale=noise * nn_distance, size=crystal.positions.shape)
    return pos, crystal.cell


def random_dense_packing(
    box: float, density: float, min_distance: float, rng: np.random.Generator, sweeps: int = 500
) -> np.ndarray:
    """Random points in a periodic cube pushed apart until no pair is closer than ``min_distance``.

    Random insertion followed by overlap removal (each clashing pair moves apart by its overlap)
    gives a disordered, liquid-like packing up to packing fractions well above random insertion's.
    """
    n = int(round(density * box**3))
    pos = rng.random((n, 3)) * box
    for _ in range(sweeps):
        pos %= box
        pairs = cKDTree(pos, boxsize=box).query_pairs(min_distance * 1.0001, output_type="ndarray")
        if len(pairs) == 0:
            return pos
        d = pos[pairs[:, 1]] - pos[pairs[:, 0]]
        d -= box * np.round(d / box)
        r = np.linalg.norm(d, axis=1, keepdims=True)
        push = 0.5 * (min_distance * 1.01 - r) * d / np.maximum(r, 1e-9)
        np.add.at(pos, pairs[:, 0], -push)
        np.add.at(pos, pairs[:, 1], push)
    raise LammpsPhaseError(f"could not pack {n} points at minimum distance {min_distance}: lower the density")


def make_sample(
    classes: Sequence[str], min_length: float, noise: float, rng: np.random.Generator, nn_distance: float = 2.5
) -> list[Sample]:
    """One sample per class name: lattices from structures.py, or ``random_packing`` at a comparable density."""
    out = []
    for label, name in enumerate(classes):
        if name == RANDOM:
            density = 1.2 / (nn_distance**3)  # between bcc (1.30) and sc (1.0) number density at this d_nn
            box = min_length
            pos = random_dense_packing(box, density, 0.85 * nn_distance, rng)
            cell = np.eye(3) * box
        else:
            pos, cell = noisy_lattice(name, min_length, nn_distance, noise, rng)
        out.append(Sample(pos, cell, np.full(len(pos), "Cu"), np.full(len(pos), label, dtype=np.int64)))
    return out


def synthetic_environments(
    classes: Sequence[str],
    points: int,
    per_class: int,
    seed: int,
    min_length: float = 18.0,
    noise: float = 0.06,
    samples_per_class: int = 2,
    run_offset: int = 0,
) -> EnvironmentSet:
    """Environments from freshly generated samples (a new seed gives entirely new configurations)."""
    rng = np.random.default_rng(seed)
    sets = []
    for s in range(samples_per_class):
        for label, smp in enumerate(make_sample(classes, min_length, noise, rng)):
            species = np.zeros(len(smp.positions), dtype=np.int64)
            sets.append(
                sample_environments(
                    smp.positions, smp.cell, species, smp.labels, points, per_class // samples_per_class, rng,
                    classes=list(classes), elements=["Cu"], run_id=run_offset + s * len(classes) + label,
                )
            )
    return EnvironmentSet.concatenate(sets)


def synthetic_samples(
    classes: Sequence[str], k: int, per_class: int, seed: int, min_length: float = 12.0, noise: float = 0.06,
    run_offset: int = 0,
) -> SampleSet:
    """``per_class`` small periodic snapshots per class as k-NN graphs (a new seed gives new configurations)."""
    rng = np.random.default_rng(seed)
    sets = []
    for s in range(per_class):
        for label, smp in enumerate(make_sample(classes, min_length, noise, rng)):
            sets.append(
                SampleSet.from_snapshot(
                    smp.positions, smp.cell, np.zeros(len(smp.positions), np.int64), smp.labels, k,
                    classes, ["Cu"], run_id=run_offset + s * len(classes) + label,
                )
            )
    return SampleSet.concatenate(sets)
