"""Local mode's communication: each layer's features of the atoms other ranks own and this rank's rows read.

An owned atom's row (its k nearest neighbours) lies in the ghost shell LAMMPS keeps for the pair style anyway;
what lies farther reaches its label only through its neighbours' features. So every rank runs the network on
its own atoms only and, before each layer, receives the layer inputs of its *halo* (the ghost atoms in its
rows, one per atom ID) from the ranks that own them, and sends them theirs. The work per rank follows the
atoms it owns; the bytes per layer follow the halo, a one-row-thick skin of the subdomain.

:class:`HaloPlan` (collective) finds the owner of every halo atom by asking the ranks whose subdomain, grown by
:data:`OWNER_SLACK`, holds the atom's position (atoms stray from their subdomain between reneighborings by at
most half the skin), then every rank for whatever is still missing. :class:`HaloExchange` is the per-layer
exchange the network calls (:meth:`FastPhaseNet.__call__ <lammps_phase.model.fastpath.FastPhaseNet.__call__>`).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch

from lammps_phase.insitu.statistics import Traffic

__all__ = ["OWNER_SLACK", "HaloExchange", "HaloPlan", "current_plan"]

#: How far (Å) outside its subdomain an owned atom is looked for first: atoms move at most skin/2 between
#: reneighborings (the default skin of metal/real units is 2 Å); any atom not found there is asked of every rank.
OWNER_SLACK = 2.0


def _gap(f: np.ndarray, lo: np.ndarray, hi: np.ndarray, periodic: np.ndarray) -> np.ndarray:
    """Per dimension, how far (fraction of the box) points ``f`` (..., 3) lie outside [lo, hi] (..., 3), the
    nearest periodic image counting along periodic dimensions."""
    gap = np.maximum(np.maximum(lo - f, f - hi), 0.0)
    for shift in (-1.0, 1.0):
        shifted = np.maximum(np.maximum(lo - (f + shift), (f + shift) - hi), 0.0)
        gap = np.where(periodic, np.minimum(gap, shifted), gap)
    return gap


class HaloPlan:
    """Collective: which owned atoms each rank sends to which for the halo every rank reads.

    ``owned_ids`` (nlocal,) atom IDs this rank owns, in its local order; ``halo_ids`` (H,) sorted IDs of the atoms
    other ranks own that this rank's rows read; ``halo_fractional`` (H, 3) one of their positions in box
    fractions; ``box``: this rank's subdomain as (lo, hi) box fractions, with ``spacing`` (3,) Å per unit
    fraction (face spacings) and ``periodic`` (3,) bool. Built once and reused while every rank owns and reads
    the same atoms in the same order (:meth:`still_valid`).
    """

    def __init__(self, comm: Any, owned_ids: np.ndarray, halo_ids: np.ndarray, halo_fractional: np.ndarray,
                 box: tuple[np.ndarray, np.ndarray], spacing: np.ndarray, periodic: np.ndarray,
                 traffic: Optional[Traffic] = None) -> None:
        self.comm = comm
        self.owned_ids = np.array(owned_ids, dtype=np.int64)
        self.halo_ids = np.array(halo_ids, dtype=np.int64)
        size, rank = comm.Get_size(), comm.Get_rank()
        self._order = np.argsort(self.owned_ids, kind="stable")
        self._sorted = self.owned_ids[self._order]
        traffic = traffic or Traffic(size)

        boxes = np.array(comm.allgather(np.concatenate(box)), dtype=np.float64).reshape(size, 2, 3)
        traffic.add(48, 48 * (size - 1))
        slack = OWNER_SLACK / np.asarray(spacing, dtype=np.float64)
        wrapped = np.where(periodic, np.mod(halo_fractional, 1.0), halo_fractional)
        requests = [np.zeros(0, dtype=np.int64)] * size  # per rank: indices into halo_ids to ask it for
        # ranks whose grown subdomain can hold a halo atom at all: at most a few dozen, whatever the rank count
        if len(wrapped):
            near = np.flatnonzero(np.all(_interval_gap(wrapped.min(axis=0), wrapped.max(axis=0), boxes[:, 0],
                                                       boxes[:, 1], periodic) <= slack, axis=1))
            for r in near[near != rank]:
                requests[r] = np.flatnonzero(np.all(_gap(wrapped, boxes[r, 0], boxes[r, 1], periodic) <= slack, axis=1))
        found, send = self._ask(requests, traffic)
        have = np.zeros(len(self.halo_ids), dtype=bool)
        for r in range(size):
            have[requests[r][found[r]]] = True
        # whatever was not where it should be (a skin above 2 Å, a stale subdomain): ask everybody
        missing = np.flatnonzero(~have)
        self.asked_everyone = len(missing)  # halo atoms not found where their position said (diagnostics, tests)
        any_missing = comm.allreduce(int(len(missing)))
        traffic.add(8, 8)
        found2: list[np.ndarray] = [np.zeros(0, dtype=bool)] * size
        send2: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * size
        requests2 = [np.zeros(0, dtype=np.int64)] * size
        if any_missing:
            requests2 = [missing if r != rank else np.zeros(0, dtype=np.int64) for r in range(size)]
            found2, send2 = self._ask(requests2, traffic)
            for r in range(size):
                have[requests2[r][found2[r]]] = True
        self.unowned = self.halo_ids[~have]  # atom IDs no rank owns (duplicate or missing IDs): an error upstream
        self.error = None if not len(self.unowned) else (
            f"{len(self.unowned)} ghost atom(s) in this rank's neighbour rows have IDs no rank owns "
            f"(e.g. {self.unowned[:3].tolist()}): atom IDs must be unique; use mode='gather'")
        self.send_index = np.concatenate([np.concatenate([send[r], send2[r]]) for r in range(size)]).astype(np.int64)
        self.send_counts = np.array([len(send[r]) + len(send2[r]) for r in range(size)], dtype=np.int64)
        self.recv_slots = np.concatenate(
            [np.concatenate([requests[r][found[r]], requests2[r][found2[r]]]) for r in range(size)]).astype(np.int64)
        self.recv_counts = np.array([found[r].sum() + found2[r].sum() for r in range(size)], dtype=np.int64)

    def still_valid(self, owned_ids: np.ndarray, halo_ids: np.ndarray) -> bool:
        """Collective: whether every rank owns and reads the same atoms, in the same order, as when this was built."""
        from mpi4py import MPI

        mine = np.array_equal(owned_ids, self.owned_ids) and np.array_equal(halo_ids, self.halo_ids)
        return bool(self.comm.allreduce(int(mine), op=MPI.MIN))

    def _ask(self, requests: Sequence[np.ndarray], traffic: Traffic) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Collective: send rank r the halo IDs at ``requests[r]`` (indices into halo_ids); every rank answers
        which of them it owns. Returns, per rank r, (bool: r owns the ones asked of it) and (local indices of
        this rank's own atoms that r asked for, in r's order)."""
        from mpi4py import MPI

        comm, size = self.comm, self.comm.Get_size()
        send_counts = np.array([len(q) for q in requests], dtype=np.int64)
        recv_counts = np.empty(size, dtype=np.int64)
        comm.Alltoall(send_counts, recv_counts)
        send_displs, recv_displs = _displacements(send_counts), _displacements(recv_counts)
        asked = np.empty(int(recv_counts.sum()), dtype=np.int64)
        comm.Alltoallv([self.halo_ids[np.concatenate(requests).astype(np.int64)], (send_counts, send_displs),
                        MPI.INT64_T], [asked, (recv_counts, recv_displs), MPI.INT64_T])
        pos = np.minimum(np.searchsorted(self._sorted, asked), max(len(self._sorted) - 1, 0))
        owned = (np.take(self._sorted, pos) == asked) if len(self._sorted) else np.zeros(len(asked), dtype=bool)
        local = self._order[pos] if len(self._sorted) else np.zeros(len(asked), dtype=np.int64)
        answers = np.empty(int(send_counts.sum()), dtype=np.uint8)
        comm.Alltoallv([owned.astype(np.uint8), (recv_counts, recv_displs), MPI.UINT8_T],
                       [answers, (send_counts, send_displs), MPI.UINT8_T])
        traffic.add(8 * size + 9 * send_counts.sum() + recv_counts.sum(),
                    8 * size + 9 * recv_counts.sum() + send_counts.sum())
        found = np.split(answers.astype(bool), send_displs[1:])
        send = [local[a:b][owned[a:b]] for a, b in zip(recv_displs, recv_displs + recv_counts)]
        return found, send

    def exchange(self, features: np.ndarray, traffic: Optional[Traffic] = None) -> np.ndarray:
        """Collective: the rows (H, D) of ``features`` (nlocal, D), float32, that the halo's owners hold."""
        from mpi4py import MPI

        width = features.shape[1]
        send = np.ascontiguousarray(features[self.send_index], dtype=np.float32)
        received = np.empty((int(self.recv_counts.sum()), width), dtype=np.float32)
        self.comm.Alltoallv([send, (self.send_counts * width, _displacements(self.send_counts) * width), MPI.FLOAT],
                            [received, (self.recv_counts * width, _displacements(self.recv_counts) * width), MPI.FLOAT])
        if traffic is not None:
            traffic.add(send.nbytes, received.nbytes, atoms=True)
        out = np.zeros((len(self.halo_ids), width), dtype=np.float32)
        out[self.recv_slots] = received
        return out


