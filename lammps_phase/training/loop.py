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
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from torch.nn import functional as F

from lammps_phase.model.checkpoint import Checkpoint
from lammps_phase.data.datasets import EnvironmentSet, SampleSet
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.model.network import ModelConfig, build_model, environment_graph, random_rotations
from lammps_phase.training.averaging import WeightAverage, refresh_batch_norm
from lammps_phase.training.jitter import shake, shaken_snapshots
from lammps_phase.training.resume import EpochState, resume_state, run_signature, save_state
from lammps_phase.training.warm_start import start_from

#: label of atoms that carry no class (cross entropy and accuracy skip them)
IGNORE = -1


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
    # cross-entropy weight of class c ∝ (atoms of c)^−class_balance: 0 = plain, 1 = fully balanced; rare
    # classes (melt, glass: small cells, few snapshots) otherwise count little against coesite's thousands
    class_balance: float = 0.0
    # cross-entropy weight of atoms whose k nearest neighbours carry another label (or none): the atoms at an
    # interface, a few % of the data but where held-out labels were wrong most often (1 = no extra weight)
    boundary_weight: float = 1.0
    select: str = "accuracy"  # validation score for the best epoch: "accuracy" | "balanced_accuracy" (mean per class)
    # ship an exponential moving average of the weights over about this many epochs (0 = the weights themselves);
    # validation and the best epoch are then judged on the average (lammps_phase/training/averaging.py)
    average_epochs: float = 0.0
    # distillation (lammps_phase/training/distillation.py): the cross-entropy targets of labelled atoms become
    # (1 − distill)·label + distill·(mean calibrated probabilities of these checkpoints, paths from the current folder)
    distill: float = 0.0
    teachers: list[str] = field(default_factory=list)
    # shake the snapshots of these (crystal) classes by random per-atom displacements of σ ~ U(0, jitter) Å each batch,
    # so that amplitude alone makes no phase (lammps_phase/training/jitter.py); 0 = off
    jitter: float = 0.0
    jitter_classes: list[str] = field(default_factory=list)
    # fine-tuning: start from this checkpoint's weights (same network and classes; lammps_phase/training/warm_start.py)
    init: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.class_balance <= 1.0:
            raise LammpsPhaseError(f"class_balance must lie in [0, 1], got {self.class_balance}")
        if self.select not in ("accuracy", "balanced_accuracy"):
            raise LammpsPhaseError(f"select must be 'accuracy' or 'balanced_accuracy', not {self.select!r}")
        if self.average_epochs < 0.0:
            raise LammpsPhaseError(f"average_epochs must be 0 (off) or positive, got {self.average_epochs}")
        if self.boundary_weight <= 0.0:
            raise LammpsPhaseError(f"boundary_weight must be positive, got {self.boundary_weight}")
        if not 0.0 <= self.distill <= 1.0:
            raise LammpsPhaseError(f"distill must lie in [0, 1] (the teachers' share of the targets), got {self.distill}")
        if (self.distill > 0.0) != bool(self.teachers):
            raise LammpsPhaseError("distillation needs both distill > 0 and a list of teacher checkpoints (teachers = "
                                   "[\"a.pt\", ...]); give both or neither")
        if not 0.0 <= self.jitter <= 0.5:
            raise LammpsPhaseError(f"jitter must lie in [0, 0.5] Å (the largest per-atom displacement σ), got {self.jitter}")
        if (self.jitter > 0.0) != bool(self.jitter_classes):
            raise LammpsPhaseError("jitter needs both jitter > 0 (Å) and the classes to shake (jitter_classes = "
                                   "[\"alpha_quartz\", ...], crystals only); give both or neither")
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
    logits: torch.Tensor, labels: torch.Tensor, phi: float, alpha: float, weight: Optional[torch.Tensor] = None,
    atom_weight: Optional[torch.Tensor] = None, soft: Optional[torch.Tensor] = None, distill: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """logits (R, ..., C) for R rotations of the same inputs, labels (...) → (loss, ce, rotation term).

    ``weight``: optional per-class cross-entropy weights (C,); ``atom_weight``: optional per-atom weights (...).
    The cross entropy is Σ w·(−Σ_c q_c log p_c) / Σ w with w = weight[label]·atom_weight and q the one-hot label,
    or with ``soft`` (..., C) (a teacher ensemble's probabilities, :mod:`lammps_phase.training.distillation`)
    q = (1 − distill)·onehot(label) + distill·soft. Atoms labelled −1 (no label: e.g. crystal atoms that left
    their sites at an interface) take no part in it."""
    r, c = logits.shape[0], logits.shape[-1]
    flat = logits.reshape(r, -1, c)
    known = labels.reshape(-1) != IGNORE
    target = labels.reshape(-1).clamp(min=0)
    logp = torch.log_softmax(flat, dim=-1)
    nll = -logp.gather(-1, target.view(1, -1, 1).expand(r, -1, 1)).squeeze(-1)  # (R, M)
    if soft is not None and distill > 0.0:
        nll = (1.0 - distill) * nll - distill * (soft.reshape(1, -1, c) * logp).sum(dim=-1)
    w = known.to(logp.dtype)
    if atom_weight is not None:
        w = w * atom_weight.reshape(-1)
    if weight is not None:
        w = w * weight[target]
    ce = (w * nll).sum() / (r * w.sum()).clamp(min=1e-12)
    if phi >= 1.0 or r < 2:
        return ce, ce, torch.zeros((), device=logits.device)
    prob = torch.softmax(logits, dim=-1)
    spread = torch.sqrt(prob.var(dim=0, unbiased=False).mean(dim=-1) + 1e-12).mean()
    return phi * ce + (1.0 - phi) * alpha * spread, ce, spread


