"""Weak scaling of in-situ labels: the same number of atoms per rank on 1, 2, 4, 8 ranks, gather and local mode.

Each rank owns one α-quartz block (``--atoms-per-rank``, the block nearest a cube): the deck reads one block,
``replicate``s it over the processor grid and fixes ``processors`` to that grid, so every subdomain is the
block. BKS (bks_dsf) at 300 K NVT as in benchmarks/insitu_overhead.py, whose deck and runner this reuses;
``LAMMPS_PHASE_COMPILE=0`` (eager kernels: no compile time inside the runs). Per size and rank count three
runs: MD only; gather; local (on the pair style's own ghost atoms; a fourth, MD only with a wider comm cutoff,
only where local mode would need one). From the labeler's own statistics (``PhaseLabeler.stats``, exact): atoms
owned and labelled per rank and the bytes each rank moved per labelling (local mode: the halo's features). From
LAMMPS' loop times (noisy on a shared, oversubscribed machine): the cost of MD and labels.

An in-process timing (one thread, the largest block as one periodic rank) measures the per-atom cost of the
pieces the 10⁸-atom model needs: the whole-sample call (gather path) and the owned atoms' rows + network
(local path), eager and compiled fused kernels.

    . .venv/bin/activate
    python benchmarks/scaling.py --json scaling.json              # 18 000 and 4 500 atoms/rank, 1 2 4 8 ranks
    python benchmarks/scaling.py --quick --json /tmp/quick.json   # 4 500 atoms/rank, 1 2 4 ranks, 60 steps

Prints markdown tables; docs/scaling.md explains them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from insitu_overhead import PAIR_GHOSTS, TYPE_MAP, deck as overhead_deck, loop_time  # noqa: E402

from lammps_phase.data import potentials, structures  # noqa: E402
from lammps_phase.errors import LammpsPhaseError  # noqa: E402
from lammps_phase.inference import formats  # noqa: E402
from lammps_phase.inference.classify import Classifier  # noqa: E402
from lammps_phase.insitu.local_mode import local_ghost_cutoff, owned_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("md", "md_cutoff", "gather", "local")


# ---------------------------------------------------------------------------------------------- geometry


def block(atoms_per_rank: int) -> structures.Crystal:
    """The orthogonal α-quartz supercell nearest a cube with atoms_per_rank ± 3 % atoms (± 10 % if none)."""
    crystal = structures.build("alpha_quartz")
    base = structures.supercell(crystal, 0.1)
    lengths, per_cell = np.diag(base.cell), len(base.symbols)
    best = None
    for n in np.ndindex(40, 40, 40):
        reps = np.array(n) + 1
        atoms = per_cell * int(reps.prod())
        if abs(atoms - atoms_per_rank) > 0.1 * atoms_per_rank:
            continue
        edges = reps * lengths
        key = (abs(atoms - atoms_per_rank) > 0.03 * atoms_per_rank, round(edges.max() / edges.min(), 1),
               abs(atoms - atoms_per_rank))
        if best is None or key < best[0]:
            best = (key, reps)
    if best is None:
        raise LammpsPhaseError(f"no α-quartz block of {atoms_per_rank} ± 10 % atoms")
    return structures.supercell(crystal, tuple(best[1] * lengths * (1 - 1e-6)))


def grid(ranks: int) -> tuple[int, int, int]:
    """Processor grid: prime factors, largest first, each onto the smallest dimension (8 → 2 2 2)."""
    factors, n, p = [], ranks, 2
    while n > 1:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    g = [1, 1, 1]
    for f in sorted(factors, reverse=True):
        g[g.index(min(g))] *= f
    return tuple(g)


def periodic_halo(positions: np.ndarray, cell: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions followed by the periodic images within ``width`` Å of the orthogonal box (one rank's ghosts),
    and the atom each row is an image of."""
    lengths = np.diag(cell)
    layers = int(np.ceil(width / lengths.min()))
    steps = range(-layers, layers + 1)
    shifts = np.array([(a, b, c) for a in steps for b in steps for c in steps if (a, b, c) != (0, 0, 0)])
    images = (positions[None] + (shifts * lengths)[:, None]).reshape(-1, 3)
    near = np.all((images > -width) & (images < lengths + width), axis=1)
    source = np.tile(np.arange(len(positions)), len(shifts))[near]
    return np.concatenate([positions, images[near]]), np.concatenate([np.arange(len(positions)), source])


