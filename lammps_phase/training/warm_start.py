"""Fine-tuning: a training that starts from a trained checkpoint's weights instead of random ones.

Why: new heating runs (another potential's, more interfaces, runs remade under a corrected label rule) need not
cost a whole training from scratch, 40 epochs and one to two hours on two cores; a few epochs at a lower learning
rate from the shipped weights adapt them. ``[train] init = "checkpoints/sio2.pt"`` names the start; the start must
be the same network — kind, every [model] setting, the classes in the same order — or its weights mean nothing
to the new one, and the training stops before any step with the setting that differs and how to fix it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import torch

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.model import checkpoint as ckpt_io
from lammps_phase.model.network import ModelConfig


def initial_checkpoint(path: str, model_cfg: ModelConfig, kind: str, classes: Sequence[str]) -> ckpt_io.Checkpoint:
    """The checkpoint at ``path``, checked to hold weights for exactly this network and these classes."""
    if not Path(path).is_file():
        raise LammpsPhaseError(f"[train] init = {path!r}: no such checkpoint; give the path of a trained .pt file "
                               "from the folder lammps-phase-train runs in (e.g. checkpoints/sio2.pt), or remove init "
                               "to train from random weights")
    start = ckpt_io.load(path)
    problem = None
    if start.kind != kind:
        problem = f"is a {start.kind!r} model, this training builds a {kind!r} one"
    elif list(start.classes) != list(classes):
        problem = (f"labels {', '.join(start.classes)}; this config trains {', '.join(classes)} "
                   "(same classes, same order)")
    else:
        ours, theirs = dataclasses.asdict(model_cfg), dataclasses.asdict(start.config)
        differ = [f"{key} = {theirs.get(key)!r} there, {value!r} here" for key, value in ours.items()
                  if theirs.get(key) != value]
        if differ:
            problem = "was built with other [model] settings: " + "; ".join(differ)
    if problem:
        raise LammpsPhaseError(f"[train] init checkpoint {path} {problem}: fine-tune a checkpoint of this network "
                               "(copy its [model] settings and classes into the config) or remove init")
    return start


def start_from(model: torch.nn.Module, path: str, model_cfg: ModelConfig, kind: str, classes: Sequence[str]) -> str:
    """Copy the checked start's weights (batch-norm statistics included) into ``model``, every tensor or none, and
    return the start file's fingerprint (what a resumed run and the checkpoint's lineage name it by)."""
    model.load_state_dict(initial_checkpoint(path, model_cfg, kind, classes).state_dict, strict=True)
    return ckpt_io.fingerprint(Path(path).read_bytes())


__all__ = ["initial_checkpoint", "start_from"]