Dataset = Union[EnvironmentSet, SampleSet]


@dataclass
class GraphBatch:
    """Atoms of several items (environments or snapshots) as one graph, ready for the network."""

    species: torch.Tensor  # (N,)
    index: torch.Tensor  # (N, k) global
    vectors: torch.Tensor  # (N, k, 3)
    labels: torch.Tensor  # (N,)
    item: torch.Tensor  # (N,) which item each atom belongs to
    centre: Optional[torch.Tensor]  # (N, 3) offsets from the environment centre (environments only)
    env_size: Optional[int]
    n_items: int

    def boundary(self) -> Optional[torch.Tensor]:
        """(N,) True where an atom's k nearest neighbours carry another label (or none): where one phase meets
        another. None for environment batches, whose graph is built later."""
        if self.env_size is not None:
            return None
        return (self.labels[self.index] != self.labels.unsqueeze(1)).any(dim=1)


def graph_batch(data: Dataset, items: np.ndarray) -> GraphBatch:
    """Environments get their k-NN graph inside the environment (the poster); snapshots bring theirs."""
    if isinstance(data, EnvironmentSet):
        pos = torch.from_numpy(data.positions[items].astype(np.float32))
        b, p, _ = pos.shape
        # k comes from the model; build lazily in _forward_graph via environment_graph
        return GraphBatch(
            torch.from_numpy(data.species[items].astype(np.int64)).reshape(-1),
            torch.empty(0, dtype=torch.int64),
            pos.reshape(b * p, 3),  # positions until the graph is built
            torch.from_numpy(data.labels[items].astype(np.int64)).reshape(-1),
            torch.arange(b).repeat_interleave(p),
            (pos - pos[:, :1]).reshape(b * p, 3),
            p,
            b,
        )
    parts = [data.atoms(i) for i in items]
    sizes = np.array([sl.stop - sl.start for sl in parts])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    index = np.concatenate([data.index[sl].astype(np.int64) + st for sl, st in zip(parts, starts)])
    return GraphBatch(
        torch.from_numpy(np.concatenate([data.species[sl] for sl in parts]).astype(np.int64)),
        torch.from_numpy(index),
        torch.from_numpy(np.concatenate([data.vectors[sl] for sl in parts]).astype(np.float32)),
        torch.from_numpy(np.concatenate([data.labels[sl] for sl in parts]).astype(np.int64)),
        torch.from_numpy(np.repeat(np.arange(len(items)), sizes)),
        None,
        None,
        len(items),
    )