def halo_ratio(lengths: np.ndarray, r: float) -> float:
    """Geometric labelled/owned: volume of the subdomain grown by r on every face over its own volume."""
    return float(np.prod(lengths + 2 * r) / np.prod(lengths))


# ---------------------------------------------------------------------------------------------- LAMMPS runs


def scaling_deck(data: Path, checkpoint: Path, steps: int, every: int, mode: str | None, cutoff: float | None,
                 g: tuple[int, int, int], name: str) -> str:
    """benchmarks/insitu_overhead.py's deck on a replicated block, one block per rank; the labeler's per-call
    statistics are written to stats.<name>.<rank>.json after the run."""
    text = overhead_deck(data, checkpoint, steps, every, mode, cutoff, stats_json=f"stats.{name}.{{rank}}.json")
    gx, gy, gz = g
    return text.replace(f"read_data {data}", f"processors {gx} {gy} {gz}\nread_data {data}\nreplicate {gx} {gy} {gz}")


def per_rank(calls: list[dict], mode: str) -> dict:
    """One rank's figures over the in-loop labellings of ``mode`` (the initial, pre-run call is always gathered)."""
    mine = [c for c in calls if c["mode"] == mode and c["step"] > 0]
    if not mine:
        raise LammpsPhaseError(f"no {mode} labelling in the run")
    last = mine[-1]
    return {"owned": last["owned"], "labelled": last["labelled"],
            "labelled_per_owned": last["labelled"] / last["owned"] if last["owned"] else None,
            "sent_B": last["sent"], "received_B": last["received"], "atom_sent_B": last["atom_sent"],
            "atom_received_B": last["atom_received"],
            "seconds_per_labelling": float(np.mean([c["seconds"] for c in mine])), "labellings": len(mine)}


def run_case(args, workdir: Path, data: Path, natoms_block: int, ranks: int, cutoff: float | None) -> dict:
    """``cutoff``: the comm cutoff local mode needs, None when the pair style's ghosts suffice."""
    g = grid(ranks)
    natoms = natoms_block * ranks
    case = {"ranks": ranks, "grid": g, "atoms": natoms, "atoms_per_rank": natoms_block, "runs": {}}
    plan = {"md": (None, None), "md_cutoff": (None, cutoff), "gather": ("gather", None), "local": ("local", cutoff)}
    for run in args.runs:
        if run == "md_cutoff" and cutoff is None:
            continue
        mode, comm = plan[run]
        name = f"a{natoms_block}_r{ranks}_{run}"
        start = time.perf_counter()
        loop = loop_time(scaling_deck(data, args.checkpoint, args.steps, args.every, mode, comm, g, name), ranks,
                         workdir, name)
        entry = {"loop_s": loop, "wall_s": time.perf_counter() - start}
        if mode is not None:
            entry["per_rank"] = [per_rank(json.loads((workdir / f"stats.{name}.{r}.json").read_text()), mode)
                                 for r in range(ranks)]
            log = (workdir / f"log.{name}").read_text()
            entry["report"] = [line for line in log.splitlines() if line.startswith("lammps-phase: stats rank")]
        case["runs"][run] = entry
        print(f"  {name}: loop {loop:.2f} s, wall {entry['wall_s']:.1f} s", file=sys.stderr, flush=True)
    return case


