"""Order pooling: α- or β-quartz decided over a region, not one neighbour shell.

Two classes that share one topology and differ by a coherent order parameter — α-quartz is β-quartz with every
tetrahedron tilted the same way (the Dauphiné tilt, :mod:`lammps_phase.data.quartz_order`) — are told apart by
how the tilt of many tetrahedra agrees, which one atom's neighbourhood shows only faintly once the tilt has
fallen towards the transition. Near a void or a free surface at 500–660 K (tilt 0.5–0.8 of ideal α) the network
reads patches of α-quartz as β (benchmarks/RESULTS.md, "Session 25"). So for each such pair (a, b) every atom
keeps its share q of the pair but takes the split between the two from its region: R rounds of

    q_i = p_ia + p_ib,   s_i ← (q_i s_i + Σ_{j ∈ N_k(i)} q_j s_j) / (q_i + Σ_{j ∈ N_k(i)} q_j),   s_i⁰ = p_ia / q_i

then p_ia = q_i s_i, p_ib = q_i (1 − s_i); every other class is untouched, so an atom the network reads as glass
or coesite stays what it was, and the weights q keep a glass atom's faint quartz share from voting. R rounds
spread the split over about √R neighbour shells (R = 8: ≈ 1 nm). What it costs: a region of β-quartz (or α) less
than about that across inside the other is read as its surroundings. R = 0 is off; a calibrated checkpoint
carries the rounds its threshold was chosen with (``calibration["pooling"]``). In-situ local mode gets the
neighbours' (q, q·s) that other ranks own through one halo exchange per round, so labels stay the same for any
rank count.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from scipy.sparse import csr_matrix

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.consensus import neighbour_consensus

__all__ = ["ORDER_PAIRS", "MAX_ROUNDS", "check_rounds", "order_pairs", "pool_order", "pooling_argument",
           "pooling_rounds", "served_probabilities"]

#: class pairs that differ only by a coherent order parameter (the first is the ordered one)
ORDER_PAIRS = (("alpha_quartz", "beta_quartz"),)

#: more rounds than this spread a split over several nanometres, farther than any measured gain (session 26)
MAX_ROUNDS = 64


def check_rounds(rounds: Union[int, float, str]) -> int:
    """The number of pooling rounds, checked: a whole number in [0, MAX_ROUNDS] (0 = off)."""
    try:
        value = float(rounds)
    except (TypeError, ValueError):
        raise LammpsPhaseError(f"pooling must be a whole number of rounds, not {rounds!r}") from None
    if value != int(value) or not 0 <= value <= MAX_ROUNDS:
        raise LammpsPhaseError(f"pooling {rounds!r} is not a whole number in [0, {MAX_ROUNDS}]: it is how many "
                               "neighbour rounds decide between alpha- and beta-quartz (0 = off, 8 = about 1 nm)")
    return int(value)


def pooling_argument(rounds: Union[int, str, None]) -> Optional[int]:
    """Rounds as given: None for None or "checkpoint" (the checkpoint's own, known once it is loaded), else
    checked."""
    if rounds is None or (isinstance(rounds, str) and rounds.strip().lower() == "checkpoint"):
        return None
    return check_rounds(rounds)


def pooling_rounds(rounds: Union[int, str, None], calibrated: float) -> int:
    """The rounds to use: ``calibrated`` (the checkpoint's) for None or "checkpoint", else ``rounds`` checked."""
    given = pooling_argument(rounds)
    return check_rounds(calibrated) if given is None else given


def order_pairs(classes: Sequence[str]) -> list[tuple[int, int]]:
    """Column pairs of :data:`ORDER_PAIRS` that are both among ``classes`` (none for, e.g., a Cu model)."""
    names = list(classes)
    return [(names.index(a), names.index(b)) for a, b in ORDER_PAIRS if a in names and b in names]


def pool_order(probabilities: Union[np.ndarray, torch.Tensor], index: np.ndarray, pairs: Sequence[tuple[int, int]],
               rounds: int, halo: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> np.ndarray:
    """p̂ (R, C) for the R rows of ``index`` (R, k) from ``probabilities`` (R, C) of the same rows.

    With ``halo`` the rows point also at atoms after them, whose (q, q·s) ``halo`` gets from the rows' (R, 2)
    once per pair and round (in-situ local mode: from the ranks that own them). Each round is one sparse
    product with the graph (the atom and its k neighbours): about 0.02 µs/atom a round at 10⁵ atoms."""
    p = torch.as_tensor(probabilities).detach().to("cpu", torch.float32).numpy().copy()
    rows, k = np.shape(index)[0], (np.shape(index)[1] if np.ndim(index) == 2 else 0)
    if len(p) != rows:
        raise LammpsPhaseError(f"{len(p)} probability rows for {rows} neighbour rows")
    if not pairs or not rounds or not rows:
        return p
    # the graph's own index type (int32 from the neighbour search) spares scipy a conversion of every entry
    kind = np.int32 if rows + int(np.max(index, initial=0)) < np.iinfo(np.int32).max else np.int64
    columns = np.concatenate([np.arange(rows, dtype=kind)[:, None], np.asarray(index, dtype=kind)], axis=1).ravel()
    graph = None
    for a, b in pairs:
        q = p[:, a] + p[:, b]
        both = np.stack([q, p[:, a]], axis=1)  # (q, q·s)
        weight = None  # Σ q over the atom and its neighbours: the same every round
        for _ in range(rounds):
            if halo is not None:
                both = np.concatenate([both, halo(torch.from_numpy(both)).to("cpu", torch.float32).numpy()])
            if graph is None:
                if int(columns.max()) >= len(both):
                    raise LammpsPhaseError("order pooling needs every neighbour's probabilities, but the rows point "
                                           "at atoms that were not labelled: label all atoms (or give the halo)")
                graph = csr_matrix((np.ones(len(columns), np.float32), columns,
                                    np.arange(0, len(columns) + 1, k + 1, dtype=kind)), shape=(rows, len(both)))
            if weight is None:  # one column at a time: a product with an (N, 2) array is 3x slower
                weight = np.maximum(graph @ np.ascontiguousarray(both[:, 0]), 1e-12)
            mass = (q * ((graph @ np.ascontiguousarray(both[:, 1])) / weight)).astype(np.float32)
            both = np.stack([q, mass], axis=1)
        p[:, a], p[:, b] = both[:, 1], q - both[:, 1]
    return p


def served_probabilities(probabilities: Union[np.ndarray, torch.Tensor], index: np.ndarray, consensus: float,
                         pairs: Sequence[tuple[int, int]], rounds: int,
                         halo: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> np.ndarray:
    """What a user is given from calibrated probabilities (R, C) of the rows of the k-NN graph ``index``: the
    neighbour consensus of weight ``consensus``, then ``rounds`` of order pooling between ``pairs`` (each when
    switched on) — the one sequence the Classifier labels with and the calibration chooses its threshold on."""
    p = probabilities
    if consensus > 0:
        p = neighbour_consensus(p, index, consensus, halo)
    if rounds and pairs:
        p = pool_order(p, index, pairs, rounds, halo)
    return np.asarray(p)