def _rotated_forward(model: torch.nn.Module, batch: GraphBatch, rot: torch.Tensor) -> torch.Tensor:
    """Logits (R, N, C) of the batch under R rotations; rot (R, n_items, 3, 3)."""
    r = rot.shape[0]
    n = batch.species.shape[0]
    k = model.cfg.k
    if batch.env_size is not None:
        pos = batch.vectors.reshape(batch.n_items, batch.env_size, 3)
        index, vectors = environment_graph(pos, k)
    else:
        index, vectors = batch.index, batch.vectors
    per_atom = rot[:, batch.item]  # (R, N, 3, 3)
    vec = torch.einsum("rnij,nkj->rnki", per_atom, vectors).reshape(r * n, -1, 3)
    centre = None
    if batch.centre is not None:
        centre = torch.einsum("rnij,nj->rni", per_atom, batch.centre).reshape(r * n, 3)
    offs = (torch.arange(r) * n).view(r, 1, 1)
    idx = (index.unsqueeze(0) + offs).reshape(r * n, -1)
    logits = model(batch.species.repeat(r), idx, vec, centre_offset=centre, env_size=batch.env_size)
    return logits.reshape(r, n, -1)


def _forward(model: torch.nn.Module, kind: str, data: Dataset, items: np.ndarray, rot: torch.Tensor,
             sigma: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None):
    """(logits (R, M, C), targets (M,), boundary (M,) or None: see GraphBatch.boundary) for R rotations of the
    given items; ``sigma`` (one per item, Å): shake the items' atoms first (:func:`lammps_phase.training.jitter.shake`)."""
    if kind == "erhard":
        if not isinstance(data, EnvironmentSet):
            raise LammpsPhaseError("the Erhard-style baseline trains on P-point environments, not whole samples")
        pos = torch.from_numpy(data.positions[items].astype(np.float32))
        sp = torch.from_numpy(data.species[items].astype(np.int64))
        r, b = rot.shape[:2]
        posr = torch.einsum("rbij,bpj->rbpi", rot, pos).reshape(r * b, *pos.shape[1:])
        logits = model(sp.repeat(r, 1), posr).reshape(r, b, -1)
        return logits, torch.from_numpy(data.labels[items, 0].astype(np.int64)), None
    batch = graph_batch(data, items)
    if sigma is not None:
        batch.index, batch.vectors = shake(batch.index, batch.vectors, batch.item, sigma, generator)
    return _rotated_forward(model, batch, rot), batch.labels, batch.boundary()