# ---------------------------------------------------------------------------------------------- in-process timing


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def time_paths(checkpoint: Path, crystal, ghost_width: float, kernels: list[str], repeats: int) -> dict:
    """µs per atom, one thread: whole-sample classify (gather path), and the owned atoms' k-NN rows + network
    (local path) of one periodic block treated as one rank's subdomain with its ghost images (one rank: the
    halo is empty, every ghost is an image of an owned atom, so the network part is the gather path's)."""
    positions, cell = crystal.positions, crystal.cell
    n = len(positions)
    types = np.array([TYPE_MAP.index(s) + 1 for s in crystal.symbols], dtype=np.int32)
    x, source = periodic_halo(positions, cell, ghost_width)
    ids = source.astype(np.int64) + 1
    all_types = types[source]
    out: dict = {"atoms": n, "ghost_atoms": len(x) - n}
    for kernel in kernels:
        clf = Classifier.load(checkpoint, device="cpu", type_map=TYPE_MAP, threads=1, fast=kernel,
                              compile_after_atoms=0)
        clf.classify(positions, cell, types, type_map=TYPE_MAP)  # warm-up (compiles where asked)
        whole = best_of(lambda: clf.classify(positions, cell, types, type_map=TYPE_MAP), repeats)
        rows_s = best_of(lambda: owned_rows(x, ids, all_types, n, clf.k), repeats)
        rows = owned_rows(x, ids, all_types, n, clf.k)
        species = clf.species_indices(all_types[:n], TYPE_MAP)
        net_s = best_of(lambda: clf.classify_neighbors(species, rows.neighbors, labelled=n), repeats)
        out[kernel] = {"whole_sample_us_per_atom": 1e6 * whole / n, "rows_us_per_owned": 1e6 * rows_s / n,
                       "network_us_per_owned": 1e6 * net_s / n, "kernels": clf.kernels}
        out["hop_neighbors"], out["k"] = clf.hop_neighbors, clf.k
        out["kth_max"], out["kth_mean"] = float(rows.kth.max()), float(rows.kth.mean())
        out["receptive_radius"] = clf.checkpoint.config.receptive_radius(rows.neighbors.distances)
        print(f"  timing {kernel}: {out[kernel]}", file=sys.stderr, flush=True)
    return out


# ---------------------------------------------------------------------------------------------- model


def model_1e8(result: dict, atoms_total: float = 1e8, ranks: int = 1000, every: int = 100,
              gpu_network_us: float = 0.05, bandwidth_GBs: float = 10.0, exchange_latency_us: float = 100.0) -> dict:
    """10⁸ atoms on 1000 ranks from the measured per-atom costs; every modelled input is named.

    Local mode: each rank labels its own atoms (labelled/owned measured), its rows from its ghosts, and exchanges
    each layer's halo features; the halo per Å² of subdomain face is measured on the largest grid of the largest
    block (every face there borders another rank), and scaled to the 10⁵-atom subdomain's faces."""
    size = max(c["atoms_per_rank"] for c in result["cases"])
    cases = [c for c in result["cases"] if c["atoms_per_rank"] == size and "local" in c["runs"]]
    full = max(cases, key=lambda c: c["ranks"])
    timing = result["timing"]
    kernel = "compile" if "compile" in timing else "eager"
    t = timing[kernel]
    per_rank_atoms = atoms_total / ranks
    lengths = np.diag(np.asarray(result["blocks"][str(size)]["cell"]))
    pr = full["runs"]["local"]["per_rank"]
    measured_ratio = float(np.mean([r["labelled_per_owned"] for r in pr]))
    per_halo_atom_B = result["halo_bytes_per_atom"]
    halo_atoms = float(np.mean([r["atom_received_B"] for r in pr])) / per_halo_atom_B
    # faces that border another rank on this grid: along a dimension with g > 1 ranks both faces do
    g = np.array(full["grid"])
    face_area = sum(2 * np.prod(np.delete(lengths, d)) for d in range(3) if g[d] > 1)
    halo_per_area = halo_atoms / face_area
    density = size / float(np.prod(lengths))
    edge = (per_rank_atoms / density) ** (1 / 3)
    halo = halo_per_area * 6 * edge**2
    exchange_bytes = halo * per_halo_atom_B  # received (and as much sent) per labelling
    exchange_s = exchange_bytes / (bandwidth_GBs * 1e9) + len(result["halo_widths"]) * exchange_latency_us * 1e-6
    md = result["md_core_us_per_atom_step"]
    md_interval = per_rank_atoms * md * 1e-6 * every  # one core per rank
    labelled = per_rank_atoms * measured_ratio
    local_cpu = labelled * (t["rows_us_per_owned"] + t["network_us_per_owned"]) * 1e-6 + exchange_s
    local_gpu = labelled * (t["rows_us_per_owned"] + gpu_network_us) * 1e-6 + exchange_s
    gather_bytes_in = 36 * atoms_total
    gather_bytes_out = 12 * atoms_total
    gather_label = atoms_total * t["whole_sample_us_per_atom"] * 1e-6  # one core of rank 0
    gather_transfer = (gather_bytes_in + gather_bytes_out) / (bandwidth_GBs * 1e9)
    return {
        "inputs": {"atoms": atoms_total, "ranks": ranks, "every": every, "kernels": kernel,
                   "measured_at": {"atoms_per_rank": size, "ranks": full["ranks"], "grid": full["grid"]},
                   "measured_labelled_per_owned": measured_ratio, "measured_halo_atoms": halo_atoms,
                   "halo_atoms_per_A2_face": halo_per_area, "halo_bytes_per_atom": per_halo_atom_B,
                   "edge_A": edge, "md_core_us_per_atom_step": md,
                   "cpu_rows_us": t["rows_us_per_owned"], "cpu_network_us": t["network_us_per_owned"],
                   "cpu_whole_sample_us": t["whole_sample_us_per_atom"],
                   "assumed_gpu_network_us": gpu_network_us, "assumed_bandwidth_GBs": bandwidth_GBs,
                   "assumed_exchange_latency_us": exchange_latency_us},
        "labelled_per_owned": measured_ratio, "labelled_per_rank": labelled, "halo_atoms_per_rank": halo,
        "exchange_bytes_per_rank": exchange_bytes, "exchange_s": exchange_s,
        "md_s_per_interval": md_interval,
        "local_cpu_s": local_cpu, "local_cpu_overhead": local_cpu / md_interval,
        "local_gpu_s": local_gpu, "local_gpu_overhead": local_gpu / md_interval,
        "gather_bytes_to_rank0": gather_bytes_in, "gather_bytes_from_rank0": gather_bytes_out,
        "gather_transfer_s": gather_transfer, "gather_label_one_core_s": gather_label,
        "gather_overhead_one_core": (gather_label + gather_transfer) / md_interval,
    }


