"""LabelMemory (lammps_phase.inference.memory): each atom's class probabilities averaged over labellings. The
Classifier's labels from it: tests/inference/test_classify_cli.py; inside LAMMPS: tests/insitu/test_label_memory.py."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.memory import LabelMemory


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
