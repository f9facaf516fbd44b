"""Is hot α-quartz next to a void still α? The tilt by depth below the void against what the models read (issue 11).

The held-out BKS void runs (α-quartz with a spherical void, heated 300 → 650 K) are where the shipped model is
furthest from issue 11's targets: 0.68 in the outer 2 Å, 0.86–0.88 at 4–10 Å, and the errors are α read as β.
The run's label is α because the box started as α and its tilt as a whole stays above the heating check's 0.5.
This measures the tilt (``lammps_phase.data.quartz_order.tilt_by_group``) shell by shell below the void, with each
shell's noise floor, frame by frame, next to the share of each shell that each model reads α and β.

    python benchmarks/void_tilt.py cache/sio2/runs/alpha_quartz_void-r10_0GPa_seed4.npz --checkpoint checkpoints/sio2.pt

Shells: 0–4 Å (too few atoms per sublattice for the tilt to say much: its floor is ≈ 0.45), 4–10 Å and deeper.

``--local R`` also measures each atom's own neighbourhood tilt (``quartz_order.local_tilt``, atoms within R Å) and
ends with, per shell and per 0.1 of that tilt, the share of atoms each model reads α and β, over every frame given:
where a model reads β though the quartz right there keeps its tilt, the model is wrong, not the α label (session 20).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lammps_phase import Classifier  # noqa: E402
from lammps_phase.data import quartz_order  # noqa: E402
from lammps_phase.data.geometry import sphere_depth  # noqa: E402

SHELLS = ((0.0, 4.0), (4.0, 10.0), (10.0, np.inf))  # Å below the void's surface


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="void runs (.npz) of a quartz phase")
    ap.add_argument("--checkpoint", action="append", default=[], help="model(s) whose reads are printed (repeatable)")
    ap.add_argument("--local", type=float, default=None, metavar="R",
                    help="also bin atoms by the tilt of their own R-Å neighbourhood (e.g. 7)")
    args = ap.parse_args(argv)
    by_local: dict[tuple[str, float], np.ndarray] = {}  # (shell, tilt bin) → [atoms, then α and β per model]
    models = [Classifier.load(path) for path in args.checkpoint]
    print(f"tilt ≈ 1: α-quartz, ≈ floor: β; the heating check keeps α at tilt ≥ {quartz_order.MIN_ALPHA_TILT} (whole box)")
    print("per shell: tilt (floor) | " + " | ".join(f"{Path(p).stem} α / β" for p in args.checkpoint))
    for path in args.runs:
        with np.load(path) as run:
            frames = [(run["positions"][f].astype(float), run["cells"][f], run["origins"][f], float(run["temperature"][f]))
                      for f in range(len(run["positions"]))]
            species = np.asarray(run["species"])
        print(f"{path}: {len(species)} atoms")
        for positions, cell, origin, temperature in frames:
            depth = sphere_depth(positions, cell, origin, "void")
            shells = [(depth >= lo) & (depth < hi) for lo, hi in SHELLS]
            tilts = quartz_order.tilt_by_group(positions, species, cell, origin, shells)
            reads = [np.asarray(m.classify(positions, cell, list(species), origin=origin).labels) for m in models]
            cells = []
            for (lo, hi), shell, (tilt, floor) in zip(SHELLS, shells, tilts):
                span = f"{lo:g}-{hi:g} Å" if hi != np.inf else f"> {lo:g} Å"
                said = " | ".join(f"{np.mean(r[shell] == m.classes.index('alpha_quartz')):.2f} / "
                                  f"{np.mean(r[shell] == m.classes.index('beta_quartz')):.2f}" for r, m in zip(reads, models))
                cells.append(f"{span}: {tilt:.2f} ({floor:.2f})" + (f" | {said}" if said else ""))
            print(f"  {temperature:5.0f} K   " + "   ".join(cells))
            if args.local:
                local = quartz_order.local_tilt(positions, species, cell, origin, args.local)
                for (lo, hi), shell in zip(SHELLS, shells):
                    for start in np.arange(0.0, 1.3, 0.1):
                        here = shell & (local >= start) & (local < start + 0.1)
                        counts = [here.sum()] + [np.sum(r[here] == m.classes.index(c)) for r, m in zip(reads, models)
                                                 for c in ("alpha_quartz", "beta_quartz")]
                        key = (f"{lo:g}-{hi:g} Å" if hi != np.inf else f"> {lo:g} Å", round(float(start), 1))
                        by_local[key] = by_local.get(key, 0) + np.array(counts)
    if by_local:
        print(f"by the tilt within {args.local:g} Å of each atom (all frames): atoms | "
              + " | ".join(f"{Path(p).stem} α / β" for p in args.checkpoint))
        for (span, start), counts in by_local.items():
            if counts[0]:
                shares = counts[1:] / counts[0]
                said = " | ".join(f"{shares[2 * i]:.3f} / {shares[2 * i + 1]:.3f}" for i in range(len(models)))
                print(f"  {span:>8s}, local tilt {start:.1f}-{start + 0.1:.1f}: {counts[0]:6d} | {said}")


if __name__ == "__main__":
    main()
