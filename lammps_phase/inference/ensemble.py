"""Several trainings of the same classes read as one classifier: per atom the mean of their calibrated probabilities.

Why: one training is one draw. The shipped SiO2 model and two retrains on the same data read held-out void surfaces
up to 27 points apart, and the mean of their probabilities read every place better than the shipped model alone
(BKS 0.978 → 0.983, bulk glass 0.995 → 0.999, slabs 4–6 Å below the surface 0.988 → 0.994, interfaces ≤ 3 Å
0.881 → 0.887; ``benchmarks/place_spread.py``, benchmarks/RESULTS.md "Session 20"). Training one network toward
that mean did not keep the gain (:mod:`lammps_phase.training.distillation`, "Session 21"), so the ensemble is
offered as itself: N networks' time for the better labels (one neighbour search serves them all). In situ it labels
in gather mode only: local mode's halo exchange feeds one network layer by layer.

An ensemble is a small TOML file beside its members::

    members = ["sio2.pt", "members/sio2_s19_seed1.pt", "members/sio2_s19_seed2.pt"]  # from this file's folder
    [calibration]                                                         # written by `lammps-phase ensemble`
    temperature = 0.93
    threshold = 0.51
    consensus = 0.5                                                       # the weight the threshold was chosen with
    pooling = 8                                                           # α/β order-pooling rounds, likewise

Its logits are log p̄ with p̄ = (1/N)·Σ_m softmax(z_m / τ_m), so that everything downstream of logits (temperature
scaling, the "other" threshold, the label memory) works unchanged; the ensemble's own temperature and threshold are
(and consensus weight) are fitted on validation snapshots like a checkpoint's
(:func:`lammps_phase.training.calibration.calibrate`). One
neighbour search and one training-domain screen (the first member's) serve all members.
"""

from __future__ import annotations

import math
import os
import tomllib
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from lammps_phase.atomic_write import write_text
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.classify import Classifier, check_threshold
from lammps_phase.inference.consensus import check_consensus, consensus_weight
from lammps_phase.inference.domain import TrainingDomain
from lammps_phase.inference.neighbors import NeighborList
from lammps_phase.inference.order_pooling import check_rounds, pooling_rounds
from lammps_phase.model import checkpoint as ckpt_io

#: file suffix that marks an ensemble where a checkpoint path is expected
SUFFIX = ".toml"


def is_ensemble(path: Union[str, os.PathLike]) -> bool:
    return str(path).endswith(SUFFIX)


