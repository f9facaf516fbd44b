"""Never confidently wrong: inputs unlike anything in training must come out as −1 ("other").

Probes (issue 11): elements swapped in the type map, a handful of atoms in a huge box, all atoms in one point,
densities far outside the trained range; and, as the control, the same crystals as they are (they must keep
their labels). Structures are built here from the crystal library with thermal noise, not taken from training.

    python benchmarks/out_of_distribution.py [--checkpoint checkpoints/sio2.pt] [--json out.json]

Prints, per probe, the fraction of atoms labelled −1, the fraction given a class with confidence ≥ 0.9, and
whether ``lammps-phase classify`` warns (it does whenever an atom lies outside the training geometry).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lammps_phase.data import structures  # noqa: E402
from lammps_phase.inference.classify import Classifier  # noqa: E402

CRYSTALS = ("alpha_quartz", "coesite", "stishovite")
NOISE = 0.05  # Å per axis: about 300 K


def noisy(name: str, seed: int, scale: float = 1.0):
    crystal = structures.supercell(structures.build(name), min_length=20.0)
    rng = np.random.default_rng(seed)
    positions = np.asarray(crystal.positions) * scale + rng.normal(0.0, NOISE, np.shape(crystal.positions))
    return positions, np.asarray(crystal.cell) * scale, np.array(crystal.symbols)


def probes(seed: int = 11):
    """(name, what it should be, positions, cell, species) — expected None for out-of-distribution."""
    for name in CRYSTALS:
        pos, cell, species = noisy(name, seed)
        yield f"{name} as it is", name, pos, cell, species
        yield f"{name}, Si and O swapped", None, pos, cell, np.where(species == "Si", "O", "Si")
        for scale in (0.7, 1.4):
            pos_s, cell_s, _ = noisy(name, seed, scale)
            yield f"{name}, lengths x{scale} (density x{1 / scale ** 3:.2f})", None, pos_s, cell_s, species
    rng = np.random.default_rng(seed)
    few = rng.uniform(0.0, 200.0, (12, 3))
    yield "12 atoms in a 200 Å box", None, few, np.eye(3) * 200.0, np.array(["Si", "O", "O"] * 4)
    point = np.full((30, 3), 5.0) + rng.normal(0.0, 1e-3, (30, 3))
    yield "30 atoms in one point", None, point, np.eye(3) * 20.0, np.array(["Si", "O", "O"] * 10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "sio2.pt"))
    parser.add_argument("--json", default=None)
    parser.add_argument("--consensus", default="checkpoint", metavar="W",
                        help="label with a neighbour consensus of weight W (lammps-phase classify --consensus; "
                        "default: the checkpoint's calibrated weight)")
    args = parser.parse_args()
    clf = Classifier.load(args.checkpoint, device="cpu", consensus=args.consensus)
    print(f"checkpoint {args.checkpoint}: temperature {clf.temperature:.3f}, threshold {clf.threshold:.3f}, "
          f"consensus {clf.consensus:g}, pooling {clf.pooling}, "
          f"training domain {'on' if clf.domain is not None else 'absent'}")
    rows = []
    print(f"{'probe':<48} {'atoms':>6} {'-1':>7} {'right':>7} {'conf>=0.9 class':>16} {'warns':>6}")
    for name, expected, pos, cell, species in probes():
        res = clf.classify(pos, cell, species)
        other = float(np.mean(res.labels == -1))
        confident = float(np.mean((res.labels >= 0) & (res.confidence >= 0.9)))
        right = float(np.mean(res.labels == clf.classes.index(expected))) if expected else None
        rows.append({"probe": name, "atoms": len(pos), "other": other, "right": right, "confident_class": confident,
                     "unfamiliar": res.unfamiliar, "in_distribution": expected is not None})
        print(f"{name:<48} {len(pos):>6} {other:>7.3f} {'-' if right is None else f'{right:.3f}':>7} {confident:>16.3f} "
              f"{'yes' if res.unfamiliar else 'no':>6}")
    ood = [r for r in rows if not r["in_distribution"]]
    print(f"out-of-distribution probes with >= 90 % of atoms -1: {sum(r['other'] >= 0.9 for r in ood)} of {len(ood)}; "
          f"with >= 90 % -1 or a warning: {sum(r['other'] >= 0.9 or r['unfamiliar'] > 0 for r in ood)} of {len(ood)}; "
          f"in-distribution controls warned: {sum(r['unfamiliar'] > 0 for r in rows if r['in_distribution'])}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
