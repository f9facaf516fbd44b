"""Shared fixtures: small checkpoints with deterministic, non-trivial weights (no training needed)."""

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from lammps_phase.model import checkpoint as ckpt_io
from lammps_phase.model.network import ModelConfig, PhaseNet

SIO2_CLASSES = ["alpha_quartz", "coesite", "stishovite", "amorphous"]

# In-situ runs started by the tests (LAMMPS under mpirun) label with the eager kernels: compiling them in
# every short test run would cost more than the runs. tests/insitu/test_labeler.py runs one deck compiled.
os.environ.setdefault("LAMMPS_PHASE_COMPILE", "0")


def load_benchmark(script: str, name: str) -> ModuleType:
    """benchmarks/<script> imported as module ``name`` (registered in sys.modules: dataclasses resolve their
    annotations through it), for tests of a benchmark's own functions."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks" / script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def make_random_checkpoint(path: Path, elements=("Si", "O"), classes=SIO2_CLASSES, k: int = 12, seed: int = 0,
                           channels=(16, 16, 16), **model) -> Path:
    """A segmentation checkpoint with random weights and batch-norm statistics: deterministic labels, no training."""
    torch.manual_seed(seed)
    cfg = ModelConfig(elements=list(elements), num_classes=len(classes), k=k, channels=list(channels), head=[32], embed_dim=8,
                      bond_order_l=6, bond_order_neighbors=[k // 2, k], **model)
    model = PhaseNet(cfg)
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.3)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
    with torch.no_grad():
        model.head[-1].weight.mul_(20.0)  # spread the logits so labels vary between atoms
    ckpt_io.save(ckpt_io.Checkpoint("segmentation", cfg, model.state_dict(), list(classes), "random-test-weights"), path)
    return path


@pytest.fixture(scope="session")
def random_sio2_checkpoint(tmp_path_factory) -> Path:
    return make_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "random_sio2.pt")


# The smallest real training config: two checked bulk phases and a strained block in a second potential, so the
# report's per-potential tables are exercised (tests of the pipeline and its config checks write it out and edit it).
TINY = """
name = "tiny"
elements = ["Si", "O"]
potential = "bks_dsf"
output = "tiny.pt"

[runs]
seeds = { train = [1], val = [2], test = [3] }
supercell_min_length = 9.0
snapshot_every_ps = 0.1

[[phase]]
name = "alpha_quartz"
pressure_gpa = [0.0]
t_start = 300
t_end = 600
ps = 0.4

[[phase]]
name = "alpha_quartz"
potential = "tersoff_munetoh"
variant = "strained"
axis = "x"
strain = 0.1
t_start = 300
t_end = 300
ps = 0.2

[[phase]]
name = "stishovite"
pressure_gpa = [0.0]
t_start = 300
t_end = 600
ps = 0.4

[dataset]
mode = "samples"

[model]
k = 12
channels = [16, 16, 16]
head = [32]
embed_dim = 8
bond_order_l = 6
bond_order_neighbors = [6, 12]

[train]
epochs = 8
batch_size = 2
lr = 0.005

[calibrate]
consensus = 0.5

[report]
rotations = 4
"""
