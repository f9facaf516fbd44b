"""What a one-off classification costs from a fresh process: eager kernels, kernels built ahead of time, torch.compile.

Each variant runs in its own new Python process (as `lammps-phase classify` would) on the same jittered α-quartz
sample (``--atoms``, default ≈ 10⁵) and reports the time to load the model (kernels included), the first call
and the second, in µs per atom. "ahead-of-time" uses the kernel cache (`lammps-phase kernels`, built first if
missing, the build time reported); "compile" points the kernel cache at an empty folder and compiles in-process
(torch.compile, its own on-disk caches warm from earlier runs); "eager" never compiles. Labels of all variants
are compared: they must be identical.

    python benchmarks/first_call.py                 # ≈ 10⁵ atoms, 2 threads
    python benchmarks/first_call.py --atoms 2e4 --variants eager ahead-of-time
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("eager", "ahead-of-time", "compile")


def worker(variant: str, atoms: float, threads: int, checkpoint: str, labels_out: str,
           consensus: str = "checkpoint", pooling: str = "checkpoint") -> dict:
    t_start = time.perf_counter()
    import numpy as np

    from lammps_phase.data import structures
    from lammps_phase.inference.classify import Classifier

    crystal = structures.build("alpha_quartz")
    volume_per_atom = abs(np.linalg.det(crystal.cell)) / len(crystal.symbols)
    sample = structures.supercell(crystal, (atoms * volume_per_atom) ** (1 / 3))
    rng = np.random.default_rng(0)
    positions = sample.positions + rng.normal(scale=0.05, size=sample.positions.shape)
    n = len(positions)
    imported = time.perf_counter() - t_start
    t0 = time.perf_counter()
    fast = {"eager": "eager", "ahead-of-time": "auto", "compile": "compile"}[variant]
    clf = Classifier.load(checkpoint, device="cpu", fast=fast, threads=threads, consensus=consensus, pooling=pooling)
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    first = clf.classify(positions, sample.cell, sample.symbols)
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    clf.classify(positions, sample.cell, sample.symbols)
    second_s = time.perf_counter() - t0
    np.save(labels_out, first.labels)
    return {"variant": variant, "kernels": clf.kernels, "atoms": n, "threads": threads, "consensus": clf.consensus,
            "pooling": clf.pooling,
            "import_s": imported,
            "load_s": load, "first_s": first_s, "second_s": second_s,
            "first_us_per_atom": 1e6 * first_s / n, "load_and_first_us_per_atom": 1e6 * (load + first_s) / n,
            "second_us_per_atom": 1e6 * second_s / n}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atoms", type=float, default=1e5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoint", default=str(ROOT / "checkpoints/sio2.pt"))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--consensus", default="checkpoint", metavar="W",
                    help="label with a neighbour consensus of weight W (lammps-phase classify --consensus; default: "
                    "the checkpoint's calibrated weight)")
    ap.add_argument("--pooling", default="checkpoint", metavar="R",
                    help="rounds of alpha/beta-quartz order pooling (lammps-phase classify --pooling; default: the "
                    "checkpoint's calibrated rounds)")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.atoms, args.threads, args.checkpoint, args.worker[1],
                                args.consensus, args.pooling)))
        return 0

    import numpy as np

    results, build_s = [], None
    with tempfile.TemporaryDirectory(prefix="first_call_") as tmp:
        if "ahead-of-time" in args.variants:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "lammps_phase.cli", "kernels", args.checkpoint], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            build_s = time.perf_counter() - t0
        for variant in args.variants:
            env = dict(os.environ)
            if variant == "compile":
                env["LAMMPS_PHASE_KERNEL_CACHE"] = str(Path(tmp) / "empty")
            out = str(Path(tmp) / f"{variant}.npy")
            proc = subprocess.run([sys.executable, __file__, "--atoms", str(args.atoms), "--threads", str(args.threads),
                                   "--checkpoint", args.checkpoint, "--consensus", str(args.consensus),
                                   "--pooling", str(args.pooling),
                                   "--worker", variant, out],
                                  env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{variant} failed:\n{proc.stderr[-3000:]}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            results[-1]["labels"] = np.load(out)
    same = all(np.array_equal(r["labels"], results[0]["labels"]) for r in results)
    n = results[0]["atoms"]
    print(f"\n{n} atoms α-quartz (jittered), {args.threads} threads, consensus {results[0]['consensus']:g}, "
          f"pooling {results[0]['pooling']} rounds, "
          "one fresh process per "
          "variant; "
          f"labels identical across variants: {same}"
          + (f"; `lammps-phase kernels` (nothing to build if cached) took {build_s:.1f} s" if build_s is not None else "")
          + "\n")
    print("| variant | kernels | load model (s) | first call (s) | first call (µs/atom) | load + first (µs/atom) | "
          "second call (µs/atom) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['variant']} | {r['kernels']} | {r['load_s']:.2f} | {r['first_s']:.2f} | {r['first_us_per_atom']:.1f} | "
              f"{r['load_and_first_us_per_atom']:.1f} | {r['second_us_per_atom']:.1f} |")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