def train_model(
    train_set: EnvironmentSet,
    val_set: EnvironmentSet,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    kind: str = "segmentation",
    log: Optional[Callable[[str], None]] = None,
    state_path: Optional[Path] = None,
    teacher: Optional[np.ndarray] = None,
) -> tuple[Checkpoint, History]:
    """Train and return the checkpoint of the best validation epoch, with its loss history.

    ``teacher`` (atoms of ``train_set``, classes): the teachers' probabilities for every training atom, required
    when ``cfg.distill`` > 0 (:func:`lammps_phase.training.distillation.teacher_probabilities`).

    ``state_path``: where the state after each epoch is kept (:mod:`lammps_phase.training.resume`); a state found
    there from the same settings and data is resumed, so an interrupted training loses at most one epoch."""
    if train_set.classes != val_set.classes:
        raise LammpsPhaseError("training and validation sets have different classes")
    if cfg.distill > 0.0:
        _check_teacher(train_set, kind, teacher)
    else:
        teacher = None
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_model(model_cfg, kind)
    start_score, start_print = None, ""
    if cfg.init:  # fine-tuning: the start's weights, and its score on the same validation data (what to beat)
        start_print = start_from(model, cfg.init, model_cfg, kind, train_set.classes)
        start_score = evaluate(model, val_set, kind=kind, batch_size=max(cfg.batch_size, 64))[cfg.select]
        if log:
            log(f"starting from {cfg.init}: val {cfg.select} {start_score:.4f}")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_batches:
        total = min(total, cfg.max_batches)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(total, 1), pct_start=0.15)
    weight = class_weights(train_set, cfg.class_balance)
    average = WeightAverage(model, cfg.average_epochs, steps_per_epoch) if cfg.average_epochs > 0 else None
    refresh = _refresh_batches(train_set, kind, cfg) if average is not None else None
    shaken = _shaken(train_set, kind, cfg)
    hist = History()
    best_state, best_acc = None, -1.0
    step, first_epoch, seconds_before = 0, 0, 0.0
    signature = ""
    if state_path is not None:
        signature = run_signature(model_cfg, cfg, kind, train_set, val_set, teacher, start_print)
        saved = resume_state(state_path, signature, model, opt, sched, gen, rng, log, average)
        if saved is not None:
            hist = History(**saved.history)
            best_state, best_acc, step, first_epoch = saved.best_state, saved.best_score, saved.step, saved.epoch + 1
            seconds_before = hist.seconds
    t0 = time.perf_counter()
    bar = _progress(total, cfg.progress)
    bar.update(step)
    for epoch in range(first_epoch, cfg.epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(train_set)))
        sums = np.zeros(3)
        nb = 0
        for s in range(0, len(order), cfg.batch_size):
            if step >= total:
                break
            idx = order[s : s + cfg.batch_size].numpy()
            if len(idx) < 2 and kind == "erhard":
                continue  # batch-norm over pooled features needs more than one sample
            rot = random_rotations(cfg.rotations * len(idx), gen).reshape(cfg.rotations, len(idx), 3, 3)
            sigma = None
            if shaken is not None:
                sigma = torch.rand(len(idx), generator=gen) * cfg.jitter * torch.from_numpy(shaken[idx])
            logits, targets, boundary = _forward(model, kind, train_set, idx, rot, sigma, gen)
            atom_weight = None
            if cfg.boundary_weight != 1.0 and boundary is not None:
                atom_weight = 1.0 + (cfg.boundary_weight - 1.0) * boundary.float()
            soft = None if teacher is None else torch.from_numpy(teacher[_atom_rows(train_set, idx)])
            loss, ce, spread = combined_loss(logits, targets, cfg.phi, cfg.alpha, weight, atom_weight, soft, cfg.distill)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if average is not None:
                average.update(model)
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
        judged = model  # the weights that would be shipped
        if average is not None:
            judged = average.model()
            refresh_batch_norm(judged, refresh)
        metrics = evaluate(judged, val_set, kind=kind, batch_size=max(cfg.batch_size, 64))
        hist.val_loss.append(metrics["loss"])
        hist.val_accuracy.append(metrics["accuracy"])
        if metrics[cfg.select] > best_acc:
            best_acc, hist.best_epoch = metrics[cfg.select], epoch
            best_state = copy.deepcopy(judged.state_dict())
        hist.seconds = seconds_before + time.perf_counter() - t0
        if state_path is not None:
            save_state(state_path, signature, EpochState(epoch, step, best_state, best_acc, hist.to_dict()), model,
                       opt, sched, gen, rng, average)
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
    hist.seconds = seconds_before + time.perf_counter() - t0
    if best_state is None:
        raise LammpsPhaseError("no training step ran: the training set is empty or smaller than 2 environments")
    model.load_state_dict(best_state)
    ckpt = Checkpoint(
        kind=kind,
        config=model_cfg,
        state_dict=model.state_dict(),
        classes=list(train_set.classes),
        metrics={"val_accuracy": hist.val_accuracy[hist.best_epoch], "val_" + cfg.select: best_acc, "best_epoch": hist.best_epoch, "train_seconds": hist.seconds},
    )
    if cfg.init:
        ckpt.metrics["fine_tuned_from"] = {"path": cfg.init, "fingerprint": start_print,
                                           "val_" + cfg.select: start_score}
        if best_acc <= start_score and log:  # the fine-tuning made nothing better: say so rather than ship it quietly
            log(f"[train] warning: no epoch beat the start's val {cfg.select} ({best_acc:.4f} <= {start_score:.4f}); "
                f"{cfg.init} reads the validation runs at least as well")
    return ckpt, hist


def _shaken(data: Dataset, kind: str, cfg: TrainConfig) -> Optional[np.ndarray]:
    """(snapshots,) float 0/1: which training snapshots ``jitter`` shakes; None when it is off."""
    if cfg.jitter == 0.0:
        return None
    if kind != "segmentation" or not isinstance(data, SampleSet):
        raise LammpsPhaseError("jitter shakes whole snapshots: it needs [dataset] mode = \"samples\" and the "
                               "segmentation network")
    return shaken_snapshots(data.labels, data.offsets, data.classes, cfg.jitter_classes).astype(np.float32)


def _atom_rows(data: SampleSet, items: np.ndarray) -> np.ndarray:
    """Rows of the given snapshots' atoms, in the order :func:`graph_batch` lays them out."""
    return np.concatenate([np.arange(data.offsets[i], data.offsets[i + 1]) for i in items])


