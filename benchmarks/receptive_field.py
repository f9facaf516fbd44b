"""How small can the receptive field be? Train the same data with fewer hops / neighbours and compare.

A label depends on atoms within ``hops × (k-th neighbour distance)``: the smaller that radius, the less a free
surface or an interface reaches into the bulk, and the thinner the ghost shell an MPI rank needs in local mode.
Each variant below is trained on the cached datasets of a training config (built with the config's k, which
must be ≥ every variant's k: the neighbour lists are sorted, a smaller k uses the nearest ones), with the
config's training settings and ``--epochs``; the held-out test split is scored per class, and the checkpoints
are written for ``benchmarks/surfaces.py`` (accuracy by depth below a surface on independent structures).

    lammps-phase-train inputs/train_sio2_bks.toml --stage datasets
    python benchmarks/receptive_field.py --epochs 12 [--only k12_h3]
    python benchmarks/surfaces.py --checkpoint cache/receptive/k16_h4.pt --checkpoint cache/receptive/k12_h3.pt ...
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from lammps_phase.model import checkpoint as ckpt_io
from lammps_phase.data.datasets import SampleSet
from lammps_phase.model.network import ModelConfig, build_model
from lammps_phase.training.config import load_config
from lammps_phase.training.loop import TrainConfig, evaluate, train_model

#: name → model settings that differ from the config's [model]; hops = EdgeConv layers + 1 (bond-order inputs)
VARIANTS = {
    "k16_h4": {},  # the config's architecture: 3 EdgeConv layers, k = 16
    "k12_h3": {"k": 12, "channels": [64, 64], "bond_order_neighbors": [6, 12]},
    "k12_h2": {"k": 12, "channels": [96], "head": [96], "bond_order_neighbors": [6, 12]},
    # k = 16 rows for the geometric inputs, fewer neighbours aggregated by the layers (layer_k)
    "k16_l888": {"layer_k": [8, 8, 8]},
    "k16_l88w": {"channels": [64, 64], "layer_k": [8, 8]},
    "k16_l168w": {"channels": [64, 64], "layer_k": [16, 8]},
    "k16_l66w": {"channels": [64, 64], "layer_k": [6, 6]},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="inputs/train_sio2_bks.toml")
    ap.add_argument("--workdir", help="the config's work folder (default cache/<name>)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", help="comma-separated variant names")
    ap.add_argument("--out", default="cache/receptive")
    args = ap.parse_args()
    cfg = load_config(args.config)
    work = Path(args.workdir or Path("cache") / cfg.name)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, val, test = (SampleSet.load(work / f"{s}_samples.h5") for s in ("train", "val", "test"))
    names = args.only.split(",") if args.only else list(VARIANTS)
    rows = {}
    for name in names:
        mcfg = ModelConfig(elements=cfg.elements, num_classes=len(cfg.classes), **{**cfg.model, **VARIANTS[name]})
        if mcfg.k > train.k:
            raise SystemExit(f"{name}: k = {mcfg.k} > the datasets' k = {train.k}")
        tcfg = TrainConfig(**{**cfg.train, "epochs": args.epochs, "threads": args.threads, "progress": False})
        t0 = time.perf_counter()
        ckpt, hist = train_model(train, val, mcfg, tcfg, log=lambda m: None)
        seconds = time.perf_counter() - t0
        model = build_model(mcfg)
        model.load_state_dict(ckpt.state_dict)
        result = evaluate(model, test)
        radius = mcfg.receptive_radius(np.linalg.norm(test.vectors[:, : mcfg.k], axis=-1), percentile=99.9)
        ckpt.metrics.update({"test_accuracy": result["accuracy"], "test_per_class": result["per_class"],
                             "receptive_radius_angstrom": round(radius, 2)})
        ckpt_io.save(ckpt, out / f"{name}.pt")
        rows[name] = {"hops": mcfg.receptive_hops, "hop_neighbors": mcfg.hop_neighbors, "k": mcfg.k,
                      "radius_A": radius, "test_accuracy": result["accuracy"], "balanced": result["balanced_accuracy"],
                      "per_class": result["per_class"], "train_s": seconds}
        print(f"{name}: hops {mcfg.hop_neighbors} nearest, radius {radius:.1f} Å "
              f"(99.9th percentile per hop), held-out accuracy {result['accuracy']:.4f} "
              f"(balanced {result['balanced_accuracy']:.4f}), {seconds:.0f} s", flush=True)
        print("   " + ", ".join(f"{c} {v:.3f}" for c, v in result["per_class"].items()), flush=True)
        (out / f"{name}.json").write_text(json.dumps(rows[name], indent=1))


if __name__ == "__main__":
    main()
