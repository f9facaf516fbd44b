"""α/β order pooling (lammps_phase.inference.order_pooling): the split between a pair of classes told apart by a
coherent order parameter is taken from the region, each atom keeping its share of the pair. The Classifier, the
calibration, ensembles and the CLI carry its rounds like the consensus weight; inside LAMMPS:
tests/insitu/test_neighbour_consensus.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.classify import Classifier
from lammps_phase.inference.consensus import neighbour_consensus
from lammps_phase.inference.neighbors import knn
from lammps_phase.inference.order_pooling import check_rounds, order_pairs, pool_order
from lammps_phase.model import checkpoint as ckpt_io
from lammps_phase.training.calibration import calibrate
from conftest import make_random_checkpoint
from frame_helpers import noisy_quartz

# columns: alpha, beta, glass
PAIR = [(0, 1)]
# the random test network's classes: with these (seed 0) it reads noisy α-quartz as both quartzes, lone α among β
QUARTZES = ["alpha_quartz", "beta_quartz", "coesite", "amorphous"]


def test_one_round_is_the_equation():
    p = np.array([[0.6, 0.2, 0.2], [0.1, 0.8, 0.1], [0.0, 0.0, 1.0]])
    index = np.array([[1, 2], [0, 2], [0, 1]])
    pooled = pool_order(p, index, PAIR, 1)
    # atom 0: q = 0.8, s = (0.6 + 0.1 + 0) / (0.8 + 0.9 + 0) = 0.7 / 1.7
    s0 = 0.7 / 1.7
    np.testing.assert_allclose(pooled[0], [0.8 * s0, 0.8 * (1 - s0), 0.2], rtol=1e-6)
    np.testing.assert_allclose(pooled[1], [0.9 * s0, 0.9 * (1 - s0), 0.1], rtol=1e-6)  # same region, same split
    np.testing.assert_allclose(pooled[2], p[2])  # no quartz share: nothing to split, and it did not vote
    np.testing.assert_allclose(pooled.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(pool_order(p, index, PAIR, 0), p)  # 0 rounds: off
    np.testing.assert_allclose(pool_order(p, index, [], 8), p)  # no pair among the classes: off


def test_lone_misreads_follow_their_region_and_a_large_region_keeps_its_phase():
    """A chain read α with every fifth atom β; then a β half: the lone ones turn α, the β half stays β but at its
    edge, where the split is the region's, the few atoms within the pooling's reach go with the majority."""
    n = 200
    p = np.zeros((n, 3))
    p[:, 0], p[:, 1] = 0.7, 0.3
    p[::5, 0], p[::5, 1] = 0.4, 0.6  # lone atoms read β
    p[100:, 0], p[100:, 1] = 0.2, 0.8  # a β region
    index = np.array([[(i - 2) % n, (i - 1) % n, (i + 1) % n, (i + 2) % n] for i in range(n)])
    labels = pool_order(p, index, PAIR, 8).argmax(axis=1)
    assert (labels[10:90] == 0).all() and (labels[110:190] == 1).all()
    assert (p[10:90].argmax(axis=1) == 1).any(), "nothing was read β: the test proves nothing"


def test_rows_with_a_halo_read_as_the_whole_graph():
    """Local mode: rows [0, R) and halo atoms after them; each round the halo's (q, q·s) come from ``halo``."""
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(4), size=14).astype(np.float32)
    index = rng.integers(0, 14, size=(14, 5))
    pairs, rounds, rows = [(0, 2)], 3, 8
    whole = pool_order(p, index, pairs, rounds)
    asked = []

    def halo(h: torch.Tensor) -> torch.Tensor:  # what the owners of atoms 8..13 hold at this round
        before = pool_order(p, index, pairs, len(asked))
        asked.append(tuple(h.shape))
        return torch.from_numpy(np.stack([before[rows:, 0] + before[rows:, 2], before[rows:, 0]], axis=1))

    np.testing.assert_allclose(pool_order(p[:rows], index[:rows], pairs, rounds, halo), whole[:rows], rtol=1e-5)
    assert asked == [(rows, 2)] * rounds
    with pytest.raises(LammpsPhaseError, match="every neighbour's probabilities"):
        pool_order(p[:rows], index[:rows], pairs, rounds)


