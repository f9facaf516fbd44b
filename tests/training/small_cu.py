"""Shared by the training tests: a small synthetic Cu split and the small network that trains on it in seconds."""

from __future__ import annotations

import torch

from lammps_phase.data.synthetic import synthetic_samples
from lammps_phase.model.network import ModelConfig

CU_CLASSES = ["fcc", "bcc", "hcp", "random_packing"]


def small_cu_model(**changes) -> ModelConfig:
    """A network small enough to train for a few epochs inside a unit test; ``changes`` replace its settings."""
    settings = dict(elements=["Cu"], num_classes=len(CU_CLASSES), k=12, channels=[16, 16], head=[32], embed_dim=4,
                    radial_basis=8, bond_order_l=6, bond_order_neighbors=[12])
    return ModelConfig(**{**settings, **changes})


def cu_split():
    """(training, validation) snapshots of the four Cu classes, from different seeds."""
    torch.set_num_threads(2)
    train = synthetic_samples(CU_CLASSES, 12, per_class=3, seed=1, min_length=9.0)
    val = synthetic_samples(CU_CLASSES, 12, per_class=1, seed=2, min_length=9.0, run_offset=1000)
    return train, val
