"""How the shipped model does on structures made with another potential (users do not all run BKS).

Heats the polymorphs that hold in the second potential (docs/potentials.md) with checked snapshots,
plus a proven melt and a glass, and labels every kept snapshot with the checkpoint.

    python benchmarks/second_potential.py --checkpoint checkpoints/sio2.pt --potential tersoff_munetoh

Several --checkpoint options label the same runs (one MD, compared models); the table has a column per model.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from lammps_phase.data import heating, structures
from lammps_phase.inference.classify import Classifier

# (class name, structure, kind, pressure GPa, t_start, t_end) that hold in Tersoff (docs/potentials.md); a phase
# that does not hold in the potential chosen is cut by the heating checks and reported with 0 snapshots.
# α-quartz stops at 650 K, as in the training config; the heating check's tetrahedra tilt ends a run whose α- or
# β-quartz has turned into the other (quartz_order).
DEFAULT_RUNS = [
    ("alpha_quartz", "alpha_quartz", "crystal", 0.0, 300.0, 650.0),
    ("beta_quartz", "beta_quartz", "crystal", 0.0, 1200.0, 1800.0),
    ("coesite", "coesite", "crystal", 0.0, 300.0, 1500.0),
    ("alpha_cristobalite", "alpha_cristobalite", "crystal", 0.0, 300.0, 900.0),
    ("stishovite", "stishovite", "crystal", 0.0, 300.0, 1500.0),
    ("pyrite_type", "pyrite_type", "crystal", 30.0, 300.0, 1500.0),
    ("melt", "alpha_quartz", "melt", 0.0, 6500.0, 6500.0),
    ("amorphous", "alpha_quartz", "glass", 0.0, 6500.0, 300.0),
]
#: β-quartz exists only above ≈ 2500 K in Vashishta 1990 (below, a β start tilts into α at once: docs/potentials.md)
BETA_QUARTZ_RANGE = {"vashishta_1990": (2700.0, 3300.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", help="a model to score (repeat to compare); default checkpoints/sio2.pt")
    ap.add_argument("--potential", default="tersoff_munetoh")
    ap.add_argument("--ps", type=float, default=4.0)
    ap.add_argument("--min-length", type=float, default=14.0)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", default="cache/second_potential.json")
    args = ap.parse_args()
    paths = args.checkpoint or ["checkpoints/sio2.pt"]
    models = {path: Classifier.load(path, device="auto") for path in paths}
    tables = {path: {} for path in paths}
    for name, struct, kind, p, t0, t1 in DEFAULT_RUNS:
        if not any(name in clf.classes for clf in models.values()):
            continue
        crystal = structures.build(struct)
        if name == "beta_quartz":
            t0, t1 = BETA_QUARTZ_RANGE.get(args.potential, (t0, t1))
        common = dict(seed=args.seed, snapshot_every_ps=0.5, supercell_min_length=args.min_length)
        start = time.perf_counter()
        if kind == "crystal":
            run = heating.heating_run(crystal, args.potential, p, t0, t1, args.ps, **common)
        elif kind == "melt":
            run = heating.melt_run(crystal, args.potential, p, t0, args.ps, **common)
        else:
            run = heating.melt_quench(crystal, args.potential, p, t0, args.ps, 1000.0, [1500.0, t1], 2.0, **common)
        kept = run.kept
        for path, clf in models.items():
            tables[path][name] = _score(clf, name, kept, run, start)
            if tables[path][name].get("snapshots"):
                print(f"{path}: {name:20s} {len(kept):3d} snapshots  accuracy {tables[path][name]['accuracy']:.3f}  "
                      f"predicted {tables[path][name]['predicted']}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"potential": args.potential, "checkpoints": tables}, indent=1))
    for path, rows in tables.items():
        print(f"\n{path} on {args.potential}\n| class | snapshots | T (K) | accuracy | predicted as |\n|---|---|---|---|---|")
        for name, r in rows.items():
            if r.get("snapshots"):
                top = ", ".join(f"{k} {v / r['atoms']:.2f}" for k, v in sorted(r["predicted"].items(), key=lambda kv: -kv[1])[:3])
                print(f"| {name} | {r['snapshots']} | {r['T_range_K'][0]:.0f}–{r['T_range_K'][1]:.0f} | {r['accuracy']:.3f} | {top} |")
            else:
                print(f"| {name} | 0 | – | – | {r['note']} |")
        scored = [r for r in rows.values() if r.get("snapshots")]
        if scored:
            print(f"overall {sum(r['accuracy'] * r['atoms'] for r in scored) / sum(r['atoms'] for r in scored):.4f}")


def _score(clf: Classifier, name: str, kept: list, run, start: float) -> dict:
    """Accuracy and predicted classes of one model on the kept snapshots of one run."""
    if not kept:
        return {"snapshots": 0, "note": heating.heating_summary([run]).splitlines()[0]}
    if name not in clf.classes:
        return {"snapshots": 0, "note": f"{name} is not a class of this model"}
    target = clf.classes.index(name)
    hits = total = 0
    predicted: dict[str, int] = {}
    for snap in kept:
        res = clf.classify(snap.positions, snap.cell, list(snap.species), origin=snap.origin)
        hits += int((res.labels == target).sum())
        total += len(res.labels)
        for lab, cnt in zip(*np.unique(res.labels, return_counts=True)):
            key = clf.classes[lab] if lab >= 0 else "other"
            predicted[key] = predicted.get(key, 0) + int(cnt)
    return {"snapshots": len(kept), "atoms": total, "accuracy": hits / total,
            "T_range_K": [float(min(s.temperature for s in kept)), float(max(s.temperature for s in kept))],
            "predicted": predicted, "seconds": time.perf_counter() - start}

if __name__ == "__main__":
    main()
