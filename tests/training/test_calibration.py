"""Temperature scaling and the default threshold, on logits whose true calibration is known."""

import numpy as np
import pytest
import torch

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.training import calibration


def overconfident(n: int = 20000, classes: int = 5, factor: float = 3.0, seed: int = 0):
    """Labels drawn from softmax(z); the network reports factor * z, so the right temperature is `factor`."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, classes, generator=g) * 1.5
    z[torch.arange(n), torch.randint(0, classes, (n,), generator=g)] += 2.0
    labels = torch.multinomial(torch.softmax(z, dim=-1), 1, generator=g).squeeze(1)
    return factor * z, labels


def test_fitted_temperature_undoes_the_overconfidence():
    logits, labels = overconfident(factor=3.0)
    assert calibration.fit_temperature(logits, labels) == pytest.approx(3.0, rel=0.1)
    logits, labels = overconfident(factor=0.5, seed=1)  # under-confident: T < 1
    assert calibration.fit_temperature(logits, labels) == pytest.approx(0.5, rel=0.1)


def test_calibration_lowers_nll_and_ece_and_keeps_labels():
    logits, labels = overconfident()
    result = calibration.calibrate(logits, labels)
    assert result.nll_after < result.nll_before and result.ece_after < 0.5 * result.ece_before
    assert result.ece_after < 0.02
    # scaling never changes which class wins
    assert torch.equal((logits / result.temperature).argmax(-1), logits.argmax(-1))


def test_threshold_costs_at_most_the_allowed_accuracy():
    logits, labels = overconfident()
    result = calibration.calibrate(logits, labels, max_drop=0.002)
    assert 0.0 < result.threshold < 1.0 and result.other_fraction > 0.0
    assert result.accuracy - result.accuracy_with_threshold <= 0.002 + 1e-12
    stricter = calibration.calibrate(logits, labels, max_drop=0.02)
    assert stricter.threshold > result.threshold and stricter.other_fraction > result.other_fraction


def test_choose_threshold_counts_right_atoms_below_it():
    confidence = np.array([0.3, 0.4, 0.5, 0.6, 0.9, 0.95, 0.99, 0.999, 0.9999, 0.99999])
    correct = np.array([False, True, False, True, True, True, True, True, True, True])
    assert calibration.choose_threshold(confidence, correct, max_drop=0.1) == pytest.approx(0.6)  # only 0.4 lost
    assert calibration.choose_threshold(confidence, correct, max_drop=0.0) == 0.0
    # every atom right and certain (float32 rounds to 1): the threshold stays below 1, which a checkpoint can hold
    assert calibration.choose_threshold(np.ones(2000, np.float32), np.ones(2000, bool)) < 1.0


def test_ignored_atoms_do_not_count_and_too_few_atoms_are_refused():
    logits, labels = overconfident(n=2000)
    labels[:1000] = -1
    assert calibration.calibrate(logits, labels).atoms == 1000
    with pytest.raises(LammpsPhaseError, match="too few"):
        calibration.calibrate(logits[:50], labels[1000:1050])
