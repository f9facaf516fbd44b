"""Labels where shock users look: free surfaces, a cluster, interfaces, uniaxial strain, hot dense glass.

Every structure is made here, separately from the training runs (seed 11 — training uses 1–4 — and cuts,
orientations and strains the training config did not have when this benchmark was written: slabs normal to y,
strain along y, a non-periodic sphere, glass at 50 GPa and 2500 K; since session 7 the config trains slabs and
quartz | glass interfaces normal to y as well, on other seeds), checked like the training data, and cached under
``cache/surface_bench/``. Each checkpoint given labels them all; the table gives the fraction of atoms labelled
with their own class, by depth below the surface / distance from the centre / distance from where the two phases
of an interface meet.

``--potential`` makes the same kinds of structure in Tersoff (Munetoh) or Vashishta 1990 (default BKS), each only
where it holds in that potential (:data:`POTENTIALS`): the glass side of an interface melted and quenched as the
training config does it, stishovite only in Tersoff (no 6-fold phase holds in Vashishta 1990), no crystal | melt
(neither potential's training blocks have one, so the case would test data the model never saw, not the model).

    python benchmarks/surfaces.py --checkpoint checkpoints/sio2.pt [--checkpoint other.pt ...] [--potential P]
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lammps_phase.data import checks, geometry, heating, structures, variants
from lammps_phase.inference.classify import Classifier
from lammps_phase.errors import LammpsPhaseError

SEED = 11
DEPTH_BINS = [0, 2, 4, 6, 8, 10, 1e9]
CACHE = Path("cache/surface_bench")


def _last_kept(run) -> checks.Snapshot:
    kept = run.kept
    if not kept:
        raise SystemExit(f"no kept snapshot: {heating.heating_summary([run])}")
    return kept[-1]


#: how each potential makes its glass (the training config's settings; inputs/train_sio2*.toml) and what holds in it
POTENTIALS: dict[str, dict[str, Any]] = {
    "bks_dsf": dict(interface_melt=6500.0, glass_melt=7500.0, quench=1000.0, stishovite=True, crystal_melt=True,
                    glasses=[(20.0, 2000.0), (50.0, 2500.0)]),
    "tersoff_munetoh": dict(interface_melt=7000.0, glass_melt=7000.0, quench=250.0, stishovite=True,
                            crystal_melt=False, glasses=[(0.0, 1000.0), (10.0, 1000.0)]),
    "vashishta_1990": dict(interface_melt=6000.0, glass_melt=6000.0, quench=1000.0, stishovite=False,
                           crystal_melt=False, glasses=[(0.0, 1000.0), (10.0, 1000.0)]),
}

#: up to this temperature (0 GPa) inputs/train_sio2.toml calls quartz α; above it a quartz crystal is β
ALPHA_QUARTZ_MAX_K = 650.0


def _frame(snap: checks.Snapshot, labels: Any, coordinate: np.ndarray, pbc=(True, True, True),
           note: str = "") -> dict[str, Any]:
    return {"positions": snap.positions, "cell": snap.cell, "origin": snap.origin, "species": list(snap.species),
            "labels": labels, "coordinate": coordinate, "pbc": pbc, "note": note}


def make_cases(min_length: float, potential: str = "bks_dsf") -> dict[str, Callable[[], dict[str, Any]]]:
    """name → function that makes the (positions, labels, binning coordinate) of one case in ``potential``."""
    q, st = structures.build("alpha_quartz"), structures.build("stishovite")
    common = dict(seed=SEED, snapshot_every_ps=0.5)
    setting = POTENTIALS[potential]

    def slab(crystal, axis, label, t):
        def make():
            run = variants.slab_run(crystal, potential, 0.0, axis=axis, t_start=t, t_end=t, ps=2.0,
                                    supercell_min_length=24.0, **common)
            s = _last_kept(run)
            return _frame(s, label, geometry.surface_depth(s.positions, s.cell, s.origin, axis),
                          note=f"slab normal to {axis}, {t:.0f} K, 20 Å vacuum")
        return make

    def sphere():
        run = heating.heating_run(q, potential, 0.0, 300.0, 300.0, 2.0, supercell_min_length=34.0, **common)
        s = _last_kept(run)
        centre = s.origin + 0.5 * s.cell.sum(axis=0)
        r = np.linalg.norm(s.positions - centre, axis=1)
        keep = r < 14.0
        snap = checks.Snapshot(**{**s.__dict__, "positions": s.positions[keep], "species": tuple(np.array(s.species)[keep])})
        return _frame(snap, "alpha_quartz", r[keep], pbc=(False, False, False),
                      note="sphere r = 14 Å cut from 300 K α-quartz, not periodic, not relaxed")

    def interface(crystal, partner, p):
        def make():
            run = variants.interface_run(crystal, potential, p, axis="y", partner=partner, melt_ps=4.0,
                                         melt_temperature=setting["interface_melt"],
                                         quench_rate_k_per_ps=setting["quench"], hold_ps=1.0,
                                         supercell_min_length=20.0, **common)
            s = run.snapshots[-1]
            if not s.check.holds:
                raise SystemExit(f"interface check failed: {s.check.reason}")
            # the training config's rule: quartz above 650 K at 0 GPa is β (crystal | melt sits near 3000 K)
            name = "beta_quartz" if crystal.name == "alpha_quartz" and s.temperature > ALPHA_QUARTZ_MAX_K else crystal.name
            lut = np.array([name, partner, "none"], dtype=object)
            # binned by the distance from where the two phases meet (crystal regrows into the melted half)
            distance, _ = geometry.phase_boundary_distance(s.positions, s.cell, s.origin, "y", s.atom_labels)
            return _frame(s, lut[s.atom_labels.astype(int)], distance,
                          note=f"{name} (built as {crystal.name}) | {partner} at {p:g} GPa and {s.temperature:.0f} K, "
                               "interfaces normal to y")
        make.depends = {"distance": "from the fitted phase boundary"}  # cases binned from the starting planes remade
        return make

    def strained(crystal, axis, strain, label):
        # frames every 0.25 ps (1.9 % of strain): the last one kept lies within that of where the crystal gives way
        settings = {**common, "snapshot_every_ps": 0.25}

        def make():
            run = variants.strained_run(crystal, potential, 0.0, axis=axis, strain=strain, ps=2.0,
                                        supercell_min_length=min_length, **settings)
            s = _last_kept(run)
            i = geometry.AXES[axis]
            eps = 1 - s.cell[i, i] / run.reference.cell[i, i]
            return _frame(s, label, np.full(len(s.positions), 99.0),
                          note=f"strained {eps:.1%} along {axis} at 300 K, {s.pressure_gpa:.1f} GPa")
        # these decide which frame is the last one kept: a case cut otherwise is remade
        make.depends = {**variants.STRAINED_CHECK, "snapshot_every_ps": settings["snapshot_every_ps"]}
        return make

    def dense_glass(p, t):
        def make():
            run = heating.melt_quench(q, potential, p, setting["glass_melt"], 5.0, setting["quench"], [t], 3.0,
                                      supercell_min_length=min_length, max_glass_msd=1.5, **common)
            s = _last_kept(run)
            return _frame(s, "amorphous", np.full(len(s.positions), 99.0),
                          note=f"glass at {p:g} GPa, {t:.0f} K, MSD {s.msd:.2f} Å² over the hold")
        return make

    cases = {
        "quartz slab ⊥y": slab(q, "y", "alpha_quartz", 300.0),
        "quartz slab ⊥z": slab(q, "z", "alpha_quartz", 300.0),
        "stishovite slab ⊥z": slab(st, "z", "stishovite", 300.0),
        "quartz sphere r=14": sphere,
        "quartz | glass": interface(q, "amorphous", 0.0),
        "quartz | melt": interface(q, "melt", 0.0),
        "quartz strained 15% ⊥y": strained(q, "y", 0.15, "alpha_quartz"),
        "quartz strained 15% ⊥x": strained(q, "x", 0.15, "alpha_quartz"),
    }
    if not setting["stishovite"]:
        del cases["stishovite slab ⊥z"]
    if not setting["crystal_melt"]:
        del cases["quartz | melt"]
    for p, t in setting["glasses"]:
        cases[f"glass {p:g} GPa {t:g} K"] = dense_glass(p, t)
    return cases


def case(name: str, make: Callable[[], dict[str, Any]], potential: str = "bks_dsf") -> dict[str, Any]:
    CACHE.mkdir(parents=True, exist_ok=True)
    stem = name.replace(" ", "_").replace("|", "").replace("/", "")
    path = CACHE / ((stem if potential == "bks_dsf" else f"{stem}_{potential}") + ".pkl")
    depends = getattr(make, "depends", None)
    if path.exists():
        cached = pickle.loads(path.read_bytes())
        if cached.get("depends") == depends:
            return cached
    t0 = time.perf_counter()
    try:
        data = make()
    except (SystemExit, LammpsPhaseError) as err:  # the structure did not hold: that is a result, not a crash
        data = {"failed": str(err).splitlines()[0] + " — " + " / ".join(str(err).splitlines()[1:4])}
    data["depends"] = depends
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(data))
    tmp.replace(path)
    what = data.get("failed") or f"{len(data['positions'])} atoms — {data['note']}"
    print(f"[made] {name} in {time.perf_counter() - t0:.0f} s: {what}", flush=True)
    return data


def score(clf: Classifier, data: dict[str, Any]) -> dict[str, Any]:
    res = clf.classify(data["positions"], data["cell"], data["species"], pbc=data["pbc"], origin=data["origin"])
    names = np.array([clf.classes[i] if i >= 0 else "other" for i in res.labels], dtype=object)
    truth = np.broadcast_to(np.asarray(data["labels"], dtype=object), names.shape)
    known = truth != "none"
    ok = (names == truth) & known
    coord = np.asarray(data["coordinate"])
    bins = {}
    for lo, hi in zip(DEPTH_BINS[:-1], DEPTH_BINS[1:]):
        sel = known & (coord >= lo) & (coord < hi)
        if sel.any():
            bins[f"{lo:g}-{hi:g}" if hi < 1e9 else f">{lo:g}"] = (float(ok[sel].mean()), int(sel.sum()))
    wrong = names[known & ~ok]
    top = {str(k): int(v) for k, v in zip(*np.unique(wrong, return_counts=True))} if len(wrong) else {}
    return {"overall": float(ok[known].mean()), "atoms": int(known.sum()), "bins": bins, "wrong_as": top}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", help="checkpoint(s) to compare (default: the shipped one)")
    ap.add_argument("--min-length", type=float, default=20.0)
    ap.add_argument("--only", help="comma-separated case names")
    ap.add_argument("--potential", default="bks_dsf", choices=sorted(POTENTIALS))
    ap.add_argument("--out", default=None, help="results (default: cache/surface_bench/results[_POTENTIAL].json)")
    args = ap.parse_args()
    checkpoints = args.checkpoint or ["checkpoints/sio2.pt"]
    cases = make_cases(args.min_length, args.potential)
    if args.only:
        cases = {k: v for k, v in cases.items() if k in args.only.split(",")}
    data = {name: case(name, make, args.potential) for name, make in cases.items()}
    failed = {name: d["failed"] for name, d in data.items() if "failed" in d}
    data = {name: d for name, d in data.items() if "failed" not in d}
    results: dict[str, Any] = {}
    for ck in checkpoints:
        clf = Classifier.load(ck, device="cpu")
        results[ck] = {name: score(clf, d) for name, d in data.items()}
    print(f"\nfraction of atoms labelled with their own class (independent structures, {args.potential}, seed {SEED})")
    print("| case | " + " | ".join(Path(c).name for c in checkpoints) + " | by depth / distance (Å), last checkpoint |")
    print("|---|" + "---|" * len(checkpoints) + "---|")
    for name in data:
        last = results[checkpoints[-1]][name]
        bins = ", ".join(f"{k}: {v[0]:.2f}" for k, v in last["bins"].items() if k != ">99") or "-"
        print(f"| {name} | " + " | ".join(f"{results[c][name]['overall']:.3f}" for c in checkpoints)
              + f" | {bins if any(k != '>10' for k in last['bins']) else '-'} |")
    for name in data:
        print(f"  {name}: {data[name]['note']}; wrong as {results[checkpoints[-1]][name]['wrong_as']}")
    for name, why in failed.items():
        print(f"  {name}: not scored, the structure did not hold its phase: {why}")
    out = Path(args.out or CACHE / ("results.json" if args.potential == "bks_dsf" else f"results_{args.potential}.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
