"""What the label memory buys where users look: accuracy by place, frame by frame against averaged over frames.

Each held-out run of a training config (the test seed: runs no model saw) is labelled frame after frame with a
:class:`~lammps_phase.inference.memory.LabelMemory` of each weight given (1 = no memory), and the labels are scored
against that frame's truth with the report's own place tables (:class:`~lammps_phase.training.places.PlaceTally`).
The memory is reset at the start of every run; the first frame of a run has nothing to remember, so it scores the
same for every weight. Frames are ``snapshot_every_ps`` apart (0.5 ps in the shipped configs): in a run labelling
every 100 steps of 1 fs the same weight averages over a shorter time.

    python benchmarks/label_memory.py inputs/train_sio2.toml --workdir cache/sio2_surfaces \\
        --checkpoint checkpoints/sio2.pt --weight 1 --weight 0.5 --variant interface --variant sphere

With ``--md PS`` each selected run instead continues from its last frame for PS ps of NVT molecular dynamics at that
frame's temperature, in the run's potential, labelled every ``--every-ps`` (0.1 ps: every 100 steps of 1 fs), as a
labeler inside LAMMPS would. The truth is the last frame's: fair where atoms keep their phase over the continuation
(crystal | glass at 300 K, a crystal next to a void). A crystal | melt run was made with its melt held hot by a
thermostat of its own; its continuation holds the atoms labelled melt at the block's melt temperature and the rest at
the crystal's (``t_start``), as the run did (by label, not by the side an atom started on, which the run file does
not keep). At ≈ 3000 K that boundary moves within a picosecond, so atoms near it can change phase while the truth
stays the start's: there the figures understate what the labels get right.

Needs the config's cached runs in ``<workdir>/runs`` (``lammps-phase-train CONFIG --stage heating``). Labels carry the
checkpoint's calibrated threshold, as the report's do.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lammps_phase.data.md_session import LammpsSession  # noqa: E402
from lammps_phase.inference.classify import Classifier  # noqa: E402
from lammps_phase.inference.memory import LabelMemory  # noqa: E402
from lammps_phase.training.config import load_config, potential_of  # noqa: E402
from lammps_phase.training.places import PlaceTally  # noqa: E402
from lammps_phase.training.runs import decode_run_id, iter_snapshots, run_reference_cell  # noqa: E402

#: the places printed (when a run of that kind was scored)
PLACES = ("bulk", "slab, depth 0-2 Å", "slab, depth 2-4 Å", "cluster, depth 0-2 Å", "cluster, depth 2-4 Å",
          "void, depth 0-2 Å", "void, depth 2-4 Å", "void, depth 4-6 Å", "void, depth 6-10 Å", "strained",
          "interface, atoms ≤ 3 Å from it", "interface, atoms > 3 Å from it")


def stored_frames(cfg, work: Path, variants, potential):
    """(spec, run_id, frames) per held-out run: frames as iter_snapshots yields them, in order."""
    run, frames = None, []
    for frame in iter_snapshots(cfg, work, "test"):
        spec = cfg.phases[decode_run_id(frame[-1])[1]]
        if (variants and spec.variant not in variants) or (potential and potential_of(cfg, spec) != potential):
            continue
        if frame[-1] != (run[1] if run else None):
            if run:
                yield (*run, frames)
            run, frames = (spec, frame[-1]), []
        frames.append(frame)
    if run:
        yield (*run, frames)


def continued_frames(cfg, spec, last, md_ps: float, every_ps: float, scratch: Path):
    """Frames of NVT MD from a run's last frame at its temperature, every ``every_ps``; each carries that frame's
    labels (the truth of the frame it started from)."""
    pos, cell, origin, species, labels, temp, pres, run_id = last
    start = SimpleNamespace(cell=cell, positions=pos - origin, symbols=list(species), name=spec.name)
    with LammpsSession(start, potential_of(cfg, spec), scratch / "continue.log") as session:
        session.start_md(temp, seed=5)
        damp = 100 * session.timestep_ps
        if spec.variant == "interface" and spec.partner == "melt":  # two thermostats, as the run had
            session.group("hot", labels == cfg.classes.index(spec.partner))
            session.commands(["group cold subtract all hot",
                              f"fix md_hot hot nvt temp {spec.temperature} {spec.temperature} {damp}",
                              f"fix md_cold cold nvt temp {spec.t_start} {spec.t_start} {damp}"])
        else:
            session.command(f"fix md all nvt temp {temp} {temp} {damp}")
        every = max(1, round(every_ps / session.timestep_ps))
        for _ in range(max(1, round(md_ps / every_ps))):
            session.command(f"run {every}")
            x, _ = session.positions()
            now_cell, now_origin = session.box()
            yield x, now_cell, now_origin, species, labels, temp, pres, run_id


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--workdir", required=True, help="where the config's runs are cached (<workdir>/runs)")
    ap.add_argument("--checkpoint", default="checkpoints/sio2.pt")
    ap.add_argument("--weight", type=float, action="append", help="memory weight(s) w; 1 = no memory (repeatable)")
    ap.add_argument("--variant", action="append", help="only runs of these variants (bulk, slab, sphere, interface, "
                                                       "strained; repeatable); default: all")
    ap.add_argument("--potential", help="only runs in this potential")
    ap.add_argument("--md", type=float, metavar="PS", help="continue each run by PS ps of MD and label that instead")
    ap.add_argument("--every-ps", type=float, default=0.1, help="with --md: ps between labellings (default 0.1)")
    args = ap.parse_args(argv)
    weights = args.weight or [1.0, 0.5]
    cfg = load_config(args.config)
    work = Path(args.workdir)
    clf = Classifier.load(args.checkpoint)
    tallies = {w: PlaceTally(cfg.classes) for w in weights}
    frames = 0
    scratch = Path(tempfile.mkdtemp(prefix="label_memory_"))
    for spec, run_id, stored in stored_frames(cfg, work, args.variant, args.potential):
        labelled = continued_frames(cfg, spec, stored[-1], args.md, args.every_ps, scratch) if args.md else stored
        memories = {w: LabelMemory.empty(len(stored[0][0]), len(cfg.classes), w) for w in weights}  # per run
        reference = run_reference_cell(cfg, work, run_id) if spec.variant == "strained" else None
        for pos, cell, origin, species, labels, temp, pres, _ in labelled:
            for w in weights:
                res = clf.classify(pos, cell, species, origin=origin, memory=memories[w])
                tallies[w].add(spec, np.asarray(pos), cell, origin, labels, res.labels, temp, pres, reference)
            frames += 1
    if not frames:
        raise SystemExit("no held-out frames matched: check --variant / --potential and the workdir")
    tables = {w: t.by_place() for w, t in tallies.items()}
    how = f"frames {args.every_ps:g} ps apart continuing" if args.md else "frames of"
    print(f"{args.checkpoint} on {frames} {how} held-out runs of {args.config} (threshold {clf.threshold:.3f})")
    print("| place | " + " | ".join(f"w = {w:g}" for w in weights) + " |")
    print("|---|" + "---:|" * len(weights))
    names = [p for p in PLACES if any(p in t for t in tables.values())]
    names += [p for p in tables[weights[0]] if p.startswith("interface ≤ 3 Å,") and p not in names]
    for place in names:
        print(f"| {place} | " + " | ".join(f"{tables[w].get(place, float('nan')):.3f}" for w in weights) + " |")


if __name__ == "__main__":
    main()