def _check_teacher(data: Dataset, kind: str, teacher: Optional[np.ndarray]) -> None:
    if kind != "segmentation" or not isinstance(data, SampleSet):
        raise LammpsPhaseError("distillation needs whole snapshots ([dataset] mode = \"samples\") and the "
                               "segmentation model: the teachers label every atom of a snapshot")
    want = (len(data.labels), len(data.classes))
    if teacher is None or teacher.shape != want:
        got = "none" if teacher is None else f"shape {teacher.shape}"
        raise LammpsPhaseError(f"distill > 0 needs the teachers' probabilities for every training atom, shape {want}; "
                               f"got {got}")


#: training batches over which the batch norms of the weight average are re-measured before each validation
REFRESH_BATCHES = 64


def _refresh_batches(data: Dataset, kind: str, cfg: TrainConfig) -> Callable[[torch.nn.Module], None]:
    """The forward passes that re-measure an averaged model's batch norms: the same :data:`REFRESH_BATCHES`
    training batches every epoch, drawn from their own random stream so that the training's course stays that of
    a run without an average."""
    rng = np.random.default_rng(cfg.seed + 7919)
    order = rng.permutation(len(data))[: REFRESH_BATCHES * cfg.batch_size]
    batches = [order[s : s + cfg.batch_size] for s in range(0, len(order), cfg.batch_size)]
    batches = [b for b in batches if len(b) >= 2 or kind != "erhard"]
    gen = torch.Generator().manual_seed(cfg.seed + 7919)
    rotations = [random_rotations(len(b), gen).unsqueeze(0) for b in batches]

    def forward(model: torch.nn.Module) -> None:
        for items, rot in zip(batches, rotations):
            _forward(model, kind, data, items, rot)

    return forward


def class_weights(data: Dataset, balance: float) -> Optional[torch.Tensor]:
    """Cross-entropy weights ∝ (atoms per class)^−balance, mean 1 over the classes present; None for balance 0."""
    if balance <= 0.0:
        return None
    labels = np.asarray(data.labels).reshape(-1)
    counts = np.bincount(labels[labels >= 0], minlength=len(data.classes)).astype(np.float64)
    w = np.where(counts > 0, np.maximum(counts, 1.0) ** -balance, 0.0)
    w *= (counts > 0).sum() / w.sum()
    return torch.tensor(w, dtype=torch.float32)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    data: Dataset,
    kind: str = "segmentation",
    batch_size: int = 64,
    rotate_seed: Optional[int] = 1234,
) -> dict[str, Any]:
    """Per-atom (segmentation) or per-centre (erhard) accuracy, loss, confusion matrix, per-class accuracy.

    Items are randomly rotated (fixed seed) so the score reflects orientation-free use.
    """
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(rotate_seed if rotate_seed is not None else 0)
    c = len(data.classes)
    conf = np.zeros((c, c), dtype=np.int64)
    loss_sum, n_sum = 0.0, 0
    preds = []
    for s in range(0, len(data), batch_size):
        items = np.arange(s, min(s + batch_size, len(data)))
        rot = random_rotations(len(items), gen).unsqueeze(0)
        if rotate_seed is None:
            rot = torch.eye(3).expand(1, len(items), 3, 3)
        logits, lab, _ = _forward(model, kind, data, items, rot)
        logits = logits[0]
        loss_sum += F.cross_entropy(logits.reshape(-1, c), lab.reshape(-1), reduction="sum", ignore_index=IGNORE).item()
        known = lab.reshape(-1) != IGNORE
        n_sum += int(known.sum())
        pred = logits.argmax(dim=-1)
        preds.append(pred.numpy())
        np.add.at(conf, (lab.reshape(-1)[known].numpy(), pred.reshape(-1)[known].numpy()), 1)
    model.train(was_training)
    per_class = {
        name: float(conf[i, i] / conf[i].sum()) if conf[i].sum() else float("nan") for i, name in enumerate(data.classes)
    }
    seen = [v for v in per_class.values() if v == v]
    return {
        "accuracy": float(np.trace(conf) / max(conf.sum(), 1)),
        "balanced_accuracy": float(np.mean(seen)) if seen else 0.0,
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
