"""Shaken crystals (lammps_phase/training/jitter.py): which snapshots are shaken, that the shaking is the
displacement of atoms, and that a network trained with it no longer reads amplitude as a phase."""

import numpy as np
import pytest
import torch

from lammps_phase import Classifier
from lammps_phase.data.synthetic import make_sample, synthetic_samples
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.neighbors import knn
from lammps_phase.model import checkpoint as ckpt_io
from lammps_phase.model.network import ModelConfig
from lammps_phase.training.jitter import shake, shaken_snapshots
from lammps_phase.training.loop import TrainConfig, train_model

CLASSES = ["a", "b", "glass"]


def test_only_snapshots_of_the_listed_classes_are_shaken():
    labels = np.array([0, 0, 1,  # crystals only
                       0, 2, 2,  # one glass atom: not shaken
                       -1, -1,  # nothing labelled: not shaken
                       1, -1, 1])  # unlabelled atoms neither allow nor bar
    offsets = np.array([0, 3, 6, 8, 11])
    assert shaken_snapshots(labels, offsets, CLASSES, ["a", "b"]).tolist() == [True, False, False, True]
    assert shaken_snapshots(labels, offsets, CLASSES, ["a"]).tolist() == [False, False, False, False]
    with pytest.raises(LammpsPhaseError, match="jitter_classes names \\['c'\\]"):
        shaken_snapshots(labels, offsets, CLASSES, ["a", "c"])


def test_shaking_moves_atoms_and_keeps_rows_nearest_first():
    rng = np.random.default_rng(3)
    positions = rng.uniform(0.0, 12.0, (60, 3))
    neighbors = knn(positions, 8, pbc=False)  # open boundaries: r_ij = x_j − x_i
    index = torch.from_numpy(neighbors.index.astype(np.int64))
    vectors = torch.from_numpy(neighbors.vectors.astype(np.float64))
    item = torch.from_numpy((positions[:, 0] > 6.0).astype(np.int64))  # two items side by side
    sigma = torch.tensor([0.0, 0.2], dtype=torch.float64)
    moved_index, moved = shake(index, vectors, item, sigma, torch.Generator().manual_seed(5))
    u = torch.randn(60, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * sigma[item, None]
    shifted = torch.from_numpy(positions) + u
    expected = shifted[moved_index] - shifted[:, None, :]
    assert torch.allclose(moved, expected, atol=1e-5)  # knn keeps float32 vectors
    assert (moved.norm(dim=-1).diff(dim=1) >= 0).all()  # re-sorted nearest first
    for row in range(60):  # the same neighbours, perhaps in another order
        assert sorted(moved_index[row].tolist()) == sorted(index[row].tolist())
    # atoms of an item with σ = 0 whose neighbours are all in that item do not move at all
    still = [i for i in range(60) if (item[index[i]] == 0).all() and item[i] == 0]
    assert still and torch.equal(moved[still], vectors[still]) and torch.equal(moved_index[still], index[still])


def test_jitter_needs_its_classes_and_a_sane_amplitude():
    with pytest.raises(LammpsPhaseError, match="give both or neither"):
        TrainConfig(jitter=0.1)
    with pytest.raises(LammpsPhaseError, match="give both or neither"):
        TrainConfig(jitter_classes=["fcc"])
    with pytest.raises(LammpsPhaseError, match="jitter must lie in"):
        TrainConfig(jitter=2.0, jitter_classes=["fcc"])


LATTICES = ["fcc", "bcc", "random_packing"]


def _train(jitter: float):
    """fcc and bcc taught at a small amplitude (σ = 0.05 Å), the disordered packing as it comes."""
    torch.set_num_threads(2)
    cfg = ModelConfig(elements=["Cu"], num_classes=3, k=12, channels=[24, 24], head=[32], embed_dim=4,
                      radial_basis=12, bond_order_l=6, bond_order_neighbors=[12])
    train = synthetic_samples(LATTICES, 12, per_class=8, seed=1, min_length=10.0, noise=0.02)
    val = synthetic_samples(LATTICES, 12, per_class=1, seed=2, min_length=10.0, noise=0.02, run_offset=1000)
    shaken = dict(jitter=jitter, jitter_classes=["fcc", "bcc"]) if jitter else {}
    ckpt, _ = train_model(train, val, cfg, TrainConfig(epochs=10, batch_size=4, lr=5e-3, progress=False, seed=0,
                                                       **shaken))
    return ckpt


def _crystal_accuracy(ckpt, tmp_path, noise: float) -> float:
    """Share of fresh fcc and bcc atoms read right, displaced by σ = noise × 2.5 Å (the nearest-neighbour distance)."""
    path = tmp_path / "m.pt"
    ckpt_io.save(ckpt, path)
    clf = Classifier.load(path, device="cpu")
    rng = np.random.default_rng(77)  # configurations the training never saw
    right = total = 0
    for smp in make_sample(LATTICES, 14.0, noise, rng)[:2]:
        right += int((clf.classify(smp.positions, smp.cell, smp.symbols, threshold=0.0).labels == smp.labels).sum())
        total += len(smp.labels)
    return right / total


def test_shaken_training_reads_hot_crystals_as_their_phase(tmp_path):
    plain, shaken = _train(0.0), _train(0.3)  # σ up to 0.3 Å
    hot_plain, hot_shaken = _crystal_accuracy(plain, tmp_path, 0.06), _crystal_accuracy(shaken, tmp_path, 0.06)
    assert hot_shaken >= 0.95, hot_shaken  # σ = 0.15 Å, three times the training's own
    assert hot_shaken > hot_plain + 0.1, (hot_plain, hot_shaken)
    assert _crystal_accuracy(shaken, tmp_path, 0.02) >= 0.98
