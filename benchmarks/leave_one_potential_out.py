"""Leave one potential out: train on the others, test on the held-out potential's test runs.

The honest estimate for a potential nobody trained on (issue 12). For each potential named by the config's
[[phase]] blocks, the blocks of that potential are removed, datasets are built from the remaining runs (train and
validation seeds) and a model is trained with the config's settings (``--epochs`` overrides the epochs, to keep
the study affordable); it then labels the held-out potential's *test* runs (the seed the full model never saw
either). Classes are compared by name: a class the held-out potential has but the others lack (e.g. rosiaite-type,
BKS only) cannot be predicted and is listed apart. Labels are the raw argmax (threshold 0, no domain check: the
question is what the network reads, not whether it abstains).

    python benchmarks/leave_one_potential_out.py inputs/train_sio2.toml --workdir cache/sio2_multi --epochs 8 \\
        --json benchmarks/lopo.json

Heating runs must be in ``<workdir>/runs`` (``lammps-phase-train CONFIG --stage heating --workdir ...``); each fold
works in ``<workdir>/lopo_<potential>/`` (datasets and model are cached there).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lammps_phase.inference.classify import Classifier  # noqa: E402
from lammps_phase.model import checkpoint as ckpt_io  # noqa: E402
from lammps_phase.training.config import load_config, potential_of  # noqa: E402
from lammps_phase.training.pipeline import stage_datasets, stage_train  # noqa: E402
from lammps_phase.training.runs import decode_run_id, iter_snapshots  # noqa: E402


def fold_config(cfg, held_out: str, epochs: int | None):
    kept = [spec for spec in cfg.phases if potential_of(cfg, spec) != held_out]
    train = dict(cfg.train, **({"epochs": epochs} if epochs else {}))
    return dataclasses.replace(cfg, phases=kept, train=train, name=f"{cfg.name}_without_{held_out}")


def test_config(cfg, held_out: str):
    return dataclasses.replace(cfg, phases=[spec for spec in cfg.phases if potential_of(cfg, spec) == held_out])


def score(classifier: Classifier, test_cfg, workdir: Path) -> dict:
    """Accuracy of the classifier on the test runs of test_cfg, overall and per class (by name)."""
    right: dict[str, int] = {}
    total: dict[str, int] = {}
    confused: dict[str, dict[str, int]] = {}
    known = set(classifier.classes)
    by_variant: dict[str, list[int]] = {}  # bulk / slab / ... → [right, atoms] over learnable classes
    for pos, cell, origin, species, labels, _t, _p, run_id in iter_snapshots(test_cfg, workdir, "test"):
        result = classifier.classify(pos, cell, species, origin=origin, threshold=0.0)
        variant = test_cfg.phases[decode_run_id(run_id)[1]].variant
        names = np.array(test_cfg.classes + ["-"])[np.where(labels >= 0, labels, len(test_cfg.classes))]
        learnable = np.isin(names, list(known))
        tally = by_variant.setdefault(variant, [0, 0])
        tally[0] += int((np.array(classifier.classes)[result.labels][learnable] == names[learnable]).sum())
        tally[1] += int(learnable.sum())
        for code in np.unique(labels[labels >= 0]):
            name = test_cfg.classes[int(code)]
            mine = labels == code
            predicted = np.array(classifier.classes)[result.labels[mine]]
            right[name] = right.get(name, 0) + int((predicted == name).sum())
            total[name] = total.get(name, 0) + int(mine.sum())
            names, counts = np.unique(predicted[predicted != name], return_counts=True)
            for other, count in zip(names, counts):
                confused.setdefault(name, {})[str(other)] = confused.get(name, {}).get(str(other), 0) + int(count)
    learnable = [c for c in total if c in known]
    return {
        "accuracy": sum(right[c] for c in learnable) / max(sum(total[c] for c in learnable), 1),
        "atoms": sum(total[c] for c in learnable),
        "per_class": {c: round(right[c] / total[c], 4) for c in total},
        "by_variant": {v: round(r / n, 4) for v, (r, n) in by_variant.items() if n},
        "unlearnable_classes": sorted(c for c in total if c not in known),
        "wrong_as": confused,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--potentials", nargs="*", default=None, help="hold out only these (default: every one)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    cfg = load_config(args.config)
    workdir = Path(args.workdir)
    potentials = list(dict.fromkeys(potential_of(cfg, spec) for spec in cfg.phases))
    results = {}
    for held_out in args.potentials or potentials:
        fold = fold_config(cfg, held_out, args.epochs)
        work = workdir / f"lopo_{held_out}"
        work.mkdir(parents=True, exist_ok=True)
        if not (work / "runs").exists():
            os.symlink((workdir / "runs").resolve(), work / "runs")
        t0 = time.perf_counter()
        stage_datasets(fold, work, force=False)
        stage_train(fold, work, force=False, output=work / "lopo.pt", quiet=True)
        classifier = Classifier(ckpt_io.load(work / "model.pt"), device="cpu", threshold=0.0, check_domain=False)
        results[held_out] = {"trained_on": [p for p in potentials if p != held_out], "epochs": fold.train.get("epochs"),
                             **score(classifier, test_config(cfg, held_out), workdir),
                             "seconds": round(time.perf_counter() - t0)}
        r = results[held_out]
        print(f"held out {held_out}: accuracy {r['accuracy']:.4f} on {r['atoms']} atoms (trained on "
              f"{' + '.join(r['trained_on'])}, {r['epochs']} epochs, {r['seconds']} s); per class "
              + ", ".join(f"{c} {v:.3f}" for c, v in r["per_class"].items())
              + "; by place " + ", ".join(f"{v} {a:.3f}" for v, a in r["by_variant"].items())
              + (f"; not learnable: {', '.join(r['unlearnable_classes'])}" if r["unlearnable_classes"] else ""),
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
