"""The shipped Cu model (checkpoints/cu.pt, from inputs/train_cu.toml) labels freshly built Cu crystals.

The structures are made here with lammps_phase.data.structures (not taken from the training runs), at the
lattice constants of the config, with ~0.05 Å of random thermal noise and a random orientation.
"""

from pathlib import Path

import numpy as np
import pytest

from lammps_phase.data import structures
from lammps_phase.inference.classify import Classifier
from lammps_phase.training.config import load_config

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "inputs" / "train_cu.toml"
CHECKPOINT = REPO / "checkpoints" / "cu.pt"


@pytest.fixture(scope="module")
def config():
    return load_config(CONFIG)


@pytest.fixture(scope="module")
def classifier():
    return Classifier.load(CHECKPOINT, device="cpu", fast=False, threads=1)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_checkpoint_classes_are_the_config_classes(config, classifier):
    assert classifier.classes == config.classes
    assert classifier.elements == ["Cu"]
    assert "bcc" not in classifier.classes  # dropped: bcc Cu is mechanically unstable in this EAM (see the config)


@pytest.mark.parametrize("phase", ["fcc", "hcp"])
@pytest.mark.parametrize("rotate", [False, True])
def test_fresh_crystals_are_labelled_correctly(config, classifier, phase, rotate):
    spec = next(p for p in config.phases if p.name == phase)
    crystal = structures.supercell(structures.build(phase, **spec.lattice), 12.0)
    rng = np.random.default_rng(20240611)
    positions = crystal.positions + rng.normal(scale=0.05, size=crystal.positions.shape)
    cell = np.asarray(crystal.cell, dtype=float)
    if rotate:
        rot = _rotation(rng)
        positions, cell = positions @ rot.T, cell @ rot.T
    result = classifier.classify(positions, cell, list(crystal.symbols))
    fraction = float(np.mean(result.labels == classifier.classes.index(phase)))
    assert fraction >= 0.95, f"{phase}: {fraction:.1%} of {len(positions)} atoms labelled {phase}; {result.fractions()}"
