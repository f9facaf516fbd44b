"""What the label memory buys where users look: accuracy by place, frame by frame against averaged over frames.

Each held-out run of a training config (the test seed: runs no model saw) is labelled frame after frame with a
:class:`~lammps_phase.inference.memory.LabelMemory` of each weight given (1 = no memory), and the labels are scored
against that frame's truth with the report's own place tables (:class:`~lammps_phase.training.places.PlaceTally`).
The memory is reset at the start of every run; the first frame of a run has nothing to remember, so it scores the
same for every weight. Frames are ``snapshot_every_ps`` apart (0.5 ps in the shipped configs): in a run labelling
every 100 steps of 1 fs the same weight averages over a shorter time.

    python benchmarks/label_memory.py inputs/train_sio2.toml --workdir cache/sio2_dense_seed1 \\
        --checkpoint checkpoints/sio2.pt --weight 1 --weight 0.5 --variant interface --variant sphere

Needs the config's cached runs in ``<workdir>/runs`` (``lammps-phase-train CONFIG --stage heating``). Labels carry the
checkpoint's calibrated threshold, as the report's do.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lammps_phase.inference.classify import Classifier  # noqa: E402
from lammps_phase.inference.memory import LabelMemory  # noqa: E402
from lammps_phase.training.config import load_config, potential_of  # noqa: E402
from lammps_phase.training.places import PlaceTally  # noqa: E402
from lammps_phase.training.runs import decode_run_id, iter_snapshots, run_reference_cell  # noqa: E402

#: the places printed (when a run of that kind was scored)
PLACES = ("bulk", "slab, depth 0-2 Å", "slab, depth 2-4 Å", "cluster, depth 0-2 Å", "cluster, depth 2-4 Å",
          "void, depth 0-2 Å", "void, depth 2-4 Å", "void, depth 4-6 Å", "void, depth 6-10 Å", "strained",
          "interface, atoms ≤ 3 Å from it", "interface, atoms > 3 Å from it")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--workdir", required=True, help="where the config's runs are cached (<workdir>/runs)")
    ap.add_argument("--checkpoint", default="checkpoints/sio2.pt")
    ap.add_argument("--weight", type=float, action="append", help="memory weight(s) w; 1 = no memory (repeatable)")
    ap.add_argument("--variant", action="append", help="only runs of these variants (bulk, slab, sphere, interface, "
                                                       "strained; repeatable); default: all")
    ap.add_argument("--potential", help="only runs in this potential")
    args = ap.parse_args(argv)
    weights = args.weight or [1.0, 0.5]
    cfg = load_config(args.config)
    work = Path(args.workdir)
    clf = Classifier.load(args.checkpoint)
    tallies = {w: PlaceTally(cfg.classes) for w in weights}
    memories: dict[float, LabelMemory] = {}
    current, frames = None, 0
    for pos, cell, origin, species, labels, temp, pres, run_id in iter_snapshots(cfg, work, "test"):
        spec = cfg.phases[decode_run_id(run_id)[1]]
        if (args.variant and spec.variant not in args.variant) or \
                (args.potential and potential_of(cfg, spec) != args.potential):
            continue
        if run_id != current:  # a new run: nothing remembered
            current = run_id
            memories = {w: LabelMemory.empty(len(pos), len(cfg.classes), w) for w in weights}
        reference = run_reference_cell(cfg, work, run_id) if spec.variant == "strained" else None
        for w in weights:
            res = clf.classify(pos, cell, species, origin=origin, memory=memories[w])
            tallies[w].add(spec, pos, cell, origin, labels, res.labels, temp, pres, reference)
        frames += 1
    if not frames:
        raise SystemExit("no held-out frames matched: check --variant / --potential and the workdir")
    tables = {w: t.by_place() for w, t in tallies.items()}
    print(f"{args.checkpoint} on {frames} held-out frames of {args.config} (threshold {clf.threshold:.3f})")
    print("| place | " + " | ".join(f"w = {w:g}" for w in weights) + " |")
    print("|---|" + "---:|" * len(weights))
    names = [p for p in PLACES if any(p in t for t in tables.values())]
    names += [p for p in tables[weights[0]] if p.startswith("interface ≤ 3 Å,") and p not in names]
    for place in names:
        print(f"| {place} | " + " | ".join(f"{tables[w].get(place, float('nan')):.3f}" for w in weights) + " |")


if __name__ == "__main__":
    main()
