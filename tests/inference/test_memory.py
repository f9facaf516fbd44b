"""LabelMemory (lammps_phase.inference.memory): each atom's class probabilities averaged over labellings, and the
Classifier's labels read from that average. Inside LAMMPS: tests/insitu/test_label_memory.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lammps_phase import Classifier
from lammps_phase.data.structures import build, supercell
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.memory import LabelMemory
from lammps_phase.inference.neighbors import knn


@pytest.fixture(scope="module")
def classifier(random_sio2_checkpoint):
    return Classifier.load(random_sio2_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def quartz():
    c = supercell(build("alpha_quartz"), 12.0)
    rng = np.random.default_rng(3)
    return c.positions + rng.normal(scale=0.05, size=c.positions.shape), np.asarray(c.cell), list(c.symbols)


def test_rows_never_written_start_from_the_labelling_then_blend():
    memory = LabelMemory.empty(3, 2, weight=0.25)
    first = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    np.testing.assert_allclose(memory.update(first), first)  # nothing remembered yet: the labelling itself
    second = np.array([[0.1, 0.9], [0.2, 0.8], [1.0, 0.0]])
    np.testing.assert_allclose(memory.update(second), 0.25 * second + 0.75 * first)
    memory.values[1] = 0.0  # an atom created since (LAMMPS fills new rows with zeros)
    np.testing.assert_allclose(memory.update(first)[1], first[1])


def test_weight_one_is_no_memory_and_bad_weights_or_shapes_say_so():
    memory = LabelMemory.empty(2, 3, weight=1.0)
    memory.update(np.array([[1.0, 0, 0], [0, 1.0, 0]]))
    p = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    np.testing.assert_allclose(memory.update(p), p)
    for weight in (0.0, 1.5, "half", None):
        with pytest.raises(LammpsPhaseError, match="memory_weight .* must"):
            LabelMemory.empty(2, 3, weight=weight)
    with pytest.raises(LammpsPhaseError, match="one column per class"):
        LabelMemory.empty(2, 4).update(p)


def test_classifier_labels_from_the_blend(classifier, quartz):
    """Labels are the argmax of the blended calibrated probabilities, confidence its maximum; weight 1 reproduces
    the labelling without memory; the memory is written in place."""
    positions, cell, species = quartz
    plain = classifier.classify(positions, cell, species, threshold=0.0)
    assert len(np.unique(plain.labels)) > 1, "a test model that gives one label everywhere proves nothing"
    memory = LabelMemory.empty(len(positions), len(classifier.classes), weight=1.0)
    same = classifier.classify(positions, cell, species, threshold=0.0, memory=memory)
    assert np.array_equal(same.labels, plain.labels)
    np.testing.assert_allclose(same.confidence, plain.confidence, atol=1e-6)
    np.testing.assert_allclose(memory.values.sum(axis=1), 1.0, atol=1e-5)

    earlier = np.random.default_rng(3).dirichlet(np.ones(len(classifier.classes)), size=len(positions))
    memory = LabelMemory(earlier.copy(), weight=0.5)
    blended = classifier.classify(positions, cell, species, threshold=0.0, memory=memory)
    logits = classifier.logits(classifier.species_indices(species),
                               knn(positions, classifier.k, cell=cell))
    expected = 0.5 * torch.softmax(logits.float() / classifier.temperature, dim=-1).numpy() + 0.5 * earlier
    np.testing.assert_allclose(memory.values, expected, atol=1e-6)
    assert np.array_equal(blended.labels, expected.argmax(axis=1))
    np.testing.assert_allclose(blended.confidence, expected.max(axis=1), atol=1e-6)
    assert not np.array_equal(blended.labels, plain.labels)  # the memory did change labels




def test_rows_follow_their_atoms_by_id():
    memory = LabelMemory.empty(0, 2, weight=0.5)
    memory.follow(np.array([10, 20, 30]))
    memory.update(np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]))
    memory.follow(np.array([30, 40, 10]))  # 20 gone, 40 new, the rest reordered
    np.testing.assert_allclose(memory.values, [[0.5, 0.5], [0.0, 0.0], [1.0, 0.0]])
    p = np.array([[0.0, 1.0], [0.2, 0.8], [0.0, 1.0]])
    np.testing.assert_allclose(memory.update(p), [[0.25, 0.75], [0.2, 0.8], [0.5, 0.5]])
    with pytest.raises(LammpsPhaseError, match="atom ids repeat"):
        memory.follow(np.array([1, 1, 2]))
