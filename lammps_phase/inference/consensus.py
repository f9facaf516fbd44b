"""Neighbour consensus: each atom's class probabilities blended with those of its k nearest neighbours.

    p̃_i = (1 − w) · p_i + w · (1/k) · Σ_{j ∈ N_k(i)} p_j

over the k-NN graph the network itself labelled on (no second neighbour search; in-situ local mode gets the
neighbours' probabilities that other ranks own through one more halo exchange, so labels stay the same for any
rank count). Why: a phase is a property of a region, and the network's errors on held-out runs are mostly single
atoms among neighbours it reads right. On session 20's held-out runs (seed 4, ``benchmarks/place_spread.py
--consensus``, no threshold) w = 0.5 lifted the shipped model's BKS places from 0.972 to 0.979 and the outer 2 Å of
clusters from 0.87 to 0.97, while interfaces within 3 Å also gained (0.881 → 0.890): the k = 16 nearest reach
≈ 3.5 Å, less than what separates two phases' regions (with the calibrated threshold, fitted to the network alone,
the interfaces' boundary atoms become unsure instead: benchmarks/RESULTS.md, "Session 23"). What it costs: a region
of a phase smaller than about one neighbour shell (a nucleus of a few atoms) is read as its surroundings. w = 0
is the network alone; a calibrated checkpoint carries the weight its threshold was chosen with
(``calibration["consensus"]``, :mod:`lammps_phase.training.calibration`), which is the default everywhere.
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np
import torch

from lammps_phase.errors import LammpsPhaseError

__all__ = ["check_consensus", "consensus_argument", "consensus_weight", "neighbour_consensus", "FROM_CHECKPOINT"]

#: the word that asks for the checkpoint's own weight where a number is expected (deck variables, the CLI)
FROM_CHECKPOINT = "checkpoint"


def check_consensus(weight: float) -> float:
    """The weight w of the neighbours' mean, checked: 0 (off) ≤ w ≤ 1 (the neighbours alone)."""
    try:
        w = float(weight)
    except (TypeError, ValueError):
        raise LammpsPhaseError(f"consensus must be a number between 0 and 1, not {weight!r}") from None
    if not 0.0 <= w <= 1.0:
        raise LammpsPhaseError(f"consensus {w:g} is outside [0, 1]: it is the weight of the neighbours' mean "
                               "probabilities (0 = off, 0.5 = as much as the atom's own)")
    return w


def consensus_argument(weight: Union[float, str, None]) -> Optional[float]:
    """A weight as given: None for None or "checkpoint" (the checkpoint's own, known once it is loaded), else
    checked."""
    if weight is None or (isinstance(weight, str) and weight.strip().lower() == FROM_CHECKPOINT):
        return None
    return check_consensus(weight)


def consensus_weight(weight: Union[float, str, None], calibrated: float) -> float:
    """The weight to use: ``calibrated`` (the checkpoint's) for None or "checkpoint", else ``weight`` checked."""
    given = consensus_argument(weight)
    return check_consensus(calibrated) if given is None else given


def neighbour_consensus(probabilities: Union[np.ndarray, torch.Tensor], index: np.ndarray, weight: float,
                        halo: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> np.ndarray:
    """p̃ (R, C) for the R rows of ``index`` (R, k), from ``probabilities`` (R, C) of the same rows.

    Rows point at atoms ``[0, R)`` and, with ``halo``, at the atoms after them, whose probabilities ``halo`` gets
    from the rows' (in-situ local mode: from the ranks that own them)."""
    p = torch.as_tensor(probabilities, dtype=torch.float32).cpu()
    rows = len(index)
    if len(p) != rows:
        raise LammpsPhaseError(f"{len(p)} probability rows for {rows} neighbour rows")
    if halo is not None:
        p = torch.cat([p, halo(p).to("cpu", torch.float32)])
    if rows and int(index.max()) >= len(p):
        raise LammpsPhaseError("the neighbour consensus needs every neighbour's probabilities, but the rows point "
                               "at atoms that were not labelled: label all atoms (or give the halo)")
    columns = torch.as_tensor(np.ascontiguousarray(np.asarray(index).T), dtype=torch.int64)
    total = torch.zeros((rows, p.shape[1]), dtype=torch.float32)
    for column in columns:  # one (R, C) gather at a time: p[index] would hold k copies
        total += p.index_select(0, column)
    return ((1.0 - weight) * p[:rows] + (weight / max(len(columns), 1)) * total).numpy()
