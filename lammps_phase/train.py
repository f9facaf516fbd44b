"""Training: the poster's combined loss, the loop with best-on-validation selection, and evaluation.

L = φ·CE + (1 − φ)·α·(standard deviation of the predicted class probabilities over R random
rotations of the same environment). Each batch is evaluated under R rotations at once, so the
rotations are also the data augmentation; with φ = 1 the second term vanishes and R = 1 suffices.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch.nn import functional as F

from lammps_phase.checkpoint import Checkpoint
from lammps_phase.environments import EnvironmentSet
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.model import ModelConfig, build_model, forward_environments, random_rotations


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    phi: float = 0.9  # weight of cross entropy; 1 − φ weighs the rotation term
    alpha: float = 1.0
    rotations: int = 2  # R random rotations per batch (≥ 2 when φ < 1)
    seed: int = 0
    max_batches: Optional[int] = None  # stop after this many batches in total (ablation: "after 100 batches")
    threads: Optional[int] = None
    progress: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.phi <= 1.0:
            raise LammpsPhaseError(f"phi must lie in [0, 1], got {self.phi}")
        if self.phi < 1.0 and self.rotations < 2:
            raise LammpsPhaseError("the rotation term needs at least 2 rotations (rotations >= 2) when phi < 1")


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    train_ce: list[float] = field(default_factory=list)
    train_rot: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    batch_ce: list[float] = field(default_factory=list)
    best_epoch: int = -1
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def combined_loss(
    logits: torch.Tensor, labels: torch.Tensor, phi: float, alpha: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """logits (R, ..., C) for R rotations of the same inputs, labels (...) → (loss, ce, rotation term)."""
    r, c = logits.shape[0], logits.shape[-1]
    ce = F.cross_entropy(logits.reshape(-1, c), labels.unsqueeze(0).expand(r, *labels.shape).reshape(-1))
    if phi >= 1.0 or r < 2:
        return ce, ce, torch.zeros((), device=logits.device)
    prob = torch.softmax(logits, dim=-1)
    spread = torch.sqrt(prob.var(dim=0, unbiased=False).mean(dim=-1) + 1e-12).mean()
    return phi * ce + (1.0 - phi) * alpha * spread, ce, spread


def _rotated(positions: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """positions (B,P,3), rot (R,3,3) → (R·B, P, 3)."""
    return torch.einsum("bpi,rji->rbpj", positions, rot).reshape(-1, *positions.shape[1:])


def _forward(model: torch.nn.Module, kind: str, species: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    if kind == "erhard":
        return model(species, positions)
    return forward_environments(model, species, positions)


def _targets(kind: str, labels: torch.Tensor) -> torch.Tensor:
    return labels[:, 0] if kind == "erhard" else labels


def train_model(
    train_set: EnvironmentSet,
    val_set: EnvironmentSet,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    kind: str = "segmentation",
    log: Optional[Callable[[str], None]] = None,
) -> tuple[Checkpoint, History]:
    """Train and return the checkpoint of the best validation epoch, with its loss history."""
    if train_set.classes != val_set.classes:
        raise LammpsPhaseError("training and validation sets have different classes")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_model(model_cfg, kind)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_batches:
        total = min(total, cfg.max_batches)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(total, 1), pct_start=0.15)
    pos_all = torch.from_numpy(train_set.positions.astype(np.float32))
    sp_all = torch.from_numpy(train_set.species.astype(np.int64))
    lab_all = torch.from_numpy(train_set.labels.astype(np.int64))
    hist = History()
    best_state, best_acc = None, -1.0
    t0 = time.perf_counter()
    bar = _progress(total, cfg.progress)
    step = 0
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(train_set)))
        sums = np.zeros(3)
        nb = 0
        for s in range(0, len(order), cfg.batch_size):
            if step >= total:
                break
            idx = order[s : s + cfg.batch_size]
            if len(idx) < 2:
                continue  # batch-norm needs more than one sample
            r = cfg.rotations
            rot = random_rotations(r, gen)
            pos = _rotated(pos_all[idx], rot)
            sp = sp_all[idx].repeat(r, 1)
            logits = _forward(model, kind, sp, pos)
            logits = logits.reshape(r, len(idx), *logits.shape[1:])
            loss, ce, spread = combined_loss(logits, _targets(kind, lab_all[idx]), cfg.phi, cfg.alpha)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            sums += (loss.item(), ce.item(), spread.item())
            hist.batch_ce.append(ce.item())
            nb += 1
            bar.update(1)
        if nb == 0:
            break
        hist.train_loss.append(sums[0] / nb)
        hist.train_ce.append(sums[1] / nb)
        hist.train_rot.append(sums[2] / nb)
        metrics = evaluate(model, val_set, kind=kind, batch_size=max(cfg.batch_size, 64))
        hist.val_loss.append(metrics["loss"])
        hist.val_accuracy.append(metrics["accuracy"])
        if metrics["accuracy"] > best_acc:
            best_acc, hist.best_epoch = metrics["accuracy"], epoch
            best_state = copy.deepcopy(model.state_dict())
        msg = (
            f"epoch {epoch + 1}/{cfg.epochs}: loss {hist.train_loss[-1]:.4f} (CE {hist.train_ce[-1]:.4f}, "
            f"rot {hist.train_rot[-1]:.4f})  val loss {metrics['loss']:.4f}  val acc {metrics['accuracy']:.4f}"
        )
        if log:
            log(msg)
        bar.set_postfix_str(f"val acc {metrics['accuracy']:.3f}")
        if step >= total:
            break
    bar.close()
    hist.seconds = time.perf_counter() - t0
    if best_state is None:
        raise LammpsPhaseError("no training step ran: the training set is empty or smaller than 2 environments")
    model.load_state_dict(best_state)
    ckpt = Checkpoint(
        kind=kind,
        config=model_cfg,
        state_dict=model.state_dict(),
        classes=list(train_set.classes),
        metrics={"val_accuracy": best_acc, "best_epoch": hist.best_epoch, "train_seconds": hist.seconds},
    )
    return ckpt, hist


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    data: EnvironmentSet,
    kind: str = "segmentation",
    batch_size: int = 64,
    rotate_seed: Optional[int] = 1234,
) -> dict[str, Any]:
    """Per-atom (segmentation) or per-centre (erhard) accuracy, loss, confusion matrix, per-class accuracy.

    Environments are randomly rotated (fixed seed) so the score reflects orientation-free use.
    """
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(rotate_seed) if rotate_seed is not None else None
    c = len(data.classes)
    conf = np.zeros((c, c), dtype=np.int64)
    loss_sum, n_sum = 0.0, 0
    preds = []
    for s in range(0, len(data), batch_size):
        pos = torch.from_numpy(data.positions[s : s + batch_size].astype(np.float32))
        if gen is not None:
            rot = random_rotations(len(pos), gen)
            pos = torch.einsum("bpi,bji->bpj", pos, rot)
        sp = torch.from_numpy(data.species[s : s + batch_size].astype(np.int64))
        lab = _targets(kind, torch.from_numpy(data.labels[s : s + batch_size].astype(np.int64)))
        logits = _forward(model, kind, sp, pos)
        loss_sum += F.cross_entropy(logits.reshape(-1, c), lab.reshape(-1), reduction="sum").item()
        n_sum += lab.numel()
        pred = logits.argmax(dim=-1)
        preds.append(pred.numpy())
        np.add.at(conf, (lab.reshape(-1).numpy(), pred.reshape(-1).numpy()), 1)
    model.train(was_training)
    per_class = {
        name: float(conf[i, i] / conf[i].sum()) if conf[i].sum() else float("nan") for i, name in enumerate(data.classes)
    }
    return {
        "accuracy": float(np.trace(conf) / max(conf.sum(), 1)),
        "loss": loss_sum / max(n_sum, 1),
        "per_class": per_class,
        "confusion": conf.tolist(),
        "predictions": np.concatenate(preds) if preds else np.zeros(0, np.int64),
    }


class _NoBar:
    def update(self, n: int) -> None: ...
    def set_postfix_str(self, s: str) -> None: ...
    def close(self) -> None: ...


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="batch", dynamic_ncols=True)
