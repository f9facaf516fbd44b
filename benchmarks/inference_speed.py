"""Inference speed and memory of the whole-sample classifier vs sample size, and vs the per-atom baseline.

Prints a table (µs per atom split into neighbour search / tensor conversion / network / result, peak RSS
above the idle process) for α-quartz supercells with thermal noise, for the reference PhaseNet forward
and the fast path (lammps_phase.model.fastpath), plus the Erhard-style centre-atom baseline (one P-point
environment per atom) on a subset of atoms. Every size runs in its own subprocess so peak RSS
(getrusage ru_maxrss) belongs to that size alone.

    python benchmarks/inference_speed.py --sizes 1e3 1e4 1e5 1e6 --threads 2 --write

The model is the shipped checkpoint (``--checkpoint``, default checkpoints/sio2.pt); ``--checkpoint random``
uses random weights of a wider network (channels 64-64-64, head 128): speed does not depend on the weights.
The per-atom baseline has the checkpoint's widths and k. The machine may be shared, so wall-clock numbers are
noisy; CPU time per atom and ratios measured within one run are the more stable figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUARTZ_DENSITY = 0.0797  # atoms / Å^3 (2.65 g/cm^3)
SECTION = "## Inference speed"
NOTES = """Notes: "convert" is numpy → torch conversion, "result" the distance checks (overlaps, training domain)
and the softmax/labels back to numpy. Peak RSS is measured above the idle process after imports, above the "ready"
process (current RSS after one classification of 1000 atoms, i.e. with compiled kernels loaded), and above the ready
process holding the sample (float64 positions and element names, 32 B/atom, built and its temporaries returned to the
system first): the last is what labelling costs on top of the caller's data. "first call" (on the measured size) includes
compiling the fused kernels (torch.compile/inductor, cached on disk, once per process and
thread count; later sizes reuse it: dynamic shapes). GPU: the fast path is device-agnostic (Triton kernels
via torch.compile on CUDA, eager fallback), but GPU numbers are still to be measured
(`python benchmarks/inference_speed.py --device cuda`)."""


def model_config(k: int = 16):
    from lammps_phase.model.network import ModelConfig

    return ModelConfig(
        elements=["Si", "O"], num_classes=4, k=k, channels=[64, 64, 64], head=[128], embed_dim=16,
        radial_basis=16, bond_order_l=6, bond_order_neighbors=[k // 2, k],
    )


def load_checkpoint(path: str, kind: str = "segmentation"):
    """The shipped checkpoint (segmentation), or random weights of its widths (baseline) / of model_config()."""
    from lammps_phase.model import checkpoint as ckpt_io

    if path == "random":
        return random_checkpoint(kind)
    ckpt = ckpt_io.load(ROOT / path if not os.path.isabs(path) else path)
    return ckpt if kind == "segmentation" else random_checkpoint(kind, ckpt.config)


def random_checkpoint(kind: str = "segmentation", cfg=None):
    """Random weights with non-trivial batch-norm statistics (as tests/conftest.py does)."""
    import torch

    from lammps_phase.model import checkpoint as ckpt_io
    from lammps_phase.model.network import build_model

    torch.manual_seed(0)
    cfg = cfg or model_config()
    model = build_model(cfg, kind)
    g = torch.Generator().manual_seed(0)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.3)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
    classes = [f"class{i}" for i in range(cfg.num_classes)]
    return ckpt_io.Checkpoint(kind, cfg, model.state_dict(), classes)


def quartz_sample(n_atoms: float, seed: int = 0):
    from lammps_phase.data.structures import build, supercell

    length = (float(n_atoms) / QUARTZ_DENSITY) ** (1.0 / 3.0)
    crystal = supercell(build("alpha_quartz"), length)
    rng = np.random.default_rng(seed)
    pos = crystal.positions + rng.normal(scale=0.05, size=crystal.positions.shape)  # ~300 K thermal noise
    # what a caller holds: float64 positions and an array of element names (32 B/atom)
    return pos, crystal.cell, np.asarray(crystal.symbols, dtype="U2")


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# --------------------------------------------------------------------------------------------- workers


def worker_classify(n_atoms: float, path: str, threads: str, device: str, repeats: int, checkpoint: str) -> dict:
    """One size, one path, fresh process: timings per stage and peak RSS above the idle process."""
    import torch

    from lammps_phase import runtime
    from lammps_phase.inference.classify import Classifier

    thr = "auto" if threads == "auto" else int(threads)
    ckpt = load_checkpoint(checkpoint)
    fast = {"reference": False, "fast": "compile", "fast-eager": "eager"}[path]
    clf = Classifier(ckpt, device=device, fast=fast, threads=thr)
    idle = maxrss_mb()
    # A process that has classified once (kernels compiled) is the baseline in-situ runs pay per call.
    clf.classify(*quartz_sample(1000, seed=1))
    ready = current_rss_mb()
    pos, cell, symbols = quartz_sample(n_atoms)
    runtime.release_free_memory()  # the sample's construction temporaries are not the classifier's
    with_sample = current_rss_mb()
    n = len(pos)
    t0 = time.perf_counter()
    clf.classify(pos, cell, symbols)  # warm-up: compiles kernels on the fast path
    first = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        clf.classify(pos, cell, symbols)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        stages = dict(clf.last_timings)
        stages["result"] = stages.get("result", 0.0) + stages.pop("screen", 0.0)  # the distance checks, then labels
        runs.append({**stages, "wall": wall, "cpu": cpu})
    best = min(runs, key=lambda r: r["wall"])
    us = {key: value / n * 1e6 for key, value in best.items()}
    return {
        "path": path, "atoms": n, "threads": torch.get_num_threads(), "first_call_s": first,
        "us_per_atom": us, "peak_rss_above_idle_mb": maxrss_mb() - idle, "idle_rss_mb": idle,
        "peak_rss_above_ready_mb": maxrss_mb() - ready, "peak_rss_above_sample_mb": maxrss_mb() - with_sample,
        "sample_mb": with_sample - ready,
    }


def worker_erhard(points: list[int], centres: int, threads: str, device: str, checkpoint: str) -> dict:
    """Per-atom baseline: one P-point environment per atom (extraction + network), µs per labelled atom."""
    import torch

    from lammps_phase.inference.classify import resolve_device
    from lammps_phase.data.datasets import extract_environments
    from lammps_phase.runtime import set_threads

    set_threads("auto" if threads == "auto" else int(threads))
    dev = resolve_device(device)
    model = load_checkpoint(checkpoint, "erhard").build().to(dev)
    pos, cell, symbols = quartz_sample(1e4)
    species = np.array([s == "O" for s in symbols], dtype=np.int64)
    chosen = np.random.default_rng(1).choice(len(pos), size=min(centres, len(pos)), replace=False)
    out = {}
    for p in points:
        t0 = time.perf_counter()
        rel, sp, _ = extract_environments(pos, cell, species, np.zeros(len(pos), np.int64), p, chosen)
        t1 = time.perf_counter()
        batch = max(1, 25_600 // p)
        with torch.no_grad():
            for s in range(0, len(chosen), batch):
                model(torch.as_tensor(sp[s : s + batch], dtype=torch.long, device=dev),
                      torch.as_tensor(rel[s : s + batch], device=dev))
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        out[str(p)] = {"environments": (t1 - t0) / len(chosen) * 1e6, "network": (t2 - t1) / len(chosen) * 1e6,
                       "total": (t2 - t0) / len(chosen) * 1e6}
    return {"erhard": out, "centres": len(chosen)}


# --------------------------------------------------------------------------------------------- driver


def run_worker(args: list[str], options: argparse.Namespace, timeout: float) -> dict:
    passed = ["--checkpoint", options.checkpoint, "--threads", str(options.threads), "--device", options.device, "--repeats", str(options.repeats),
              "--erhard-centres", str(options.erhard_centres), "--erhard-points", *map(str, options.erhard_points)]
    cmd = [sys.executable, __file__, *passed, "--worker", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt_row(r: dict) -> str:
    if "error" in r:
        return f"| {r.get('path', '?')} | {r.get('atoms_target', '?')} | failed: {r['error']} |||||||"
    u = r["us_per_atom"]
    return (f"| {r['path']} | {r['atoms']:,} | {u['neighbors']:.1f} | {u['convert']:.2f} | {u['network']:.1f} | "
            f"{u['result']:.2f} | **{u['wall']:.1f}** | {u['cpu']:.1f} | {r['peak_rss_above_idle_mb']:.0f} / "
            f"{r['peak_rss_above_ready_mb']:.0f} / {r.get('peak_rss_above_sample_mb', float('nan')):.0f} "
            f"({r.get('sample_mb', float('nan')):.0f}) | "
            f"{r['first_call_s']:.1f} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e3, 1e4, 1e5, 1e6], help="target atom counts")
    ap.add_argument("--checkpoint", default="checkpoints/sio2.pt", help="model to time, or 'random' (wider, random weights)")
    ap.add_argument("--threads", default="auto", help="torch threads / neighbour workers (default: this process's cores)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    ap.add_argument("--repeats", type=int, default=2, help="timed calls per size after the warm-up call")
    ap.add_argument("--reference-max", type=float, default=1e5, help="largest size run on the (slow) reference path")
    ap.add_argument("--paths", nargs="+", default=["reference", "fast"], choices=["reference", "fast", "fast-eager"])
    ap.add_argument("--erhard-points", nargs="*", type=int, default=[32, 64], help="P of the per-atom baseline")
    ap.add_argument("--erhard-centres", type=int, default=2000, help="atoms labelled by the per-atom baseline")
    ap.add_argument("--write", action="store_true", help=f"replace the '{SECTION}' section of benchmarks/RESULTS.md")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        kind = args.worker[0]
        if kind == "classify":
            res = worker_classify(float(args.worker[1]), args.worker[2], args.threads, args.device, args.repeats,
                                  args.checkpoint)
        else:
            res = worker_erhard(args.erhard_points, args.erhard_centres, args.threads, args.device, args.checkpoint)
        print(json.dumps(res))
        return 0

    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = []
    for size in args.sizes:
        for path in args.paths:
            if path == "reference" and size > args.reference_max:
                continue
            print(f"... {path} {size:.0e} atoms", file=sys.stderr, flush=True)
            r = run_worker(["classify", repr(size), path], args, timeout=3600)
            r.setdefault("path", path)
            r["atoms_target"] = size
            rows.append(r)
            print(fmt_row(r), file=sys.stderr, flush=True)
    erhard = None
    if args.erhard_points:
        print("... Erhard-style baseline", file=sys.stderr, flush=True)
        erhard = run_worker(["erhard"], args, timeout=3600)
    load_after = os.getloadavg()

    lines = [SECTION, ""]
    cmd = "python benchmarks/inference_speed.py " + " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
    lines += [f"Command: `{cmd.strip()}`  ", f"Run: {started}, {os.cpu_count()} CPUs, "
              f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f} (shared machine: other agents' "
              "MD runs compete for the cores, so wall times are upper bounds; CPU time is total over threads).", ""]
    lines += ["| path | atoms | neighbours µs/atom | convert | network | result | **total wall µs/atom** | CPU µs/atom "
              "| peak RSS above idle / ready / ready + sample (sample) (MB) | first call (s) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [fmt_row(r) for r in rows]
    ok = [r for r in rows if "error" not in r]
    fast = {r["atoms_target"]: r for r in ok if r["path"] == "fast"}
    ref = {r["atoms_target"]: r for r in ok if r["path"] == "reference"}
    common = sorted(set(fast) & set(ref))
    if common:
        lines += ["", "Fast vs reference (same run): " + ", ".join(
            f"{s:.0e} atoms: network {ref[s]['us_per_atom']['network'] / fast[s]['us_per_atom']['network']:.1f}x, "
            f"whole call {ref[s]['us_per_atom']['wall'] / fast[s]['us_per_atom']['wall']:.1f}x" for s in common)]
    if len(fast) >= 2:
        big = [s for s in fast if s >= 1e4]
        if big:
            vals = [fast[s]["us_per_atom"]["wall"] for s in big]
            lines += [f"Fast path flatness over {min(big):.0e}–{max(big):.0e} atoms: max/min wall µs/atom = "
                      f"{max(vals) / min(vals):.2f}"]
    if erhard and "erhard" in erhard:
        ref_fast = fast.get(1e5) or (fast[max(fast)] if fast else None)
        lines += ["", f"Erhard-style per-atom baseline ({erhard['centres']} atoms of a 10^4-atom sample, same widths, "
                  "one P-point environment per labelled atom):", "",
                  "| P | environments µs/atom | network µs/atom | total µs/atom | fast path speed-up |", "|---|---|---|---|---|"]
        for p, v in erhard["erhard"].items():
            ratio = v["total"] / ref_fast["us_per_atom"]["wall"] if ref_fast else float("nan")
            lines.append(f"| {p} | {v['environments']:.0f} | {v['network']:.0f} | {v['total']:.0f} | {ratio:.0f}x |")
        if ref_fast:
            lines.append(f"\n(speed-up = baseline total / fast-path whole-call wall time at {ref_fast['atoms']:,} atoms)")
    elif erhard:
        lines += ["", f"Erhard baseline failed: {erhard.get('error')}"]
    lines += ["", NOTES]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_section(ROOT / "benchmarks" / "RESULTS.md", text)
    return 0


def write_section(path: Path, text: str) -> None:
    """Replace this benchmark's section of RESULTS.md, keeping other benchmarks' sections."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    start = old.find(SECTION)
    if start < 0:
        new = old.rstrip() + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(SECTION))
        new = old[:start] + text + (old[end + 1 :] if end >= 0 else "")
    path.write_text(new)


if __name__ == "__main__":
    sys.exit(main())