# ---------------------------------------------------------------------------------------------- output


def tables(result: dict) -> str:
    out = [f"{result['machine']}; {result['date']}; commit {result['commit']}; {result['steps']} steps, labels every "
           f"{result['every']}; LAMMPS_PHASE_COMPILE=0; local mode "
           f"{'on the pair style ghosts' if result['cutoff'] is None else 'comm cutoff %g Å' % result['cutoff']}\n",
           "| atoms/rank | ranks | grid | mode | owned (min–max) | labelled (min–max) | labelled/owned | "
           "bytes sent / received per labelling (rank 0; other ranks max) | s per labelling (mean over ranks) |",
           "|---:|---:|---|---|---|---|---:|---|---:|"]
    for c in result["cases"]:
        for mode in ("gather", "local"):
            if mode not in c["runs"]:
                continue
            pr = c["runs"][mode]["per_rank"]
            owned = [r["owned"] for r in pr]
            lab = [r["labelled"] for r in pr]
            ratio = sum(lab) / sum(owned)
            others = pr[1:]
            other = (f"; {max(r['sent_B'] for r in others)} / {max(r['received_B'] for r in others)}" if others else "")
            out.append(f"| {c['atoms_per_rank']} | {c['ranks']} | {'×'.join(map(str, c['grid']))} | {mode} | "
                       f"{min(owned)}–{max(owned)} | {min(lab)}–{max(lab)} | {ratio:.2f} | "
                       f"{pr[0]['sent_B']} / {pr[0]['received_B']}{other} | "
                       f"{np.mean([r['seconds_per_labelling'] for r in pr]):.3f} |")
    out += ["", "| atoms/rank | ranks | MD loop (s) | MD, wide cutoff | gather | local | gather overhead | local overhead "
            "(vs MD with local mode's ghosts) | MD core-µs/atom-step |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in result["cases"]:
        r = c["runs"]
        get = lambda k: r[k]["loop_s"] if k in r else float("nan")  # noqa: E731
        md = get("md")
        md_local = get("md_cutoff") if "md_cutoff" in r else md
        cores = min(c["ranks"], os.cpu_count() or 1)
        out.append(f"| {c['atoms_per_rank']} | {c['ranks']} | {md:.2f} | {get('md_cutoff'):.2f} | {get('gather'):.2f} | "
                   f"{get('local'):.2f} | {100 * (get('gather') / md - 1):+.1f} % | "
                   f"{100 * (get('local') / md_local - 1):+.1f} % | "
                   f"{1e6 * md * cores / (result['steps'] * c['atoms']):.2f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=ROOT / "checkpoints/sio2.pt", type=Path)
    parser.add_argument("--atoms-per-rank", type=int, nargs="+", default=[18000, 4500])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument("--kernels", nargs="*", default=["eager", "compile"], choices=["eager", "compile"],
                        help="fused kernels timed in-process (compile: a one-off 5-60 s)")
    parser.add_argument("--repeats", type=int, default=3, help="in-process timing: best of")
    parser.add_argument("--quick", action="store_true", help="4500 atoms/rank, 1 2 4 ranks, 60 steps, eager only")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    if args.quick:
        args.atoms_per_rank, args.ranks, args.steps, args.every, args.kernels = [4500], [1, 2, 4], 60, 30, ["eager"]
    if not args.checkpoint.is_file():
        raise LammpsPhaseError(f"checkpoint {args.checkpoint} does not exist: pass --checkpoint PATH")
    args.checkpoint = args.checkpoint.resolve()
    os.environ["LAMMPS_PHASE_COMPILE"] = "0"
    started = time.perf_counter()

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    result: dict = {
        "machine": f"{platform.node()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
        "checkpoint": str(args.checkpoint), "steps": args.steps, "every": args.every, "blocks": {}, "cases": []}
    clf = Classifier.load(args.checkpoint, device="cpu", type_map=TYPE_MAP, threads=1)
    crystals = {a: block(a) for a in args.atoms_per_rank}
    # local mode's ghosts: the pair style's own where they hold every owned atom's k-NN row, else one comm cutoff
    needed = max(local_ghost_cutoff(clf, c.positions, c.cell) for c in crystals.values())
    cutoff = None if needed <= PAIR_GHOSTS else needed
    result["cutoff"] = cutoff
    result["halo_widths"] = clf.fast.layer_input_widths
    result["halo_bytes_per_atom"] = 4 * sum(clf.fast.layer_input_widths)
    with tempfile.TemporaryDirectory(prefix="scaling_") as tmp:
        workdir = Path(tmp)
        for a, crystal in crystals.items():
            n = len(crystal.symbols)
            result["blocks"][str(n)] = {"requested": a, "atoms": n, "cell": np.asarray(crystal.cell).tolist()}
            data = workdir / f"block{a}.data"
            formats.write_lammps_data(data, crystal.positions, crystal.cell, crystal.symbols, TYPE_MAP,
                                      charges=potentials.BKS_CHARGES, atom_style="charge")
            print(f"block {a}: {n} atoms, edges {np.round(np.diag(crystal.cell), 1).tolist()} Å", file=sys.stderr)
            for ranks in args.ranks:
                result["cases"].append(run_case(args, workdir, data, n, ranks, cutoff))
    md = [1e6 * c["runs"]["md"]["loop_s"] * min(c["ranks"], os.cpu_count() or 1) / (args.steps * c["atoms"])
          for c in result["cases"] if "md" in c["runs"]]
    result["md_core_us_per_atom_step"] = float(min(md)) if md else float("nan")
    if args.kernels:
        big = crystals[max(crystals)]
        result["timing"] = time_paths(args.checkpoint, big, cutoff or PAIR_GHOSTS, args.kernels, args.repeats)
        # what the previous local mode (every atom within the receptive field through the network) would label
        result["timing"]["receptive_field_ratio"] = halo_ratio(np.diag(big.cell), result["timing"]["receptive_radius"])
        if any("local" in c["runs"] for c in result["cases"]):
            result["model_1e8"] = model_1e8(result)
    result["total_wall_s"] = time.perf_counter() - started
    print(tables(result))
    print(json.dumps({k: result[k] for k in ("md_core_us_per_atom_step", "timing", "model_1e8") if k in result}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
