"""Classifier.classify_atoms: an ase.Atoms gives the same labels as classify() on its arrays."""

import numpy as np
import pytest
from ase import Atoms

from lammps_phase import Classifier
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.data.structures import build, supercell


@pytest.fixture(scope="module")
def clf(random_sio2_checkpoint):
    return Classifier.load(random_sio2_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def quartz():
    c = supercell(build("alpha_quartz"), 12.0)
    rng = np.random.default_rng(3)
    return c.positions + rng.normal(scale=0.05, size=c.positions.shape), np.asarray(c.cell), np.array(c.symbols)


def test_periodic_atoms_equal_classify(clf, quartz):
    pos, cell, sym = quartz
    ref = clf.classify(pos, cell, sym)
    assert len(set(ref.labels.tolist())) > 1, "random weights should give several labels"
    res = clf.classify_atoms(Atoms(symbols=list(sym), positions=pos, cell=cell, pbc=True))
    np.testing.assert_array_equal(res.labels, ref.labels)
    np.testing.assert_allclose(res.confidence, ref.confidence, rtol=0, atol=1e-6)
    assert res.classes == clf.classes
    # threshold is passed through
    thr = float(np.median(ref.confidence))
    low = clf.classify_atoms(Atoms(symbols=list(sym), positions=pos, cell=cell, pbc=True), threshold=thr)
    np.testing.assert_array_equal(low.labels, clf.classify(pos, cell, sym, threshold=thr).labels)
    assert (low.labels == -1).any()


def test_mixed_and_open_boundaries(clf, quartz):
    pos, cell, sym = quartz
    slab = Atoms(symbols=list(sym), positions=pos, cell=cell, pbc=[True, True, False])
    slab_ref = clf.classify(pos, cell, sym, pbc=(True, True, False))
    np.testing.assert_array_equal(clf.classify_atoms(slab).labels, slab_ref.labels)
    assert (slab_ref.labels != clf.classify(pos, cell, sym).labels).any(), "the slab's open z must matter"
    cluster = Atoms(symbols=list(sym), positions=pos)  # no cell, no pbc
    open_ref = clf.classify(pos, None, sym, pbc=(False, False, False))
    np.testing.assert_array_equal(clf.classify_atoms(cluster).labels, open_ref.labels)
    # periodic boundaries differ from open ones at the surface: the periodic flags were honoured
    periodic = clf.classify_atoms(Atoms(symbols=list(sym), positions=pos, cell=cell, pbc=True)).labels
    assert (periodic != open_ref.labels).any()


def test_unknown_element_message(clf, quartz):
    pos, cell, sym = quartz
    with pytest.raises(LammpsPhaseError, match="Cu"):
        clf.classify_atoms(Atoms(symbols=["Cu"] * len(pos), positions=pos, cell=cell, pbc=True))