class EnsembleClassifier(Classifier):
    """A :class:`Classifier` whose logits are the log of its members' mean calibrated probabilities."""

    def __init__(self, members: Sequence[ckpt_io.Checkpoint], calibration: Optional[dict[str, float]] = None,
                 threshold: Optional[float] = None, check_domain: bool = True,
                 consensus: Union[float, str, None] = None, pooling: Union[int, str, None] = None,
                 **options: Any) -> None:
        """``members``: checkpoints of the same classes, elements and k; ``calibration``: the ensemble's own
        temperature, default threshold and consensus weight (none: temperature 1, threshold 0, consensus 0);
        ``threshold``, ``consensus``, ``pooling``, ``check_domain`` and the other options as for :class:`Classifier`
        (each member runs with the same device, kernels and threads; the consensus and the pooling work on the
        ensemble's probabilities)."""
        if len(members) < 2:
            raise LammpsPhaseError(f"an ensemble needs at least 2 checkpoints, got {len(members)}")
        first = members[0]
        for other in members[1:]:
            if (other.classes, other.elements, other.k) != (first.classes, first.elements, first.k):
                raise LammpsPhaseError(
                    "ensemble members must label the same classes from the same elements and k neighbours: "
                    f"{', '.join(first.classes)} / {' '.join(first.elements)} / k={first.k} vs "
                    f"{', '.join(other.classes)} / {' '.join(other.elements)} / k={other.k}")
        self.members = [Classifier(m, threshold=0.0, check_domain=False, consensus=0.0, pooling=0, **options)
                        for m in members]
        lead = self.members[0]
        # the attributes Classifier's methods read, from the first member (classes, k, device, threads, search)
        self.__dict__.update({k: v for k, v in lead.__dict__.items() if k not in ("model", "fast", "members")})
        self.last_timings = {}
        self.model = None
        self.fast = None  # the fused paths are the members'; a halo call (in-situ local mode) needs one network
        calibration = dict(calibration or {})
        self.temperature = float(calibration.get("temperature", 1.0))
        self.threshold = check_threshold(float(calibration.get("threshold", 0.0)) if threshold is None else threshold)
        self.consensus = consensus_weight(consensus, float(calibration.get("consensus", 0.0)))
        self.pooling = pooling_rounds(pooling, float(calibration.get("pooling", 0)))
        self.calibration = calibration
        self.domain = TrainingDomain.from_dict(first.domain) if first.domain and check_domain else None

    @classmethod
    def load(cls, path: Union[str, os.PathLike], device: str = "auto", threshold: Optional[float] = None,
             type_map: Optional[Sequence[str]] = None, **options: Any) -> "EnsembleClassifier":
        """The ensemble a TOML file names (module docstring)."""
        members, calibration = read_ensemble(path)
        return cls([ckpt_io.load(m, type_map=type_map) for m in members], calibration, threshold=threshold,
                   device=device, **options)

    @property
    def kernels(self) -> str:
        kinds = sorted({m.kernels for m in self.members})
        return f"{len(self.members)} networks, " + " / ".join(kinds)

    @torch.no_grad()
    def logits(self, species_idx: np.ndarray, neighbors: NeighborList, halo: Any = None) -> torch.Tensor:
        """log of the members' mean calibrated probabilities (M, C): a softmax of them gives that mean back."""
        if halo is not None:
            raise LammpsPhaseError("an ensemble labels whole samples: in-situ local mode takes one checkpoint")
        mean = None
        network = 0.0
        for member in self.members:
            p = ckpt_io.calibrated_probabilities(member.logits(species_idx, neighbors), member.temperature)
            mean = p if mean is None else mean.add_(p)
            network += member.last_timings.get("network", 0.0)
        self.last_timings.update(network=network)
        return torch.log(mean.div_(len(self.members)).clamp_(min=1e-30))


def lead_checkpoint(path: Union[str, os.PathLike], type_map: Optional[Sequence[str]] = None) -> ckpt_io.Checkpoint:
    """What every network of a model file shares (classes, elements, k, hops): the checkpoint itself, or an
    ensemble's first member. For the places that need the classes, not the networks (other ranks, sidecars)."""
    return ckpt_io.load(read_ensemble(path)[0][0] if is_ensemble(path) else path, type_map=type_map)


