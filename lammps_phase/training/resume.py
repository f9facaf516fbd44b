"""Training that survives an interruption: the state after every epoch, written whole, and a resume that goes on
where the run stopped as if it never had.

Why: a 40-epoch training of the shipped models takes 40–100 min on two cores, hours on a laptop; a wall-clock limit,
a killed job or a closed session would otherwise throw all of it away. The state holds everything the next epoch
depends on — weights, optimizer and learning-rate schedule, the three random streams (torch's global one, the
rotation generator, numpy's shuffling), the history and the best epoch so far — so a resumed run ends with the same
weights as one that never stopped (``tests/training/test_resume.py``). A state left by another configuration or
other data is never resumed: its signature differs, and the run starts afresh and says so.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from lammps_phase.atomic_write import atomic_path
from lammps_phase.model.checkpoint import fingerprint

#: bumped when the state's layout changes; a state of another version is not resumed
STATE_VERSION = 1

#: training settings that change nothing in the arithmetic, so a run may resume with other values
_NEUTRAL_SETTINGS = ("progress", "threads")


def run_signature(model_cfg: Any, train_cfg: Any, kind: str, train_set: Any, val_set: Any,
                  teacher: Optional[np.ndarray] = None, start: str = "") -> str:
    """A short hash of everything that decides the weights: model and training settings (bar the neutral ones),
    the model kind, the training and validation data (labels, species and geometry), the teachers'
    probabilities when the training distils and the fingerprint ``start`` of the checkpoint a fine-tuning starts
    from (its path alone would not see it replaced)."""
    settings = {k: v for k, v in dataclasses.asdict(train_cfg).items() if k not in _NEUTRAL_SETTINGS}
    data = []
    for part in (train_set, val_set):
        geometry = part.vectors if hasattr(part, "vectors") else part.positions  # samples / environments
        data += [np.asarray(part.labels), np.asarray(part.species), np.ascontiguousarray(geometry)]
    if teacher is not None:
        data.append(np.ascontiguousarray(teacher))
    return fingerprint(repr(sorted(dataclasses.asdict(model_cfg).items())), repr(sorted(settings.items())), kind,
                       list(train_set.classes), start, *data)


@dataclasses.dataclass
class EpochState:
    """Where a training stands once epoch ``epoch`` (0-based) has finished: the loop's own variables."""

    epoch: int
    step: int
    best_state: Optional[dict[str, torch.Tensor]]
    best_score: float
    history: dict[str, Any]


def save_state(path: Path, signature: str, state: EpochState, model: torch.nn.Module,
               optimizer: torch.optim.Optimizer, schedule: Any, generator: torch.Generator,
               rng: np.random.Generator, average: Optional[Any] = None) -> None:
    """Write the state after an epoch, whole or not at all (temporary file renamed into place); ``average``: the
    :class:`~lammps_phase.training.averaging.WeightAverage`, when the training keeps one."""
    payload = {
        "version": STATE_VERSION,
        "signature": signature,
        "epoch": state.epoch,
        "step": state.step,
        "best_state": state.best_state,
        "best_score": state.best_score,
        "history": state.history,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "generator": generator.get_state(),
        "numpy_rng": rng.bit_generator.state,
        "average": None if average is None else average.state_dict(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def resume_state(path: Path, signature: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 schedule: Any, generator: torch.Generator, rng: np.random.Generator,
                 log: Optional[Callable[[str], None]] = None, average: Optional[Any] = None) -> Optional[EpochState]:
    """Load the state at ``path`` into the given objects and return the loop's variables; None (and a line in the
    log saying why) when there is nothing to resume: no file, an unreadable one, another version or signature."""
    say = log or (lambda message: None)
    path = Path(path)
    if not path.exists():
        return None
    try:
        # our own file, written by save_state: it holds numpy's generator state (a dict), not only tensors
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file: start afresh rather than stop the training
        say(f"[train] {path} cannot be read ({type(exc).__name__}: {exc}); training starts afresh")
        return None
    if not isinstance(payload, dict) or payload.get("version") != STATE_VERSION:
        say(f"[train] {path} was written by another version of lammps-phase; training starts afresh")
        return None
    if payload.get("signature") != signature:
        say(f"[train] {path} belongs to other settings or data; training starts afresh")
        return None
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    schedule.load_state_dict(payload["schedule"])
    torch.set_rng_state(payload["torch_rng"])
    generator.set_state(payload["generator"])
    rng.bit_generator.state = payload["numpy_rng"]
    if average is not None:  # same signature, so same settings: the state holds an average
        average.load_state_dict(payload["average"])
    say(f"[train] resuming after epoch {payload['epoch'] + 1} from {path}")
    return EpochState(epoch=int(payload["epoch"]), step=int(payload["step"]), best_state=payload["best_state"],
                      best_score=float(payload["best_score"]), history=payload["history"])


__all__ = ["STATE_VERSION", "EpochState", "run_signature", "save_state", "resume_state"]
