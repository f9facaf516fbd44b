"""What in-situ labelling costs an MD run: LAMMPS loop time with and without PhaseLabeler.

α-quartz (≥ 5k atoms, BKS from lammps_phase.data.potentials), 300 K NVT, the same run four times on the same
ranks: no labels; labels every N steps in gather mode; in local mode (with the pair style's own ghost atoms
when they hold every owned atom's k nearest neighbours, as for the shipped model; else with the comm cutoff
local mode asks for, and once more without labels at that cutoff, what the wider ghost shell alone costs). The model
is loaded and the initial configuration labelled by ``python … invoke`` before the run, so the loop
times hold MD + labelling only. Overhead = loop time / loop time without labels − 1, and, immune to the
run-to-run noise of a shared machine, the labeller's own seconds (``labeler.stats``) over the rest of the
same run.

    . .venv/bin/activate
    python benchmarks/insitu_overhead.py                       # checkpoints/sio2.pt, 2 ranks
    python benchmarks/insitu_overhead.py --checkpoint my.pt --steps 600 --every 100 --ranks 2
    python benchmarks/insitu_overhead.py --memory     # also gather and local mode with the label memory

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from lammps_phase.inference import formats
from lammps_phase.data import potentials, structures
from lammps_phase.inference.classify import Classifier
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.insitu.local_mode import local_ghost_cutoff
from lammps_phase.insitu.statistics import recording_deck_code

TYPE_MAP = ["Si", "O"]
#: ghost cutoff LAMMPS keeps for BKS anyway: pair cutoff + the default skin of metal units
PAIR_GHOSTS = potentials.BKS_CUTOFF + 2.0
STATS_JSON = "phase_stats_{rank}.json"


def deck(data: Path, checkpoint: Path, steps: int, every: int, mode: str | None, comm_cutoff: float | None,
         stats_json: str = STATS_JSON, memory_columns: int = 0) -> str:
    """An NVT run of the data file; mode None = no labelling. The labeler's per-call statistics go to ``stats_json``
    (``{rank}`` = the MPI rank) after the run. ``memory_columns`` > 0: with a label memory of that many classes."""
    memory = f" d2_phase_memory {memory_columns}" if memory_columns else ""
    keyword = ', memory="d2_phase_memory"' if memory_columns else ""
    bks = potentials.get("bks_dsf")
    lines = [*bks.init_commands(), f"read_data {data}", *bks.commands({"Si": 1, "O": 2}),
             "velocity all create 300 20240 loop geom", "fix nvt all nvt temp 300 300 0.1", "timestep 0.001"]
    if comm_cutoff is not None:
        lines.append(f"comm_modify cutoff {comm_cutoff}")
    if mode is not None:
        lines += [
            f"fix phase all property/atom i_phase d_phase_conf{memory}",
            'python phase_step input 1 SELF format p here """',
            "from lammps_phase.insitu import PhaseLabeler",
            f'labeler = PhaseLabeler("{checkpoint}", types="Si O", mode="{mode}"{keyword})',
            recording_deck_code(stats_json),
            '"""',
            "python dump_stats input 1 SELF format p exists",
            "python phase_step invoke",
            f"fix label all python/invoke {every} end_of_step phase_step",
        ]
    lines += [f"thermo {steps}", f"run {steps}"]
    if mode is not None:
        lines.append("python dump_stats invoke")
    return "\n".join(lines + [""])


def callback_seconds(workdir: Path) -> float:
    """Wall seconds the run spent in the labelling callback: per call the slowest rank (every rank waits for the
    collective call), summed over the calls inside the run (the first, ``python phase_step invoke``, is before it)."""
    ranks = [json.loads(p.read_text()) for p in sorted(workdir.glob(STATS_JSON.format(rank="*")))]
    if not ranks:
        raise LammpsPhaseError(f"no labelling statistics ({STATS_JSON}) were written in {workdir}")
    calls = min(len(r) for r in ranks)
    return float(sum(max(r[i]["seconds"] for r in ranks) for i in range(1, calls)))


