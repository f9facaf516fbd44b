"""Calibrated confidences and the training-domain flag, through the Classifier (the one road to labels)."""

import numpy as np
import pytest
import torch

from conftest import make_random_checkpoint
from lammps_phase.data import structures
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference import domain
from lammps_phase.inference.classify import Classifier
from lammps_phase.inference.neighbors import knn
from lammps_phase.model import checkpoint as ckpt_io

ELEMENTS = ["Si", "O"]


def quartz(seed: int, swap: bool = False, scale: float = 1.0):
    crystal = structures.supercell(structures.build("alpha_quartz"), min_length=14.0)
    rng = np.random.default_rng(seed)
    positions = np.asarray(crystal.positions) * scale + rng.normal(0.0, 0.05, np.shape(crystal.positions))
    species = np.array(crystal.symbols)
    if swap:
        species = np.where(species == "Si", "O", "Si")
    return positions, np.asarray(crystal.cell) * scale, species


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A random 4-class checkpoint given a quartz training domain, temperature 2 and threshold 0.3."""
    folder = tmp_path_factory.mktemp("calibrated")
    path = make_random_checkpoint(folder / "raw.pt", k=12)
    ckpt = ckpt_io.load(path)
    graphs = []
    for seed in range(3):
        pos, cell, species = quartz(seed)
        nl = knn(pos, ckpt.k, cell=cell)
        graphs.append((np.array([ELEMENTS.index(s) for s in species]), nl.index, nl.distances))
    ckpt.domain = domain.measure(graphs, ELEMENTS, ckpt.k).to_dict()
    ckpt.calibration = {"temperature": 2.0, "threshold": 0.3}
    ckpt_io.save(ckpt, folder / "calibrated.pt")
    return path, folder / "calibrated.pt"


def test_calibration_and_domain_survive_save_and_load(calibrated):
    ckpt = ckpt_io.load(calibrated[1])
    assert ckpt.temperature == 2.0 and ckpt.default_threshold == 0.3
    assert domain.TrainingDomain.from_dict(ckpt.domain).k == ckpt.k
    raw = ckpt_io.load(calibrated[0])
    assert (raw.temperature, raw.default_threshold, raw.domain) == (1.0, 0.0, {})


def test_confidence_is_the_softmax_of_logits_over_the_temperature(calibrated):
    pos, cell, species = quartz(7)
    raw = Classifier.load(calibrated[0], device="cpu")
    scaled = Classifier.load(calibrated[1], device="cpu", threshold=0.0)
    sp = raw.species_indices(species)
    logits = raw.logits(sp, knn(pos, raw.k, cell=cell))
    expected = torch.softmax(logits / 2.0, dim=-1).max(dim=-1).values.numpy()
    result = scaled.classify(pos, cell, species)
    np.testing.assert_allclose(result.confidence, expected, atol=1e-5)
    assert np.array_equal(result.labels, raw.classify(pos, cell, species).labels)  # scaling never moves a label


def test_the_default_threshold_comes_from_the_checkpoint(calibrated):
    pos, cell, species = quartz(7)
    result = Classifier.load(calibrated[1], device="cpu").classify(pos, cell, species)
    assert np.all((result.labels == -1) == (result.confidence < 0.3))
    explicit = Classifier.load(calibrated[1], device="cpu", threshold=0.0).classify(pos, cell, species)
    assert (explicit.labels >= 0).all()


@pytest.mark.parametrize("probe", [dict(swap=True), dict(scale=0.7), dict(scale=1.4)])
def test_structures_unlike_the_training_data_are_other(calibrated, probe):
    clf = Classifier.load(calibrated[1], device="cpu")
    assert clf.classify(*quartz(7)).unfamiliar == 0
    result = clf.classify(*quartz(7, **probe))
    assert np.mean(result.labels == -1) >= 0.9 and result.unfamiliar >= 0.9 * len(result.labels)
    assert np.all(result.confidence[result.labels == -1] < 0.3)
    unchecked = Classifier.load(calibrated[1], device="cpu", check_domain=False).classify(*quartz(7, **probe))
    assert unchecked.unfamiliar == 0


def test_a_damaged_calibration_is_refused(calibrated, tmp_path):
    ckpt = ckpt_io.load(calibrated[1])
    ckpt.calibration = {"temperature": -1.0, "threshold": 0.3}
    ckpt_io.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(LammpsPhaseError, match="calibration temperature"):
        ckpt_io.load(tmp_path / "bad.pt")
