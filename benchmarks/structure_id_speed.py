"""lammps-phase against OVITO's common neighbour analysis and polyhedral template matching, on the same machine.

Issue 16 asks for labelling at "CNA's speed". Speeds measured on different days or machines do not compare (this
machine is a shared VM), so this times all three on the same jittered α-quartz sample, in one run, round by round:
each round runs every method in a fresh process (lammps-phase first), each process times ``--repeats`` calls after
one warm-up call and keeps the median. Reported: µs per atom per method and round, and lammps-phase / CNA per round.
CNA and PTM classify metals, not silica: what is compared is the cost of a per-atom structure label, the sample
only has to be the same. All three use ``--threads`` threads (OVITO through OVITO_THREAD_COUNT).

    python benchmarks/structure_id_speed.py                      # 10⁵ atoms, 2 threads, 3 rounds
    python benchmarks/structure_id_speed.py --atoms 1e6 --rounds 2

Needs the optional ``ovito`` package (scripts/test.sh installs it); lammps-phase uses the kernel cache
(``lammps-phase kernels`` first, else it compiles in its warm-up call).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
METHODS = ("lammps-phase", "CNA", "PTM")


def _timed(call, repeats: int) -> tuple[float, float]:
    """(first call, median of the next ``repeats``) in seconds."""
    t0 = time.perf_counter()
    call()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def worker(method: str, atoms: float, threads: int, repeats: int, checkpoint: str) -> dict:
    from inference_speed import quartz_sample

    pos, cell, symbols = quartz_sample(atoms)
    if method == "lammps-phase":
        from lammps_phase.inference.classify import Classifier
        from lammps_phase.model import checkpoint as ckpt_io

        clf = Classifier(ckpt_io.load(checkpoint), fast="compile", threads=threads)
        first, median = _timed(lambda: clf.classify(pos, cell, symbols), repeats)
        return {"first": first, "median": median, "atoms": len(pos), "kernels": clf.kernels}
    from ovito.data import DataCollection
    from ovito.modifiers import CommonNeighborAnalysisModifier, PolyhedralTemplateMatchingModifier
    from ovito.pipeline import Pipeline, StaticSource

    data = DataCollection()
    matrix = [[*row, 0.0] for row in zip(*cell)]  # OVITO: columns are the cell vectors, then the origin
    data.create_cell(matrix, pbc=(True, True, True))
    data.create_particles(count=len(pos)).create_property("Position", data=pos)
    modifier = CommonNeighborAnalysisModifier if method == "CNA" else PolyhedralTemplateMatchingModifier

    def call():  # a new pipeline each time: OVITO caches a pipeline's result
        pipeline = Pipeline(source=StaticSource(data=data))
        pipeline.modifiers.append(modifier())
        pipeline.compute()

    first, median = _timed(call, repeats)
    return {"first": first, "median": median, "atoms": len(pos), "kernels": "-"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--atoms", type=float, default=1e5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per process after the warm-up call")
    ap.add_argument("--checkpoint", default=str(ROOT / "checkpoints/sio2.pt"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.atoms, args.threads, args.repeats, args.checkpoint)))
        return 0
    env = dict(os.environ, OVITO_THREAD_COUNT=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rounds = []
    for number in range(args.rounds):
        row = {}
        for method in METHODS:
            cmd = [sys.executable, __file__, "--worker", method, "--atoms", repr(args.atoms), "--threads",
                   str(args.threads), "--repeats", str(args.repeats), "--checkpoint", args.checkpoint]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            if proc.returncode != 0:
                raise SystemExit(f"{method} failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
            row[method] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"round {number + 1} {method}: {1e6 * row[method]['median'] / row[method]['atoms']:.2f} µs/atom",
                  file=sys.stderr, flush=True)
        rounds.append(row)
    atoms = rounds[0]["lammps-phase"]["atoms"]
    us = {m: [1e6 * r[m]["median"] / atoms for r in rounds] for m in METHODS}
    ratio = [a / c for a, c in zip(us["lammps-phase"], us["CNA"])]
    print(f"{atoms:,} atoms of jittered α-quartz, {args.threads} threads, {args.rounds} rounds (a fresh process per "
          f"method and round, median of {args.repeats} calls after a warm-up), {started}; lammps-phase kernels: "
          f"{rounds[0]['lammps-phase']['kernels']}\n")
    print("| method | µs/atom per round | median | first call µs/atom (median) |\n|---|---|---:|---:|")
    for m in METHODS:
        first = statistics.median(1e6 * r[m]["first"] / atoms for r in rounds)
        print(f"| {m} | {' / '.join(f'{v:.2f}' for v in us[m])} | **{statistics.median(us[m]):.2f}** | {first:.1f} |")
    print(f"\nlammps-phase / CNA per round: {' / '.join(f'{v:.2f}' for v in ratio)} "
          f"(median {statistics.median(ratio):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
