"""Neighbour consensus (lammps_phase.inference.consensus): p̃_i = (1 − w) p_i + w · mean of its k neighbours' p.
The Classifier's labels from it and the CLI option; inside LAMMPS: tests/insitu/test_neighbour_consensus.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lammps_phase.data import structures
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.classify import Classifier
from lammps_phase.inference.consensus import check_consensus, neighbour_consensus
from lammps_phase.inference.neighbors import knn
from frame_helpers import noisy_quartz


def test_the_blend_is_the_equation():
    p = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.5, 0.5]])
    index = np.array([[1, 2], [0, 2], [1, 3], [0, 1]])
    blended = neighbour_consensus(p, index, 0.5)
    # atom 0: 0.5·(1, 0) + 0.5·mean((0, 1), (0, 1)) = (0.5, 0.5); atom 2: 0.5·(0, 1) + 0.5·mean((0, 1), (.5, .5))
    np.testing.assert_allclose(blended, [[0.5, 0.5], [0.25, 0.75], [0.125, 0.875], [0.5, 0.5]])
    np.testing.assert_allclose(blended.sum(axis=1), 1.0)  # still probabilities
    np.testing.assert_allclose(neighbour_consensus(p, index, 0.0), p)  # w = 0: the atom alone
    np.testing.assert_allclose(neighbour_consensus(p, index, 1.0)[0], [0.0, 1.0])  # w = 1: its neighbours alone


def test_rows_with_a_halo_read_as_the_whole_graph():
    """Local mode: rows [0, R) and halo atoms after them; the halo's probabilities come from ``halo``."""
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(4), size=12).astype(np.float32)
    index = rng.integers(0, 12, size=(12, 5))
    whole = neighbour_consensus(p, index, 0.6)
    rows = 7
    asked = []

    def halo(h: torch.Tensor) -> torch.Tensor:  # what the owners of atoms 7..11 would send
        asked.append(tuple(h.shape))
        return torch.from_numpy(p[rows:])

    np.testing.assert_allclose(neighbour_consensus(p[:rows], index[:rows], 0.6, halo), whole[:rows], rtol=1e-6)
    assert asked == [(rows, 4)]
    with pytest.raises(LammpsPhaseError, match="every neighbour's probabilities"):
        neighbour_consensus(p[:rows], index[:rows], 0.6)  # no halo: atoms 7..11 were never labelled


def test_bad_weights_say_what_the_weight_is():
    assert check_consensus("0.5") == 0.5
    for bad in (-0.1, 1.5, "half", None):
        with pytest.raises(LammpsPhaseError, match="consensus"):
            check_consensus(bad)
    with pytest.raises(LammpsPhaseError, match="consensus"):
        Classifier.load("checkpoints/sio2.pt", device="cpu", consensus=2.0)


def test_the_classifier_blends_its_calibrated_probabilities_over_its_own_graph(random_sio2_checkpoint):
    positions, cell, species = noisy_quartz()
    plain = Classifier.load(random_sio2_checkpoint, device="cpu", threshold=0.0)
    blended = Classifier.load(random_sio2_checkpoint, device="cpu", threshold=0.0, consensus=0.7)
    neighbors = knn(positions, plain.k, cell=cell)
    p = plain.probabilities(plain.logits(plain.species_indices(species), neighbors))
    expected = neighbour_consensus(p, neighbors.index, 0.7)
    result = blended.classify(positions, cell, species)
    assert np.array_equal(result.labels, expected.argmax(axis=1))
    np.testing.assert_allclose(result.confidence, expected.max(axis=1), rtol=1e-5)
    assert (result.labels != plain.classify(positions, cell, species).labels).any(), "nothing changed: proves nothing"


def test_cli_classify_with_consensus(tmp_path, capsys, random_sio2_checkpoint):
    """--consensus W gives the Classifier's consensus labels; a weight outside [0, 1] is refused by argparse."""
    from lammps_phase.cli import main
    from lammps_phase.data.structures import supercell
    from lammps_phase.inference.formats import DumpWriter, Frame, read_dump

    c = supercell(structures.build("alpha_quartz"), 12.0)
    pos = c.positions + np.random.default_rng(1).normal(scale=0.15, size=c.positions.shape)
    types = np.where(np.array(c.symbols) == "Si", 1, 2)
    src = tmp_path / "in.dump"
    with DumpWriter(src) as w:
        cols = {"id": np.arange(1, len(pos) + 1), "type": types, "x": pos[:, 0], "y": pos[:, 1], "z": pos[:, 2]}
        w.write(Frame(0, np.zeros(3), np.diag(c.cell).copy(), np.zeros(3), (True, True, True), cols))
    out = tmp_path / "out.dump"
    assert main(["classify", str(src), "--model", str(random_sio2_checkpoint), "--types", "Si O", "-o", str(out),
                 "-q", "--consensus", "0.5"]) == 0
    (got,) = read_dump(out)
    expect = Classifier.load(random_sio2_checkpoint, device="cpu", consensus=0.5).classify(pos, c.cell, c.symbols)
    np.testing.assert_array_equal(got.columns["phase"], expect.labels)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(["classify", str(src), "--model", str(random_sio2_checkpoint), "--types", "Si O", "-o", str(out),
              "--consensus", "1.5"])
    assert stopped.value.code == 2 and "consensus 1.5 is outside [0, 1]" in capsys.readouterr().err
    assert main(["classify", str(src), "--model", str(random_sio2_checkpoint), "--types", "Si O", "-o",
                 str(tmp_path / "default.dump"), "-q", "--consensus", "checkpoint"]) == 0  # uncalibrated: 0, the network
