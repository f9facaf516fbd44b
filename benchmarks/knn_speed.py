"""Neighbour search speed: the compiled cell list (lammps_phase.inference.cell_knn) against scipy's cKDTree.

Times ``knn(positions, 16, cell, workers=2)`` — wrapping, ghost images, search and neighbour vectors — on α-quartz
supercells with thermal noise (built as in inference_speed.py), the two backends interleaved in one process
(LAMMPS_PHASE_KNN=tree selects the tree), best of ``--repeats``, and checks that both give the same neighbour list
bit for bit (index, vectors, distances). The machine may be shared: compare the ratio within one run, not absolute times across runs.

    python benchmarks/knn_speed.py --sizes 1e4 1e5 1e6 --workers 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference_speed import quartz_sample  # noqa: E402  (puts the repository on sys.path too)

from lammps_phase.inference import cell_knn  # noqa: E402
from lammps_phase.inference.neighbors import knn  # noqa: E402

BACKENDS = {"tree": "tree", "compiled": "cell"}  # name -> LAMMPS_PHASE_KNN


def timed(pos: np.ndarray, cell: np.ndarray, k: int, workers: int, backend: str):
    os.environ[cell_knn.BACKEND_ENV] = BACKENDS[backend]
    t0 = time.perf_counter()
    nl = knn(pos, k, cell, workers=workers)
    return time.perf_counter() - t0, nl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e4, 1e5, 1e6])
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not cell_knn.available():
        sys.exit("the compiled search is unavailable (see the warning above): nothing to compare")
    saved = os.environ.get(cell_knn.BACKEND_ENV)
    print(f"k = {args.k}, workers = {args.workers}, best of {args.repeats} (backends interleaved)")
    print("| atoms | tree µs/atom | compiled µs/atom | tree / compiled | identical |")
    print("|---:|---:|---:|---:|:---|")
    try:
        for size in args.sizes:
            pos, cell, _ = quartz_sample(size)
            best = {name: np.inf for name in BACKENDS}
            lists = {}
            timed(pos, cell, args.k, args.workers, "compiled")  # warm-up: page in, build the library
            for rep in range(args.repeats):
                for name in (BACKENDS if rep % 2 == 0 else reversed(list(BACKENDS))):
                    seconds, lists[name] = timed(pos, cell, args.k, args.workers, name)
                    best[name] = min(best[name], seconds)
            same = all(np.array_equal(getattr(lists["tree"], f), getattr(lists["compiled"], f))
                       for f in ("index", "vectors", "distances"))
            us = {name: best[name] / len(pos) * 1e6 for name in BACKENDS}
            print(f"| {len(pos):,} | {us['tree']:.2f} | {us['compiled']:.2f} | {us['tree'] / us['compiled']:.2f} | "
                  f"{'yes' if same else 'NO'} |", flush=True)
    finally:
        if saved is None:
            os.environ.pop(cell_knn.BACKEND_ENV, None)
        else:
            os.environ[cell_knn.BACKEND_ENV] = saved


if __name__ == "__main__":
    main()
