"""Classifier API inputs: pbc as one bool, thresholds as probabilities, only devices that can label."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_phase import Classifier
from lammps_phase.model import fastpath
from lammps_phase.inference.classify import pbc_flags, resolve_device
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.data.structures import build, supercell


@pytest.fixture(scope="module")
def clf(random_sio2_checkpoint):
    return Classifier.load(random_sio2_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def quartz():
    c = supercell(build("alpha_quartz"), 10.0)
    return c.positions, c.cell, np.array(c.symbols)


def test_pbc_may_be_one_bool_for_all_axes(clf, quartz):
    pos, cell, sym = quartz
    assert np.array_equal(clf.classify(pos, cell, sym, pbc=True).labels,
                          clf.classify(pos, cell, sym, pbc=(True, True, True)).labels)
    assert np.array_equal(clf.classify(pos, cell, sym, pbc=False).labels,
                          clf.classify(pos, cell, sym, pbc=(False, False, False)).labels)
    assert pbc_flags(np.array([1, 0, 1])) == (True, False, True)
    for bad in ((True, True), "yes", (True, True, "no"), [[True] * 3] * 2):
        with pytest.raises(LammpsPhaseError, match="pbc must be one bool or three"):
            clf.classify(pos, cell, sym, pbc=bad)


@pytest.mark.parametrize("threshold", [1.5, -0.1, float("nan"), float("inf"), "high"])
def test_a_threshold_is_a_probability(random_sio2_checkpoint, clf, quartz, threshold):
    with pytest.raises(LammpsPhaseError, match=r"must be a number in \[0, 1\]"):
        Classifier.load(random_sio2_checkpoint, device="cpu", threshold=threshold)
    pos, cell, sym = quartz
    with pytest.raises(LammpsPhaseError, match=r"must be a number in \[0, 1\]"):
        clf.classify(pos, cell, sym, threshold=threshold)


def test_no_threshold_means_the_checkpoints_calibrated_default(random_sio2_checkpoint):
    # an uncalibrated checkpoint has default 0: every atom gets a class
    assert Classifier.load(random_sio2_checkpoint, device="cpu", threshold=None).threshold == 0.0


@pytest.mark.parametrize("device", ["meta", "mps", "cpu:x", "", "cuda:99"])
def test_only_devices_that_can_label(device):
    with pytest.raises(LammpsPhaseError, match="device"):
        resolve_device(device)


def test_a_weighting_too_steep_for_the_table_is_evaluated_exactly(random_sio2_checkpoint, monkeypatch, quartz):
    """The CLI has no weighting option: the Classifier takes the exact path itself instead of advising one."""
    real = fastpath.FastPhaseNet
    seen = []

    def picky(model, weighting="table", **kwargs):
        seen.append(weighting)
        if weighting == "table":
            raise LammpsPhaseError("the spatial weighting varies too fast to tabulate (interpolation error 1); "
                                   "use weighting='exact'")
        return real(model, weighting=weighting, **kwargs)

    monkeypatch.setattr(fastpath, "FastPhaseNet", picky)
    clf = Classifier.load(random_sio2_checkpoint, device="cpu", fast="eager")
    assert seen == ["table", "exact"] and clf.fast.weighting == "exact"
    pos, cell, sym = quartz
    ref = Classifier.load(random_sio2_checkpoint, device="cpu", fast=False)
    assert np.array_equal(clf.classify(pos, cell, sym).labels, ref.classify(pos, cell, sym).labels)