def test_rounds_are_checked_and_pairs_found_by_name():
    assert check_rounds("8") == 8 and check_rounds(0) == 0
    for bad in (-1, 1.5, 65, "many", None):
        with pytest.raises(LammpsPhaseError, match="pooling"):
            check_rounds(bad)
    assert order_pairs(["melt", "beta_quartz", "alpha_quartz"]) == [(2, 1)]
    assert order_pairs(["fcc", "hcp", "melt"]) == []


def test_the_classifier_pools_after_its_consensus_and_takes_its_rounds_from_the_checkpoint(tmp_path):
    positions, cell, species = noisy_quartz()
    raw = make_random_checkpoint(tmp_path / "quartzes.pt", classes=QUARTZES)
    plain = Classifier.load(raw, device="cpu", threshold=0.0)
    assert plain.pooling == 0 and plain.order_pairs  # an uncalibrated checkpoint: off; SiO2 classes: one pair
    neighbors = knn(positions, plain.k, cell=cell)
    p = plain.probabilities(plain.logits(plain.species_indices(species), neighbors))
    expected = pool_order(neighbour_consensus(p, neighbors.index, 0.5), neighbors.index, plain.order_pairs, 4)
    ck = ckpt_io.load(raw)
    ck.calibration = {"temperature": 1.0, "threshold": 0.0, "consensus": 0.5, "pooling": 4.0}
    ckpt_io.save(ck, tmp_path / "pooled.pt")
    pooled = Classifier.load(tmp_path / "pooled.pt", device="cpu")
    assert pooled.pooling == 4 and pooled.halo_widths[-5:] == [len(pooled.classes), 2, 2, 2, 2]
    result = pooled.classify(positions, cell, species)
    assert np.array_equal(result.labels, expected.argmax(axis=1))
    np.testing.assert_allclose(result.confidence, expected.max(axis=1), rtol=1e-5)
    unpooled = Classifier.load(tmp_path / "pooled.pt", device="cpu", pooling=0).classify(positions, cell, species)
    assert (result.labels != unpooled.labels).any(), "pooling changed nothing: the test proves nothing"


def test_the_threshold_is_chosen_on_the_pooled_probabilities():
    """calibrate(..., pooling=R) scores and thresholds what the user gets, and records R."""
    rng = np.random.default_rng(2)
    n = 600
    labels = torch.zeros(n, dtype=torch.int64)  # all α
    logits = torch.from_numpy(rng.normal(0, 0.3, (n, 3)))
    logits[:, 0] += 1.0
    logits[::4, 1] += 2.0  # every fourth atom read β
    index = np.array([[(i + d) % n for d in (-2, -1, 1, 2)] for i in range(n)])
    plain = calibrate(logits, labels, index=index)
    pooled = calibrate(logits, labels, index=index, pooling=6, pairs=PAIR)
    assert plain.pooling == 0 and pooled.pooling == 6 and pooled.to_dict()["pooling"] == 6.0
    assert plain.accuracy < 0.8 and pooled.accuracy > 0.95  # the β reads pooled away; a few read glass stay
    assert calibrate(logits, labels, index=index, pooling=6).pooling == 0  # no pair: nothing pooled
    with pytest.raises(LammpsPhaseError, match="k-NN graph"):
        calibrate(logits, labels, pooling=6, pairs=PAIR)


def test_cli_and_ensembles_carry_the_rounds(tmp_path, capsys, random_sio2_checkpoint):
    from lammps_phase.cli import main
    from lammps_phase.inference.ensemble import EnsembleClassifier, read_ensemble

    ens = tmp_path / "two.toml"
    ens.write_text(f'members = ["{random_sio2_checkpoint}", "{random_sio2_checkpoint}"]\n'
                   "[calibration]\ntemperature = 1.0\nthreshold = 0.0\npooling = 6\n")
    assert read_ensemble(ens)[1]["pooling"] == 6.0
    clf = EnsembleClassifier.load(ens, device="cpu")
    assert clf.pooling == 6 and all(m.pooling == 0 for m in clf.members)  # pooled once, on the mean
    ens.write_text(ens.read_text().replace("pooling = 6", "pooling = 2.5"))
    with pytest.raises(LammpsPhaseError, match="pooling"):
        read_ensemble(ens)
    with pytest.raises(SystemExit) as stopped:
        main(["classify", "x.dump", "--model", str(random_sio2_checkpoint), "-o", str(tmp_path / "o.dump"),
              "--pooling", "-3"])
    assert stopped.value.code == 2 and "pooling" in capsys.readouterr().err
