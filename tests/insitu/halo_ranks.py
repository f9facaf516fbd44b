"""Run under ``mpirun -np N python halo_ranks.py CHECKPOINT OUT.json [--wrong-boxes]``: local mode's halo exchange
without LAMMPS.

A jittered periodic α-quartz box is cut into N slabs along x, one per rank; each rank owns its slab and holds
as ghosts every periodic image within GHOST Å of it (as LAMMPS would), with atom IDs = index + 1. Every rank
labels its own atoms with rows + HaloPlan + HaloExchange; rank 0 writes the labels in atom order, the whole
sample's labels from Classifier.classify, and the plan's counts. ``--wrong-boxes`` hands HaloPlan the
subdomains of the wrong ranks, so owners are found only by asking every rank (the fallback round).
"""

from __future__ import annotations

import json
import sys

import numpy as np
from mpi4py import MPI

from lammps_phase.data import structures
from lammps_phase.inference.classify import Classifier
from lammps_phase.insitu.halo import HaloExchange, HaloPlan
from lammps_phase.insitu.local_mode import owned_rows
from lammps_phase.insitu.statistics import Traffic

GHOST = 8.0
TYPE_MAP = ["Si", "O"]


def main() -> None:
    checkpoint, out = sys.argv[1], sys.argv[2]
    wrong = "--wrong-boxes" in sys.argv
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    clf = Classifier.load(checkpoint, device="cpu", fast="eager", threads=1)
    crystal = structures.supercell(structures.build("alpha_quartz"), 16.0)
    cell = np.asarray(crystal.cell)
    rng = np.random.default_rng(3)
    frac = ((crystal.positions + rng.normal(scale=0.1, size=crystal.positions.shape)) @ np.linalg.inv(cell)) % 1.0
    positions = frac @ cell
    types = np.array([TYPE_MAP.index(s) + 1 for s in crystal.symbols], dtype=np.int32)
    ids = np.arange(1, len(positions) + 1, dtype=np.int64)

    lo, hi = np.array([rank / size, 0.0, 0.0]), np.array([(rank + 1) / size, 1.0, 1.0])
    mine = (frac[:, 0] >= lo[0]) & (frac[:, 0] < hi[0])
    shifts = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)], dtype=float)
    pad = GHOST / np.diag(cell)
    ghosts = []
    for shift in shifts:
        f = frac + shift
        near = np.all((f >= lo - pad) & (f < hi + pad), axis=1)
        if not shift.any():
            near &= ~mine
        ghosts.append((np.flatnonzero(near), shift))
    owned = np.flatnonzero(mine)
    x = np.concatenate([positions[owned]] + [(frac[g] + s) @ cell for g, s in ghosts])
    all_ids = np.concatenate([ids[owned]] + [ids[g] for g, _ in ghosts])
    all_types = np.concatenate([types[owned]] + [types[g] for g, _ in ghosts])
    nlocal = len(owned)

    rows = owned_rows(x, all_ids, all_types, nlocal, clf.k)
    box_rank = (rank + 1) % size if wrong else rank
    box = (np.array([box_rank / size, 0.0, 0.0]), np.array([(box_rank + 1) / size, 1.0, 1.0]))
    spacing = np.diag(cell).astype(float)
    traffic = Traffic(size)
    plan = HaloPlan(comm, all_ids[:nlocal], rows.halo_ids, rows.halo_x @ np.linalg.inv(cell), box, spacing,
                    np.array([True, True, True]), traffic)
    exchange = HaloExchange(plan, clf.fast.layer_input_widths, traffic)
    species = clf.species_indices(np.concatenate([all_types[:nlocal], rows.halo_types]), TYPE_MAP)
    result = clf.classify_neighbors(species, rows.neighbors, labelled=nlocal, halo=exchange)
    exchange.finish()

    gathered = comm.gather((ids[owned], result.labels, result.confidence, len(rows.halo_ids), len(plan.unowned),
                            int(plan.recv_counts.sum()), traffic.atom_sent, exchange.calls, plan.asked_everyone), root=0)
    if rank == 0:
        labels = np.empty(len(positions), dtype=np.int64)
        conf = np.empty(len(positions))
        for got_ids, got_labels, got_conf, *_ in gathered:
            labels[got_ids - 1], conf[got_ids - 1] = got_labels, got_conf
        ref = clf.classify(positions, cell, types, type_map=TYPE_MAP)
        with open(out, "w") as f:
            json.dump({"labels": labels.tolist(), "confidence": conf.tolist(), "reference": ref.labels.tolist(),
                       "reference_confidence": ref.confidence.tolist(),
                       "halo": [g[3] for g in gathered], "unowned": [g[4] for g in gathered],
                       "received": [g[5] for g in gathered], "atom_bytes_sent": [g[6] for g in gathered],
                       "exchanges": [g[7] for g in gathered], "asked_everyone": [g[8] for g in gathered], "owned": [len(g[0]) for g in gathered]}, f)


if __name__ == "__main__":
    main()