def loop_time(text: str, ranks: int, workdir: Path, name: str) -> float:
    """Run the deck with mpirun; LAMMPS' own "Loop time" of the run (s)."""
    path = workdir / f"in.{name}"
    path.write_text(text)
    log = workdir / f"log.{name}"
    cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", "--allow-run-as-root", "lmp", "-in", str(path),
           "-log", str(log), "-screen", "none"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    found = re.findall(r"^Loop time of ([0-9.eE+-]+) on", log.read_text() if log.exists() else "", re.M)
    if proc.returncode != 0 or not found:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise LammpsPhaseError(f"LAMMPS run {name} failed (exit {proc.returncode}); see {log}:\n{tail}")
    return float(found[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="checkpoints/sio2.pt", type=Path)
    parser.add_argument("--min-length", type=float, default=38.0, help="supercell edge (Å); 38 → 5760 atoms")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per configuration, interleaved; the minimum counts (load from other jobs only adds)")
    parser.add_argument("--memory", action="store_true", help="also each labelling mode with the label memory")
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        raise LammpsPhaseError(f"checkpoint {args.checkpoint} does not exist: train one or pass --checkpoint PATH")
    checkpoint = args.checkpoint.resolve()

    crystal = structures.supercell(structures.build("alpha_quartz"), args.min_length)
    natoms = len(crystal.symbols)
    classifier = Classifier.load(checkpoint, device="cpu", type_map=TYPE_MAP)
    networks = getattr(classifier, "members", [classifier])  # an ensemble file: its members (gather mode only)
    cutoff = local_ghost_cutoff(networks[0], crystal.positions, crystal.cell)
    labellings = args.steps // args.every
    with tempfile.TemporaryDirectory(prefix="insitu_overhead_") as tmp:
        workdir = Path(tmp)
        data = workdir / "quartz.data"
        formats.write_lammps_data(data, crystal.positions, crystal.cell, crystal.symbols, TYPE_MAP,
                             charges=potentials.BKS_CHARGES, atom_style="charge")
        runs = [("no labels", None, None), ("gather", "gather", None)]
        if len(networks) > 1:
            pass  # an ensemble labels in gather mode only
        elif cutoff <= PAIR_GHOSTS:  # the pair style's own ghost atoms hold every owned atom's k-NN row
            runs.append(("local", "local", None))
        else:
            runs += [("local", "local", cutoff), (f"no labels, comm cutoff {cutoff:g} Å", None, cutoff)]
        if args.memory:
            runs += [(f"{name}, memory", mode, comm) for name, mode, comm in runs if mode is not None]
        columns = len(classifier.classes)
        times: dict[str, float] = {}
        in_run: dict[str, list[float]] = {}  # callback seconds / (loop time − callback seconds), same run
        for rep in range(args.repeats):
            for name, mode, comm in runs:
                text = deck(data, checkpoint, args.steps, args.every, mode, comm,
                            memory_columns=columns if name.endswith(", memory") else 0)
                t = loop_time(text, args.ranks, workdir, re.sub(r"\W+", "_", name))
                times[name] = min(t, times.get(name, float("inf")))
                extra = ""
                if mode is not None:
                    cb = callback_seconds(workdir)
                    for p in workdir.glob(STATS_JSON.format(rank="*")):
                        p.unlink()
                    in_run.setdefault(name, []).append(cb / (t - cb))
                    extra = f" (callback {cb:.2f} s: +{100 * cb / (t - cb):.1f} % in this run)"
                print(f"  [{rep + 1}/{args.repeats}] {name}: {t:.2f} s{extra}", file=sys.stderr, flush=True)

    base = times["no labels"]
    cfg = classifier.checkpoint.config
    print(f"\nminimum of {args.repeats} interleaved runs each; {natoms} atoms α-quartz, BKS (bks_dsf), {args.ranks} ranks, {args.steps} steps, labels every "
          f"{args.every} steps ({labellings} labellings); model {args.checkpoint} (k {cfg.k}, channels "
          f"{cfg.channels}, {sum(p.numel() for n in networks for p in n.model.parameters())} parameters"
          f"{f' in {len(networks)} networks' if len(networks) > 1 else ''})\n")
    print("| run | loop time (s) | overhead against the MD-only runs | overhead within the run (callback time / "
          "the rest; min – max over runs) | per labelling (s) | per atom per labelling (µs) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, mode, _ in runs:
        extra = times[name] - base
        per = extra / labellings if mode and labellings else None
        ratios = in_run.get(name)
        cells = [f"{times[name]:.2f}", f"{100 * extra / base:+.1f} %" if name != "no labels" else "—",
                 f"+{100 * min(ratios):.1f} – {100 * max(ratios):.1f} %" if ratios else "—",
                 f"{per:.3f}" if per is not None else "—", f"{1e6 * per / natoms:.1f}" if per is not None else "—"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nThe within-run figure divides the seconds spent in the labelling callback (per call, the slowest rank) by "
          "the rest of the same run's loop time: MD noise between runs does not enter it.")
    print(f"\nMD alone: {1e6 * base / (args.steps * natoms):.2f} µs per atom-step (loop time / steps / atoms).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
