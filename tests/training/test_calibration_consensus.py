"""A threshold chosen with a neighbour consensus, and the weight that travels with it: calibrate(), the checkpoint,
the Classifier's default, `lammps-phase calibrate`, ensembles. The pipeline's [calibrate] consensus:
tests/training/test_pipeline.py; the blend itself: tests/inference/test_consensus.py."""

import numpy as np
import pytest
import torch

from lammps_phase import Classifier
from lammps_phase.cli import main
from lammps_phase.data.datasets import SampleSet
from lammps_phase.data.structures import build, supercell
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.consensus import neighbour_consensus
from lammps_phase.inference.ensemble import EnsembleClassifier, read_ensemble, write_ensemble
from lammps_phase.model import checkpoint as ckpt_io
from lammps_phase.training import calibration

from conftest import SIO2_CLASSES, make_random_checkpoint


def grains(n_grains: int = 400, size: int = 8, classes: int = 4, seed: int = 0):
    """Atoms in grains of one class each, every atom's neighbours its own grain; a fifth of the atoms read wrong
    alone (their logits favour another class), so the grain's mean reads them right."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(rng.integers(0, classes, n_grains), size)
    n = len(truth)
    logits = rng.normal(0.0, 0.5, (n, classes))
    logits[np.arange(n), truth] += 3.0
    lone = rng.random(n) < 0.2
    logits[lone, (truth[lone] + 1) % classes] += 4.0
    members = np.arange(n).reshape(n_grains, size)
    index = np.stack([np.roll(members, -s, axis=1).reshape(-1) for s in range(1, size)], axis=1)
    return torch.tensor(logits), torch.tensor(truth), index


def test_the_threshold_is_chosen_on_the_blended_probabilities():
    logits, labels, index = grains()
    alone = calibration.calibrate(logits, labels)
    blended = calibration.calibrate(logits, labels, consensus=0.5, index=index)
    assert alone.consensus == 0.0 and blended.consensus == 0.5
    assert blended.temperature == pytest.approx(alone.temperature)  # fitted on the network's logits either way
    assert blended.accuracy_network == pytest.approx(alone.accuracy) and alone.accuracy < 0.85  # lone wrong atoms
    assert blended.accuracy > alone.accuracy + 0.05  # their grains outvote most of them
    p = neighbour_consensus(torch.softmax(logits / blended.temperature, dim=-1), index, 0.5)
    right = p.argmax(axis=1) == labels.numpy()
    assert blended.accuracy == pytest.approx(right.mean())
    assert blended.threshold == pytest.approx(calibration.choose_threshold(p.max(axis=1), right), rel=1e-6)
    assert blended.accuracy - blended.accuracy_with_threshold <= calibration.MAX_ACCURACY_DROP + 1e-12
    with pytest.raises(LammpsPhaseError, match="k-NN graph"):
        calibration.calibrate(logits, labels, consensus=0.5)


def test_unlabelled_atoms_vote_but_are_not_scored():
    logits, labels, index = grains()
    hidden = labels.clone()
    hidden[::8] = -1  # one atom per grain unlabelled
    part = calibration.calibrate(logits, hidden, consensus=0.5, index=index)
    assert part.atoms == int((hidden >= 0).sum())
    p = neighbour_consensus(torch.softmax(logits / part.temperature, dim=-1), index, 0.5)  # every atom's votes
    keep = hidden.numpy() >= 0
    assert part.accuracy == pytest.approx((p.argmax(axis=1) == labels.numpy())[keep].mean())


def snapshots(clf: Classifier, count: int = 3):
    c = supercell(build("alpha_quartz"), 12.0)
    pos = c.positions + np.random.default_rng(3).normal(scale=0.3, size=c.positions.shape)
    labels = clf.classify(pos, c.cell, list(c.symbols), threshold=0.0).labels
    flip = np.random.default_rng(4).random(len(labels)) < 0.1  # the network is not always right
    labels[flip] = (labels[flip] + 1) % len(SIO2_CLASSES)
    return SampleSet.concatenate([
        SampleSet.from_snapshot(pos + np.random.default_rng(s).normal(scale=0.05, size=pos.shape), c.cell,
                                clf.species_indices(list(c.symbols)), labels, clf.k, SIO2_CLASSES, ["Si", "O"])
        for s in range(count)])


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_random_checkpoint(tmp_path_factory.mktemp("calibrate") / "random.pt", seed=5)


def test_validation_graph_indexes_the_whole_set(source):
    clf = Classifier.load(source, device="cpu")
    data = snapshots(clf)
    graph = calibration.validation_graph(data, clf.k)
    assert graph.shape == (len(data.labels), clf.k) and len(data) == 3
    for s in range(len(data)):
        lo, hi = int(data.offsets[s]), int(data.offsets[s + 1])
        assert lo <= graph[lo:hi].min() and graph[lo:hi].max() < hi  # each snapshot's rows stay in it
        np.testing.assert_array_equal(graph[lo:hi] - lo, np.asarray(data.index[lo:hi, : clf.k]))


def test_cli_calibrate_stores_the_weight_and_the_classifier_uses_it(source, tmp_path, capsys):
    clf = Classifier.load(source, device="cpu")
    assert clf.consensus == 0.0  # uncalibrated: the network alone
    val = tmp_path / "val_samples.h5"
    snapshots(clf).save(val)
    ck = ckpt_io.load(source)
    ck.domain = {"kept": "as it was"}  # the training domain is not refitted: it belongs to the training data
    ckpt_io.save(ck, tmp_path / "in.pt")
    out = tmp_path / "out.pt"
    assert main(["calibrate", str(tmp_path / "in.pt"), "--on", str(val), "--consensus", "0.5", "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "with consensus 0.5" in said and "network alone" in said
    fitted = ckpt_io.load(out)
    assert fitted.default_consensus == 0.5 and 0.0 < fitted.default_threshold < 1.0
    assert fitted.domain == {"kept": "as it was"}
    assert fitted.calibration == pytest.approx(
        calibration.calibrate_checkpoint(ckpt_io.load(source), SampleSet.load(val), 0.5).to_dict())
    fitted.domain = {}
    ckpt_io.save(fitted, out)
    assert Classifier.load(out, device="cpu").consensus == 0.5  # the default follows the checkpoint
    assert Classifier.load(out, device="cpu", consensus=0.0).consensus == 0.0  # unless told otherwise
    assert Classifier.load(out, device="cpu", consensus="checkpoint").consensus == 0.5
    assert main(["info", str(out)]) == 0
    assert "with neighbour consensus 0.5" in capsys.readouterr().out
    # refusals: the output is an input; snapshots of other classes
    assert main(["calibrate", str(out), "--on", str(val), "-o", str(out)]) == 2
    assert "-o" in capsys.readouterr().err
    other = make_random_checkpoint(tmp_path / "other.pt", classes=["alpha_quartz", "melt"])
    assert main(["calibrate", str(other), "--on", str(val), "-o", str(tmp_path / "x.pt")]) == 2
    assert "own training config" in capsys.readouterr().err


def test_a_damaged_consensus_is_refused_on_load(source, tmp_path):
    ck = ckpt_io.load(source)
    ck.calibration = {"temperature": 1.0, "threshold": 0.3, "consensus": 1.5}
    ckpt_io.save(ck, tmp_path / "bad.pt")
    with pytest.raises(LammpsPhaseError, match="consensus 1.5 out of range"):
        ckpt_io.load(tmp_path / "bad.pt")


def test_an_ensemble_keeps_its_own_consensus_not_its_members(tmp_path, capsys):
    members = []
    for seed in (1, 2):
        path = make_random_checkpoint(tmp_path / f"m{seed}.pt", seed=seed)
        ck = ckpt_io.load(path)
        ck.calibration = {"temperature": 1.0, "threshold": 0.3, "consensus": 0.9}  # members' weights are theirs
        ckpt_io.save(ck, path)
        members.append(path)
    val = snapshots(Classifier.load(members[0], device="cpu"))
    plain = EnsembleClassifier([ckpt_io.load(m) for m in members], device="cpu")
    assert plain.consensus == 0.0 and all(m.consensus == 0.0 for m in plain.members)
    path = tmp_path / "ens.toml"
    fitted = write_ensemble(path, members, val, consensus=0.5)
    assert fitted["consensus"] == 0.5 and read_ensemble(path)[1]["consensus"] == 0.5
    assert Classifier.load(path, device="cpu").consensus == 0.5
    assert Classifier.load(path, device="cpu", consensus=0.2).consensus == 0.2
    assert main(["ensemble", str(tmp_path / "e2.toml"), *map(str, members), "--consensus", "0.5"]) == 2
    assert "needs --calibrate-on" in capsys.readouterr().err
    path.write_text(path.read_text().replace("consensus = 0.5", "consensus = 2.0"))
    with pytest.raises(LammpsPhaseError, match=r"consensus must be in \[0, 1\]"):
        Classifier.load(path)
