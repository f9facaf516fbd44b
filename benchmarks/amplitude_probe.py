"""Does a model read a phase from the structure or from how far the atoms stray? Held-out bulk frames shaken.

Every atom of a frame is displaced by a Gaussian of σ (Å) per coordinate; the labels are counted, and for quartz the
tetrahedra's coherent tilt of the shaken frame is printed beside them (``lammps_phase.data.quartz_order.tilt``:
≈ 1 α, near 0 β; random displacements leave it where it was). A model that keeps α while the tilt stays α reads the
structure; one that turns to β reads the amplitude (session 22: ``checkpoints/sio2.pt`` did, at σ = 0.06–0.1 Å).

    python benchmarks/amplitude_probe.py --workdir cache/sio2_s20 --checkpoint checkpoints/sio2.pt \\
        --checkpoint cache/models/sio2_shaken.pt

Reads the test seed's cached bulk runs ``<workdir>/runs/<phase>_0GPa_seed<seed>.npz`` (first, middle and last frame).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lammps_phase.data import quartz_order  # noqa: E402
from lammps_phase.inference.classify import Classifier  # noqa: E402

PHASES = ("alpha_quartz", "beta_quartz", "coesite", "amorphous")


def probe(clf: Classifier, run: Path, sigmas: list[float], rng: np.random.Generator) -> list[str]:
    """One line per frame: the two most frequent labels at each σ (and the shaken frame's tilt for quartz)."""
    lines = []
    with np.load(run) as data:
        positions, cells, origins = data["positions"], data["cells"], data["origins"]
        species, temperature = data["species"], data["temperature"]
    quartz = "quartz" in run.name
    for t in sorted({0, len(positions) // 2, len(positions) - 1}):
        cells_out = []
        for sigma in sigmas:
            shaken = positions[t].astype(float) + rng.normal(0.0, sigma, positions[t].shape)
            labels = clf.classify(shaken, cells[t], species, origin=origins[t], threshold=0.0).labels
            names, counts = np.unique(labels, return_counts=True)
            top = sorted(zip(counts, names), reverse=True)[:2]
            text = ", ".join(f"{clf.classes[n] if n >= 0 else 'other'} {c / len(labels):.2f}" for c, n in top)
            if quartz:
                text += f" (tilt {quartz_order.tilt(shaken, species, cells[t], origins[t]):.2f})"
            cells_out.append(f"σ {sigma:g}: {text}")
        lines.append(f"  {run.stem} {temperature[t]:.0f} K | " + " | ".join(cells_out))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", required=True, help="folder whose runs/ holds the cached heating runs")
    ap.add_argument("--checkpoint", action="append", required=True, help="repeat to compare models")
    ap.add_argument("--seed", type=int, default=4, help="the held-out runs' seed")
    ap.add_argument("--sigma", type=float, nargs="+", default=[0.0, 0.03, 0.06, 0.1, 0.15], help="Å")
    ap.add_argument("--phases", nargs="+", default=list(PHASES))
    a = ap.parse_args(argv)
    runs = [Path(a.workdir) / "runs" / f"{phase}_0GPa_seed{a.seed}.npz" for phase in a.phases]
    missing = [str(r) for r in runs if not r.exists()]
    if missing:
        ap.error(f"no cached run {', '.join(missing)}: make the config's heating runs first "
                 "(lammps-phase-train CONFIG --stage heating --workdir ...)")
    for path in a.checkpoint:
        clf = Classifier.load(path, device="cpu")
        print(path)
        rng = np.random.default_rng(0)  # the same displacements for every model
        for run in runs:
            print("\n".join(probe(clf, run, a.sigma, rng)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
