"""Does a compact receptive field sharpen the labels where two phases meet? Same interface runs, several depths.

Issue 11 asks for the smallest receptive field that keeps bulk accuracy, on the reasoning that a field of about
20 Å lets the crystal reach into the glass next to it. This tests that reasoning where it matters: networks of
several depths (:data:`receptive_field.VARIANTS`, plus one layer more than the config's) are trained alike, with
the config's training settings and the real training loop, on the interface runs of one split only, and scored on
the interface runs of another split by distance from where the phases meet (the report's own bins,
``place_spread.score``; network alone: no calibration, threshold, consensus or pooling). The data are the same for
every variant, so what moves between rows is the network's reach, not what it was shown.

    python benchmarks/interface_depth.py inputs/train_sio2_averaged.toml --workdir cache/sio2_s20 \\
        --train-split val --select-split val --score-split test --epochs 100 --only k16_h4,k12_h3,k12_h2

The defaults (train, val, test) keep selection and scoring apart; training on the validation runs and selecting the
epoch on them too (as above, when only those are heated) picks the epoch that fits them best, alike for every
variant. Needs the splits' interface runs in ``<workdir>/runs`` (``lammps-phase-train CONFIG --stage heating``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from place_spread import score  # noqa: E402
from receptive_field import VARIANTS  # noqa: E402

from lammps_phase.data.datasets import SampleSet  # noqa: E402
from lammps_phase.errors import LammpsPhaseError  # noqa: E402
from lammps_phase.model import checkpoint as ckpt_io  # noqa: E402
from lammps_phase.model.network import ModelConfig  # noqa: E402
from lammps_phase.training.config import SPLITS, PipelineConfig, load_config, species_indices  # noqa: E402
from lammps_phase.training.loop import TrainConfig, train_model  # noqa: E402
from lammps_phase.training.runs import iter_snapshots  # noqa: E402

#: the rows printed, in the report's names (training.places.PlaceTally)
ROWS = ("interface, atoms ≤ 3 Å from it", "interface, 0-1 Å from it", "interface, 1-2 Å from it",
        "interface, 2-3 Å from it", "interface, atoms > 3 Å from it")


def depth_variants(cfg: PipelineConfig) -> dict[str, dict[str, Any]]:
    """receptive_field's variants and "k16_h5": one EdgeConv layer more than the config's (one hop farther)."""
    channels = list(cfg.model.get("channels", ModelConfig(elements=cfg.elements, num_classes=1).channels))
    return {**VARIANTS, "k16_h5": {"channels": channels + channels[-1:]}}


def interface_samples(cfg: PipelineConfig, work: Path, split: str) -> SampleSet:
    """Every kept frame of the split's interface runs as whole-sample graphs (what training reads)."""
    k = int(cfg.model.get("k", 16))
    sets = [SampleSet.from_snapshot(pos, cell, species_indices(cfg, species), labels, k, cfg.classes, cfg.elements,
                                    origin=origin, temperature=temp, pressure=pres, run_id=run_id)
            for pos, cell, origin, species, labels, temp, pres, run_id
            in iter_snapshots(cfg, work, split, lambda spec: spec.variant == "interface")]
    if not sets:  # (a block's missing run is named by iter_snapshots)
        raise LammpsPhaseError(f"{cfg.name} has no interface blocks with kept {split} frames: give a config with "
                               "[[phase]] variant = \"interface\" blocks")
    return SampleSet.concatenate(sets)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="training config whose interface blocks are read")
    ap.add_argument("--workdir", required=True, help="folder whose runs/ holds the config's cached heating runs")
    ap.add_argument("--train-split", default="train", choices=SPLITS)
    ap.add_argument("--select-split", default="val", choices=SPLITS, help="the best epoch is chosen on these runs")
    ap.add_argument("--score-split", default="test", choices=SPLITS)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds per variant")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", help="comma-separated variant names (default: all)")
    ap.add_argument("--out", default="cache/interface_depth", help="folder for the trained checkpoints")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args(argv)
    if args.score_split in (args.train_split, args.select_split):
        ap.error("score on runs neither trained on nor used to choose the epoch (--score-split)")
    cfg = load_config(args.config)
    variants = depth_variants(cfg)
    names = args.only.split(",") if args.only else list(variants)
    unknown = [n for n in names if n not in variants]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {', '.join(variants)}")
    work, out = Path(args.workdir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train = interface_samples(cfg, work, args.train_split)
    select = train if args.select_split == args.train_split else interface_samples(cfg, work, args.select_split)
    rows: dict[str, dict[str, Any]] = {}
    for name in names:
        mcfg = ModelConfig(elements=cfg.elements, num_classes=len(cfg.classes), **{**cfg.model, **variants[name]})
        for seed in args.seeds:
            tcfg = TrainConfig(**{**cfg.train, "epochs": args.epochs, "threads": args.threads, "progress": False,
                                  "seed": seed})
            t0 = time.perf_counter()
            ckpt, _ = train_model(train, select, mcfg, tcfg, log=lambda m: None)
            path = out / f"{name}_seed{seed}.pt"
            ckpt_io.save(ckpt, path)
            places = score(args.config, str(work), [str(path)], split=args.score_split, variants=["interface"])
            figures = {row: places[str(path)].get(row, float("nan")) for row in ROWS}
            rows[f"{name} seed {seed}"] = {"hops": mcfg.receptive_hops, "hop_neighbors": mcfg.hop_neighbors,
                                           "seconds": round(time.perf_counter() - t0), **figures}
            print(f"{name:10s} seed {seed}: {mcfg.receptive_hops} hops {mcfg.hop_neighbors}  "
                  + "  ".join(f"{row.removeprefix('interface, ')} {v:.3f}" for row, v in figures.items()), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
