"""How far apart several trainings read the places users look at, and what their average would read.

One training's figure at a void surface or an interface is one draw: two seeds of the same config differed by up to
28 points there (session 19). This scores every checkpoint given on the same held-out runs of a config (the test
seed), place by place with the report's own tables (:class:`~lammps_phase.training.places.PlaceTally`), and prints
each checkpoint's figure, the spread (largest − smallest) and the figure of their ensemble: per atom the mean of the
checkpoints' calibrated probabilities, then its largest class. Nothing here ships an ensemble; it says how much of a
place's error is the draw of one training (what the ensemble removes) and how much is common to all of them.

    python benchmarks/place_spread.py inputs/train_sio2.toml --workdir cache/sio2_s20 \\
        checkpoints/sio2.pt cache/models/sio2_s19.pt cache/models/sio2_s19_seed2.pt --json spread.json

Labels carry no threshold (every atom gets its most likely class), so the checkpoints are compared on their
classifications alone; the reports' figures apply each checkpoint's calibrated threshold and read lower by up to
its share of "other" (``--threshold`` applies them here too). An ensemble file (``.toml``,
:mod:`lammps_phase.inference.ensemble`) may stand where a checkpoint does. The checkpoints must share the config's classes and elements. Needs the config's cached runs in
``<workdir>/runs`` (``lammps-phase-train CONFIG --stage heating``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lammps_phase.errors import LammpsPhaseError  # noqa: E402
from lammps_phase.inference.classify import Classifier  # noqa: E402
from lammps_phase.inference.consensus import consensus_argument  # noqa: E402
from lammps_phase.inference.order_pooling import pooling_argument  # noqa: E402
from lammps_phase.inference.neighbors import knn  # noqa: E402
from lammps_phase.training.config import SPLITS, VARIANTS, load_config, potential_of  # noqa: E402
from lammps_phase.training.places import PlaceTally  # noqa: E402
from lammps_phase.training.runs import decode_run_id, iter_snapshots  # noqa: E402

ENSEMBLE = "ensemble"


def predictions(probabilities: list[np.ndarray], thresholds: list[float] | None = None) -> list[np.ndarray]:
    """Each checkpoint's most likely class per atom, then the ensemble's: the class of the largest mean probability
    (not a vote: a checkpoint sure of its class outweighs two that hesitate). ``thresholds`` (one per checkpoint):
    its atoms less sure than that are −1, as in use; the ensemble column never has one."""
    labels = [p.argmax(axis=1) for p in probabilities]
    for lab, p, t in zip(labels, probabilities, thresholds or []):
        lab[p.max(axis=1) < t] = -1
    return labels + [np.mean(probabilities, axis=0).argmax(axis=1)]


def score(config: str, workdir: str, checkpoints: list[str], potential: str | None = None,
          threshold: bool = False, split: str = "test", variants: list[str] | None = None,
          consensus: float | None = None, pooling: int | None = None) -> dict[str, dict]:
    """Accuracy by place for each checkpoint (or ensemble file) and for their ensemble, keyed by path (and ENSEMBLE);
    ``threshold``: each checkpoint's calibrated default threshold applies to its own column. ``split`` "train" reads
    the runs the checkpoints learnt from (how well they fit them, against how well they generalise); ``potential``
    and ``variants`` keep only those blocks (only their runs need be heated). ``consensus``: each checkpoint's
    probabilities blended with its neighbours' (:mod:`lammps_phase.inference.consensus`) with this weight before
    anything else; None: each with its own calibrated weight, as in use. ``pooling``: likewise the rounds of α/β
    order pooling after it (:mod:`lammps_phase.inference.order_pooling`)."""
    cfg = load_config(config)
    classifiers = [Classifier.load(path, device="cpu", consensus=consensus, pooling=pooling) for path in checkpoints]
    for path, clf in zip(checkpoints, classifiers):
        if list(clf.classes) != list(cfg.classes):
            raise LammpsPhaseError(f"{path} labels {clf.classes}, the config {cfg.classes}: compare checkpoints "
                                   "trained on the config's classes")
    k = max(clf.k for clf in classifiers)
    names = list(checkpoints) + [ENSEMBLE]
    tallies = {name: PlaceTally(cfg.classes) for name in names}
    thresholds = [clf.threshold for clf in classifiers] if threshold else None

    def wanted(spec) -> bool:
        return (potential is None or potential_of(cfg, spec) == potential) and (not variants or spec.variant in variants)

    for pos, cell, origin, species, labels, temp, pres, run_id in iter_snapshots(cfg, Path(workdir), split, wanted):
        spec = cfg.phases[decode_run_id(run_id)[1]]
        neighbors = knn(pos, k, cell=cell, origin=origin)  # shared: each network reads its own first k columns
        probs = [clf.probabilities(clf.logits(clf.species_indices(species), neighbors)) for clf in classifiers]
        probs = [clf.served_probabilities(p, neighbors.index[:, : clf.k]) if clf.post_processed else p
                 for p, clf in zip(probs, classifiers)]
        for name, predicted in zip(names, predictions(probs, thresholds)):
            tallies[name].add(spec, pos, cell, origin, labels, predicted, temp, pres, None,
                              potential=potential_of(cfg, spec), species=species)
    return {name: tally.by_place() for name, tally in tallies.items()}


def table(scores: dict[str, dict]) -> list[str]:
    """One line per place: each checkpoint's figure, the spread over checkpoints, the ensemble's."""
    names = [n for n in scores if n != ENSEMBLE]
    places = [p for p in scores[ENSEMBLE] if "share without a label" not in p]
    lines = [f"{'place':58s} " + " ".join(f"{i + 1:>7d}" for i in range(len(names))) + "  spread  ensemble"]
    for place in places:
        values = [scores[n].get(place, float("nan")) for n in names]
        lines.append(f"{place[:58]:58s} " + " ".join(f"{v:7.4f}" for v in values)
                     + f"  {np.nanmax(values) - np.nanmin(values):6.4f}  {scores[ENSEMBLE][place]:8.4f}")
    lines += [f"{i + 1}: {n}" for i, n in enumerate(names)]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config", help="training config whose held-out (test-seed) runs are scored")
    ap.add_argument("checkpoints", nargs="+", help="two or more checkpoints trained on the config's classes")
    ap.add_argument("--workdir", required=True, help="folder whose runs/ holds the config's cached heating runs")
    ap.add_argument("--potential", default=None, help="score only the runs in this potential (e.g. bks_dsf)")
    ap.add_argument("--variant", nargs="+", default=None, choices=VARIANTS, help="score only the blocks of these variants")
    ap.add_argument("--split", default="test", choices=SPLITS, help="the runs to score (default: test, the held-out "
                    "seed; train: the runs the checkpoints learnt from)")
    ap.add_argument("--consensus", type=consensus_argument, default=None, metavar="W",
                    help="blend every checkpoint's probabilities with its k nearest neighbours' mean, weight W on "
                    "theirs "
                    "(lammps-phase classify --consensus; default: each checkpoint's own calibrated weight, as in use)")
    ap.add_argument("--pooling", type=pooling_argument, default=None, metavar="R",
                    help="rounds of alpha/beta-quartz order pooling after the consensus (default: each "
                    "checkpoint's own)")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument("--threshold", action="store_true", help="apply each checkpoint's calibrated default threshold to "
                    "its own column (atoms below it count as wrong, as in the reports); never to the ensemble column")
    a = ap.parse_args(argv)
    if len(a.checkpoints) < 2:
        ap.error("give at least two checkpoints: a spread needs two trainings")
    scores = score(a.config, a.workdir, a.checkpoints, a.potential, a.threshold, a.split, a.variant, a.consensus,
                   a.pooling)
    print("\n".join(table(scores)))
    if a.json:
        from lammps_phase.atomic_write import write_text

        write_text(Path(a.json), json.dumps(scores, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