def current_plan(plan: Optional[HaloPlan], comm: Any, owned_ids: np.ndarray, rows: Any, shell: Any,
                 traffic: Traffic) -> HaloPlan:
    """Collective: ``plan`` while every rank owns and reads the same atoms in the same order, else a new one for
    ``rows`` (:class:`~lammps_phase.insitu.local_mode.OwnedRows`) in ``shell``'s subdomain
    (:class:`~lammps_phase.insitu.local_mode.GhostShell`). A new plan's ``error`` must be agreed on by the caller."""
    if plan is not None:
        traffic.add(8, 8)  # the validity vote
        if plan.still_valid(owned_ids, rows.halo_ids):
            return plan
    return HaloPlan(comm, owned_ids, rows.halo_ids, shell.fractional(rows.halo_x), (shell.sub_lo, shell.sub_hi),
                    shell.spacing, shell.periodic, traffic)


class HaloExchange:
    """The ``halo`` a network calls before each layer (one exchange per layer, all ranks in step).

    ``widths``: the layer input widths, in order; a rank whose labelling failed half-way calls :meth:`finish`
    so the others' exchanges still complete (with zeros from it: their labels are discarded anyway, since the
    failure is agreed on afterwards).
    """

    def __init__(self, plan: HaloPlan, widths: Sequence[int], traffic: Optional[Traffic] = None) -> None:
        self.plan = plan
        self.widths = list(widths)
        self.traffic = traffic
        self.calls = 0

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        if self.calls >= len(self.widths) or h.shape[1] != self.widths[self.calls]:
            raise RuntimeError(f"halo exchange {self.calls + 1} of width {h.shape[1]} does not match the layer widths "
                               f"{self.widths}")
        self.calls += 1
        rows = h.detach().to("cpu", torch.float32).numpy()
        return torch.from_numpy(self.plan.exchange(rows, self.traffic)).to(h.device)

    def finish(self) -> None:
        """Take part in the exchanges this rank has not made yet."""
        while self.calls < len(self.widths):
            self.plan.exchange(np.zeros((len(self.plan.owned_ids), self.widths[self.calls]), dtype=np.float32),
                               self.traffic)
            self.calls += 1


def _interval_gap(lo: np.ndarray, hi: np.ndarray, los: np.ndarray, his: np.ndarray, periodic: np.ndarray) -> np.ndarray:
    """(P, 3): per dimension the gap between [lo, hi] and each [los[p], his[p]], periodic images counting."""
    gap = np.maximum(np.maximum(los - hi, lo - his), 0.0)
    for shift in (-1.0, 1.0):
        shifted = np.maximum(np.maximum(los - (hi + shift), (lo + shift) - his), 0.0)
        gap = np.where(periodic, np.minimum(gap, shifted), gap)
    return gap


def _displacements(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