def read_ensemble(path: Union[str, os.PathLike]) -> tuple[list[Path], dict[str, float]]:
    """(member checkpoint paths, calibration) of an ensemble file, every mistake named with the key that holds it."""
    path = Path(path)
    if not path.is_file():
        raise LammpsPhaseError(f"ensemble {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as err:
        raise LammpsPhaseError(f"ensemble {path} cannot be read as TOML ({err})") from None
    unknown = sorted(set(raw) - {"members", "calibration"})
    if unknown:
        raise LammpsPhaseError(f"ensemble {path} has unknown keys {unknown}: it holds members = [...] and [calibration]")
    members = raw.get("members")
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members) or len(members) < 2:
        raise LammpsPhaseError(f'ensemble {path}: members must list at least 2 checkpoint paths, e.g. members = '
                               '["a.pt", "b.pt"] (paths from the file\'s folder)')
    calibration = raw.get("calibration", {})
    if not isinstance(calibration, dict):
        raise LammpsPhaseError(f"ensemble {path}: calibration must be a table ([calibration] with temperature and "
                               "threshold)")
    bad = {k: v for k, v in calibration.items() if k not in ("temperature", "threshold", "consensus", "pooling")
           or not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)}
    if bad:
        raise LammpsPhaseError(f"ensemble {path}: [calibration] holds temperature, threshold, consensus and pooling "
                               f"as numbers, not {bad}")
    if calibration.get("temperature", 1.0) <= 0:
        raise LammpsPhaseError(f"ensemble {path}: [calibration] temperature must be positive")
    if not 0.0 <= calibration.get("consensus", 0.0) <= 1.0:
        raise LammpsPhaseError(f"ensemble {path}: [calibration] consensus must be in [0, 1]")
    try:
        check_rounds(calibration.get("pooling", 0))
    except LammpsPhaseError as err:
        raise LammpsPhaseError(f"ensemble {path}: [calibration] {err}") from None
    paths = [path.parent / m for m in members]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise LammpsPhaseError(f"ensemble {path}: member checkpoint(s) {', '.join(missing)} not found (member paths "
                               "are read from the ensemble file's folder)")
    return paths, {k: float(v) for k, v in calibration.items()}


def write_ensemble(path: Union[str, os.PathLike], members: Sequence[Union[str, os.PathLike]],
                   validation: Optional[Any] = None, consensus: float = 0.0, pooling: int = 0) -> dict[str, float]:
    """Write an ensemble file naming ``members`` (relative to its folder; refused unless they agree), calibrated on
    ``validation`` (a :class:`~lammps_phase.data.datasets.SampleSet` of held-out snapshots) when given, its
    threshold chosen on the probabilities blended with weight ``consensus`` and pooled for ``pooling`` rounds;
    returns the calibration."""
    from lammps_phase.inference.order_pooling import order_pairs
    from lammps_phase.training.calibration import calibrate, validation_graph, validation_logits

    path = Path(path)
    relative = [os.path.relpath(Path(m).resolve(), path.resolve().parent) for m in members]
    calibration: dict[str, float] = {}
    lines = ["# an ensemble of checkpoints (lammps_phase/inference/ensemble.py): per atom the mean of their "
             "calibrated probabilities", "members = [" + ", ".join(f'"{m}"' for m in relative) + "]"]
    # the members agree (classes, elements, k) or nothing is written
    clf = EnsembleClassifier([ckpt_io.load(m) for m in members], None, threshold=0.0, check_domain=False,
                             consensus=0.0, pooling=0, device="cpu")
    if validation is not None:
        fitted = calibrate(*validation_logits(clf, validation), consensus=check_consensus(consensus),
                           index=validation_graph(validation, clf.k), pooling=pooling,
                           pairs=order_pairs(clf.classes))
        calibration = {"temperature": fitted.temperature, "threshold": fitted.threshold}
        if fitted.consensus:
            calibration["consensus"] = fitted.consensus
        if fitted.pooling:
            calibration["pooling"] = float(fitted.pooling)
        lines += ["", f"# fitted on {fitted.atoms} validation atoms: accuracy {fitted.accuracy:.4f}, "
                  f"{fitted.accuracy_with_threshold:.4f} with the threshold ({100 * fitted.other_fraction:.2f} % "
                  f"below it); ECE {fitted.ece_before:.4f} -> {fitted.ece_after:.4f}"
                  + (f" with the consensus{' and pooling' if fitted.pooling else ''} ({fitted.ece_network:.4f} "
                     "without)" if fitted.consensus or fitted.pooling else ""),
                  "[calibration]", f"temperature = {fitted.temperature:.6f}", f"threshold = {fitted.threshold:.6f}"]
        if fitted.consensus:
            lines += [f"consensus = {fitted.consensus:g}"]
        if fitted.pooling:
            lines += [f"pooling = {fitted.pooling}"]
    write_text(path, "\n".join(lines) + "\n")
    return calibration
