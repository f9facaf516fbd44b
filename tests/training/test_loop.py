"""A real, seconds-long training on synthetic noisy lattices, held-out evaluation, and the loss."""

import numpy as np
import pytest
import torch

from lammps_phase import Classifier
from lammps_phase.model import checkpoint as ckpt_io
from lammps_phase.data.datasets import EnvironmentSet, SampleSet
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.model.network import ModelConfig
from lammps_phase.data.synthetic import make_sample, synthetic_environments, synthetic_samples
from lammps_phase.training.loop import TrainConfig, combined_loss, evaluate, train_model

CLASSES = ["fcc", "bcc", "hcp", "random_packing"]


def small_cfg(**kw):
    base = dict(elements=["Cu"], num_classes=len(CLASSES), k=12, channels=[32, 32, 32], head=[64], embed_dim=4,
                radial_basis=12, bond_order_l=8, bond_order_neighbors=[12])
    base.update(kw)
    return ModelConfig(**base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(2)
    train = synthetic_samples(CLASSES, 12, per_class=12, seed=1, min_length=10.0)
    val = synthetic_samples(CLASSES, 12, per_class=1, seed=2, min_length=10.0, run_offset=1000)
    ckpt, hist = train_model(train, val, small_cfg(), TrainConfig(epochs=16, batch_size=4, lr=5e-3, progress=False))
    path = tmp_path_factory.mktemp("trained") / "synthetic.pt"
    ckpt_io.save(ckpt, path)
    return path, hist


def test_classifier_reaches_95_percent_on_separately_generated_samples(trained):
    path, hist = trained
    clf = Classifier.load(path, device="cpu")
    assert clf.classes == CLASSES
    rng = np.random.default_rng(12345)  # a seed the training never used, and larger samples
    correct = total = 0
    for smp in make_sample(CLASSES, 16.0, 0.06, rng):
        res = clf.classify(smp.positions, smp.cell, smp.symbols)
        acc = float((res.labels == smp.labels).mean())
        assert acc >= 0.90, f"class {CLASSES[smp.labels[0]]}: {acc:.3f}"
        correct += int((res.labels == smp.labels).sum())
        total += len(smp.labels)
    assert correct / total >= 0.95
    # training actually learned: loss went down and the best epoch is recorded
    assert hist.train_ce[-1] < 0.5 * hist.train_ce[0]
    assert 0 <= hist.best_epoch < len(hist.val_accuracy)


def test_checkpoint_records_training_metrics(trained):
    ck = ckpt_io.load(trained[0])
    assert ck.metrics["val_accuracy"] >= 0.9
    assert ck.config.bond_order_l == 8


def test_labels_agree_across_rotations(trained):
    clf = Classifier.load(trained[0], device="cpu")
    smp = make_sample(["fcc"], 14.0, 0.05, np.random.default_rng(7))[0]
    base = clf.classify(smp.positions, smp.cell, smp.symbols).labels
    gen = torch.Generator().manual_seed(0)
    from lammps_phase.model.network import random_rotations

    for rot in random_rotations(4, gen, dtype=torch.float64).numpy():
        res = clf.classify(smp.positions @ rot.T, smp.cell @ rot.T, smp.symbols, origin=(0, 0, 0))
        assert (res.labels == base).mean() >= 0.99


def test_environment_training_poster_mode_learns():
    train = synthetic_environments(CLASSES, 32, per_class=80, seed=3, min_length=12.0)
    val = synthetic_environments(CLASSES, 32, per_class=24, seed=4, min_length=12.0, run_offset=1000)
    cfg = small_cfg(channels=[16, 16, 16], head=[32])
    ck, hist = train_model(train, val, cfg, TrainConfig(epochs=6, batch_size=16, lr=5e-3, progress=False))
    assert hist.val_accuracy[hist.best_epoch] > 0.8  # chance is 0.25
    assert ck.kind == "segmentation"


def test_erhard_baseline_trains_on_centre_labels():
    train = synthetic_environments(CLASSES, 32, per_class=80, seed=5, min_length=12.0)
    val = synthetic_environments(CLASSES, 32, per_class=24, seed=6, min_length=12.0, run_offset=1000)
    cfg = small_cfg(channels=[16, 16], head=[32], bond_order_l=0, bond_order_neighbors=[])
    ck, hist = train_model(train, val, cfg, TrainConfig(epochs=3, batch_size=16, lr=5e-3, progress=False), kind="erhard")
    assert ck.kind == "erhard"
    assert hist.val_accuracy[hist.best_epoch] > 0.4
    with pytest.raises(LammpsPhaseError, match="segmentation"):
        Classifier(ck)


def test_combined_loss_terms():
    labels = torch.tensor([0, 1, 2])
    same = torch.randn(1, 3, 4).expand(3, 3, 4).contiguous()
    loss, ce, rot = combined_loss(same, labels, phi=0.5, alpha=1.0)
    assert rot.item() < 1e-5
    torch.testing.assert_close(loss, 0.5 * ce + 0.5 * rot)
    differ = torch.randn(3, 3, 4) * 3
    loss2, ce2, rot2 = combined_loss(differ, labels, phi=0.5, alpha=2.0)
    assert rot2.item() > 0.01
    torch.testing.assert_close(loss2, 0.5 * ce2 + 0.5 * 2.0 * rot2)
    loss3, ce3, _ = combined_loss(differ, labels, phi=1.0, alpha=1.0)
    torch.testing.assert_close(loss3, ce3)
    with pytest.raises(LammpsPhaseError, match="rotations"):
        TrainConfig(phi=0.5, rotations=1)


def test_atom_weights_in_the_cross_entropy():
    """Per-atom weights (boundary_weight) and class weights combine as Σ w·nll / Σ w; −1 atoms stay out."""
    torch.manual_seed(0)
    logits, labels = torch.randn(2, 5, 3), torch.tensor([0, 1, 2, -1, 1])
    plain = combined_loss(logits, labels, 1.0, 1.0)[1]
    torch.testing.assert_close(combined_loss(logits, labels, 1.0, 1.0, atom_weight=torch.ones(5))[1], plain)
    cls = torch.tensor([1.0, 2.0, 0.5])
    torch.testing.assert_close(combined_loss(logits, labels, 1.0, 1.0, cls, torch.ones(5))[1],
                               combined_loss(logits, labels, 1.0, 1.0, cls)[1])
    w = torch.tensor([1.0, 3.0, 1.0, 7.0, 1.0])
    nll = -torch.log_softmax(logits, -1)[:, [0, 1, 2, 4], [0, 1, 2, 1]]  # (R, known atoms)
    expect = (nll * torch.tensor([1.0, 3.0, 1.0, 1.0])).sum() / 12.0
    torch.testing.assert_close(combined_loss(logits, labels, 1.0, 1.0, atom_weight=w)[1], expect)
    with pytest.raises(LammpsPhaseError, match="boundary_weight"):
        TrainConfig(boundary_weight=0.0)


def test_boundary_atoms_are_those_with_another_label_among_their_neighbours():
    from lammps_phase.training.loop import GraphBatch

    index = torch.tensor([[1, 2], [0, 2], [1, 3], [2, 4], [3, 2]])
    labels = torch.tensor([0, 0, 0, 1, -1])
    batch = GraphBatch(torch.zeros(5, dtype=torch.long), index, torch.zeros(5, 2, 3), labels,
                       torch.zeros(5, dtype=torch.long), None, None, 1)
    assert batch.boundary().tolist() == [False, False, True, True, True]


def test_datasets_round_trip_hdf5(tmp_path):
    env = synthetic_environments(CLASSES, 16, per_class=8, seed=8, min_length=8.0)
    env.save(tmp_path / "env.h5")
    back = EnvironmentSet.load(tmp_path / "env.h5")
    np.testing.assert_array_equal(back.positions, env.positions)
    np.testing.assert_array_equal(back.labels, env.labels)
    assert back.classes == CLASSES and back.elements == ["Cu"]
    smp = synthetic_samples(CLASSES, 12, per_class=1, seed=9, min_length=8.0)
    smp.save(tmp_path / "smp.h5")
    sback = SampleSet.load(tmp_path / "smp.h5")
    np.testing.assert_array_equal(sback.index, smp.index)
    np.testing.assert_array_equal(sback.offsets, smp.offsets)
    sub = sback.subset(np.array([1, 3]))
    assert len(sub) == 2 and sub.offsets[-1] == (smp.offsets[2] - smp.offsets[1]) + (smp.offsets[4] - smp.offsets[3])
    with pytest.raises(LammpsPhaseError):
        SampleSet.load(tmp_path / "env.h5")


def test_evaluate_reports_per_class_and_confusion(trained):
    ck = ckpt_io.load(trained[0])
    model = ck.build()
    data = synthetic_samples(CLASSES, 12, per_class=1, seed=77, min_length=10.0)
    m = evaluate(model, data)
    conf = np.array(m["confusion"])
    assert conf.shape == (4, 4) and conf.sum() == data.offsets[-1]
    assert set(m["per_class"]) == set(CLASSES)
    assert m["accuracy"] >= 0.9


def test_class_weights_balance_rare_classes():
    from lammps_phase.training.loop import class_weights

    class Fake:
        classes = ["common", "rare", "absent"]
        labels = np.array([0] * 900 + [1] * 100)

    assert class_weights(Fake(), 0.0) is None
    w = class_weights(Fake(), 1.0).numpy()
    assert w[2] == 0.0 and w[1] / w[0] == pytest.approx(9.0) and w[:2].mean() == pytest.approx(1.0)
    half = class_weights(Fake(), 0.5).numpy()
    assert half[1] / half[0] == pytest.approx(3.0)
    with pytest.raises(LammpsPhaseError, match="class_balance"):
        TrainConfig(class_balance=2.0)
    with pytest.raises(LammpsPhaseError, match="select"):
        TrainConfig(select="loss")
