"""`lammps-phase-train CONFIG.toml`: heating runs → datasets → training → report, cached and resumable.

Each stage writes its results under the work folder and is skipped when they exist, so a rerun after
an interrupt continues where it stopped (a heating run is the unit of resumption). Runs are split
into train / validation / test by seed, never by neighbouring frames of one run.
"""

from __future__ import annotations

import json
import os
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from lammps_phase.atomic_write import PendingFile, atomic_path, check_output, copy_file, same_file, write_text
from lammps_phase.config_schema import check_config, check_raw_config
from lammps_phase.elements import element_indices
from lammps_phase.errors import LammpsPhaseError

STAGES = ("heating", "datasets", "train", "report")
SPLITS = ("train", "val", "test")
#: what a [[phase]] block is made of
PHASE_KINDS = ("crystal", "melt", "glass")
#: what is done to it: periodic bulk, a slab with free surfaces, uniaxial strain, a crystal | melt/glass box
VARIANTS = ("bulk", "slab", "sphere", "strained", "interface")


@dataclass
class PhaseSpec:
    """One class of the classifier and the runs that make its data."""

    name: str
    kind: str  # "crystal" | "melt" | "glass"
    structure: str  # library name (structures.py) or a file readable by io.read_frames
    pressures: list[float]
    t_start: float = 300.0
    t_end: float = 1500.0
    ps: float = 6.0
    temperature: float = 6500.0  # melt / glass: melting temperature
    hold_temperatures: list[float] = field(default_factory=lambda: [300.0])
    quench_rate: float = 1000.0  # K/ps
    hold_ps: float = 2.0
    lattice: dict[str, Any] = field(default_factory=dict)  # simple crystals: element, a, c_over_a
    # glass holds: a snapshot whose MSD within its hold exceeds this (Å²) is a liquid, not a glass
    max_glass_msd: float = 1.5
    variant: str = "bulk"  # one of VARIANTS (lammps_phase.data.variants)
    axis: str = "z"  # slab normal, strain axis or interface normal: a row of the (near-orthogonal) supercell
    vacuum: float = 20.0  # slab: Å of vacuum between the periodic images of the surfaces
    strain: float = 0.2  # strained: largest uniaxial compression (fraction of the length), reached at the end
    partner: str = "amorphous"  # interface: class of the disordered side ("amorphous" glass or "melt")
    min_length: float = 0.0  # supercell edge at least this (Å; 0: the config's runs.supercell_min_length)
    geometry: str = "cluster"  # sphere: a "cluster" cut from the crystal, or a "void" in it
    potential: str = ""  # this block's interatomic potential ("": the config's); one class may come from several
    radius: float = 12.0  # sphere: Å


@dataclass
class PipelineConfig:
    name: str
    elements: list[str]
    potential: str
    output: str
    phases: list[PhaseSpec]
    seeds: dict[str, list[int]]
    supercell_min_length: float = 14.0
    snapshot_every_ps: float = 0.5
    ranks: int = 1
    jobs: int = 1  # heating runs at a time
    dataset: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def classes(self) -> list[str]:
        """Class names in order of first appearance: several [[phase]] blocks may feed one class (e.g. one
        block per pressure when the phase holds to different temperatures there)."""
        return list(dict.fromkeys(p.name for p in self.phases))


def load_config(path: str | os.PathLike) -> PipelineConfig:
    """Parse and check a training config; every mistake is reported with the key that holds it."""
    path = Path(path)
    if path.is_dir():
        raise LammpsPhaseError(f"config {path} is a folder: give the path of a .toml file, e.g. inputs/train_cu.toml")
    if not path.is_file():
        raise LammpsPhaseError(f"config {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise LammpsPhaseError(f"config {path} is not valid TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise LammpsPhaseError(f"config {path} cannot be read ({err})") from None
    check_raw_config(raw, path)  # every key known, every value of its type and range, before anything runs
    for key in ("name", "elements", "potential", "phase"):
        if key not in raw:
            raise LammpsPhaseError(f"config {path} lacks the key '{key}'")
    runs = raw.get("runs", {})
    phases = []
    for i, ph in enumerate(raw["phase"]):
        if "name" not in ph:
            raise LammpsPhaseError(f"config {path}: [[phase]] #{i + 1} has no name")
        p = ph.get("pressure_gpa", [0.0])
        known = set(PhaseSpec.__dataclass_fields__) | {"pressure_gpa"}
        unknown = set(ph) - known
        if unknown:
            raise LammpsPhaseError(f"config {path}: phase {ph['name']} has unknown keys {sorted(unknown)}")
        spec = PhaseSpec(
            name=ph["name"], kind=ph.get("kind", "crystal"), structure=ph.get("structure", ph["name"]),
            pressures=[float(x) for x in (p if isinstance(p, list) else [p])],
            **{k: v for k, v in ph.items() if k not in ("name", "kind", "structure", "pressure_gpa")},
        )
        if spec.kind not in PHASE_KINDS:
            raise LammpsPhaseError(f"config {path}: phase {spec.name} has kind {spec.kind!r}; use one of {', '.join(PHASE_KINDS)}")
        _check_variant(spec, path)
        phases.append(spec)
    names = {spec.name for spec in phases}
    for spec in phases:
        if spec.variant == "interface" and spec.partner not in names:
            raise LammpsPhaseError(f"config {path}: phase {spec.name}: interface partner {spec.partner!r} is not a class "
                                   f"of this config (classes: {', '.join(sorted(names))}); add a [[phase]] block for it")
    keys = [(spec.name, p, run_key(spec, p, 0)) for spec in phases for p in spec.pressures]
    clash = sorted({k for k in keys if keys.count(k) > 1})
    if clash:
        name, p, key = clash[0]
        variant = key[len(name) + 1:].rsplit("_", 2)[0] if key.count("_") > name.count("_") + 2 else ""
        raise LammpsPhaseError(f"config {path}: phase {name} at {p:g} GPa{f' ({variant})' if variant else ''} appears in "
                               "two [[phase]] blocks; give each block of one class its own pressures, variant or axis")
    seeds = runs.get("seeds", {"train": [1], "val": [2], "test": [3]})
    if set(seeds) != set(SPLITS) or any(set(seeds[a]) & set(seeds[b]) for a in SPLITS for b in SPLITS if a < b):
        raise LammpsPhaseError(f"config {path}: runs.seeds needs disjoint lists for train, val and test")
    cfg = PipelineConfig(
        name=raw["name"], elements=list(raw["elements"]), potential=raw["potential"],
        output=raw.get("output", f"checkpoints/{raw['name']}.pt"), phases=phases, seeds=seeds,
        supercell_min_length=float(runs.get("supercell_min_length", 14.0)),
        snapshot_every_ps=float(runs.get("snapshot_every_ps", 0.5)), ranks=int(runs.get("ranks", 1)),
        jobs=int(runs.get("jobs", 1)),
        dataset=raw.get("dataset", {}), model=raw.get("model", {}), train=raw.get("train", {}),
        report=raw.get("report", {}), source=str(path),
    )
    check_config(cfg)  # structures build with these elements, the model and training settings pass their checks
    return cfg


# ----------------------------------------------------------------------------- stage 1: heating runs


def _check_variant(spec: PhaseSpec, path) -> None:
    """Which kinds a variant applies to, and its own settings."""
    where = f"config {path}: phase {spec.name}"
    if spec.variant not in VARIANTS:
        raise LammpsPhaseError(f"{where} has variant {spec.variant!r}; use one of {', '.join(VARIANTS)}")
    if spec.variant != "bulk" and spec.axis not in ("x", "y", "z"):
        raise LammpsPhaseError(f"{where}: axis must be x, y or z, not {spec.axis!r}")
    allowed = {"slab": ("crystal", "glass"), "strained": ("crystal",), "interface": ("crystal",), "sphere": ("crystal",)}
    if spec.variant in allowed and spec.kind not in allowed[spec.variant]:
        raise LammpsPhaseError(f"{where}: variant {spec.variant} takes kind {' or '.join(allowed[spec.variant])}, "
                               f"not {spec.kind}")
    if spec.variant == "strained" and not 0.0 < spec.strain < 0.5:
        raise LammpsPhaseError(f"{where}: strain must be a compression between 0 and 0.5, not {spec.strain}")
    if spec.variant == "slab" and spec.vacuum < 12.0:
        raise LammpsPhaseError(f"{where}: vacuum {spec.vacuum} Å lets surfaces see each other; use at least 12")
    if spec.variant == "interface" and spec.partner not in ("amorphous", "melt"):
        from lammps_phase.data import structures

        if spec.partner not in structures.names():
            raise LammpsPhaseError(f"{where}: partner must be 'amorphous', 'melt' or a library crystal (a crystal | "
                                   f"crystal box), not {spec.partner!r}")
    if spec.variant == "sphere" and spec.geometry not in ("cluster", "void"):
        raise LammpsPhaseError(f"{where}: geometry must be 'cluster' or 'void', not {spec.geometry!r}")


def _crystal(spec: PhaseSpec):
    from lammps_phase.data import structures

    if spec.structure in structures.names():
        return structures.build(spec.structure, **spec.lattice)
    if spec.lattice:
        raise LammpsPhaseError(f"phase {spec.name}: 'lattice' applies to library structures, not to the file {spec.structure}")
    from lammps_phase.inference.formats import read_frames
    from lammps_phase.data.structures import Crystal

    frame = next(iter(read_frames(spec.structure)))
    return Crystal(spec.name, frame.cell(), frame.positions() - frame.boxlo, tuple(frame.species(None)), spec.structure)


def run_key(spec: PhaseSpec, pressure: float, seed: int) -> str:
    """Cache name of one run; bulk runs keep their historical names."""
    tag = "" if spec.variant == "bulk" else f"{spec.variant}-{spec.axis}_"
    if spec.potential:
        tag = f"{spec.potential}_{tag}"
    if spec.variant == "interface":
        tag = f"interface-{spec.partner}-{spec.axis}_"
    elif spec.variant == "sphere":
        tag = f"{spec.geometry}-r{spec.radius:g}_"
    return f"{spec.name}_{tag}{pressure:g}GPa_seed{seed}"


def _heating_job(cfg: PipelineConfig, spec: PhaseSpec, pressure: float, seed: int, log_path: Path):
    from lammps_phase.data import heating

    common = dict(seed=seed, snapshot_every_ps=cfg.snapshot_every_ps,
                  supercell_min_length=spec.min_length or cfg.supercell_min_length,
                  log_path=log_path, ranks=cfg.ranks)
    crystal = _crystal(spec)
    potential = potential_of(cfg, spec)
    if spec.variant != "bulk":
        run = _variant_job(spec, crystal, potential, pressure, common)
    elif spec.kind == "crystal":
        run = heating.heating_run(crystal, potential, pressure, spec.t_start, spec.t_end, spec.ps, **common)
    elif spec.kind == "melt":
        run = heating.melt_run(crystal, potential, pressure, spec.temperature, spec.ps, **common)
    else:
        run = heating.melt_quench(
            crystal, potential, pressure, spec.temperature, spec.ps, spec.quench_rate, spec.hold_temperatures,
            spec.hold_ps, max_glass_msd=spec.max_glass_msd, **common,
        )
    run.label = spec.name
    return run


def potential_of(cfg: PipelineConfig, spec: PhaseSpec) -> str:
    """The potential a block's runs use: its own, else the config's."""
    return spec.potential or cfg.potential


def _variant_job(spec: PhaseSpec, crystal, potential: str, pressure: float, common: dict[str, Any]):
    from lammps_phase.data import variants

    if spec.variant == "slab":
        glass = None
        if spec.kind == "glass":
            glass = dict(melt_temperature=spec.temperature, melt_ps=spec.ps, quench_rate_k_per_ps=spec.quench_rate,
                         hold_temperatures=[spec.t_start], hold_ps=spec.hold_ps, min_msd=5.0,
                         max_glass_msd=spec.max_glass_msd)
        return variants.slab_run(crystal, potential, pressure, kind=spec.kind, axis=spec.axis, vacuum=spec.vacuum,
                                 t_start=spec.t_start, t_end=spec.t_end,
                                 ps=spec.hold_ps if spec.kind == "glass" else spec.ps, glass=glass, **common)
    if spec.variant == "sphere":
        return variants.sphere_run(crystal, potential, pressure, geometry=spec.geometry, radius=spec.radius,
                                   t_start=spec.t_start, t_end=spec.t_end, ps=spec.ps, **common)
    if spec.variant == "interface" and spec.partner not in ("amorphous", "melt"):
        partner = _crystal(PhaseSpec(name=spec.partner, kind="crystal", structure=spec.partner, pressures=[]))
        common = {k: v for k, v in common.items() if k != "supercell_min_length"}
        return variants.bicrystal_run(crystal, partner, potential, pressure, axis=spec.axis, t_start=spec.t_start,
                                      t_end=spec.t_end, ps=spec.ps, **common)
    if spec.variant == "strained":
        return variants.strained_run(crystal, potential, pressure, axis=spec.axis, strain=spec.strain,
                                     t_start=spec.t_start, t_end=spec.t_end, ps=spec.ps, **common)
    run = variants.interface_run(crystal, potential, pressure, axis=spec.axis, partner=spec.partner,
                                 t_crystal=spec.t_start, melt_temperature=spec.temperature, melt_ps=spec.ps,
                                 quench_rate_k_per_ps=spec.quench_rate, hold_ps=spec.hold_ps,
                                 max_glass_msd=spec.max_glass_msd, **common)
    run.labels = [spec.name, spec.partner]
    return run


def run_params(cfg: PipelineConfig, spec: PhaseSpec, pressure: float, seed: int) -> dict[str, Any]:
    """Everything that shapes one heating run: a cached run is reused only while these are unchanged."""
    defaults = PhaseSpec(name="", kind="", structure="", pressures=[])
    # non-default fields only (a new option does not invalidate old runs); the run's own pressure stands alone
    spec_fields = {k: v for k, v in asdict(spec).items()
                   if k != "pressures" and (v != getattr(defaults, k) or k in ("name", "structure"))}
    return {"spec": spec_fields, "pressure_gpa": pressure, "seed": seed, "potential": potential_of(cfg, spec),
            "supercell_min_length": cfg.supercell_min_length, "snapshot_every_ps": cfg.snapshot_every_ps}


def _cached_run(npz: Path, params: dict[str, Any], log) -> Optional[dict[str, Any]]:
    """The cached summary of a run made with ``params``, or None when it must be (re)made."""
    meta = npz.with_suffix(".json")
    if not (npz.exists() and meta.exists()):
        return None
    try:
        summary = json.loads(meta.read_text())
    except ValueError:  # written by an interrupted older version: remake the run
        log(f"[heating] {npz.stem}: cached summary {meta.name} is unreadable; remaking the run")
        return None
    stored = summary.get("params")
    if stored is None:
        log(f"[heating] {npz.stem}: cached run records no parameters (older version); reusing it — "
            f"delete {npz.name} or pass --force to remake it")
        return summary
    if stored != json.loads(json.dumps(params)):
        log(f"[heating] {npz.stem}: parameters changed since the cached run; remaking it")
        return None
    return summary


def save_run(run, path: Path, params: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Kept snapshots as one npz (all frames of a run have the same atoms) + a JSON summary."""
    from lammps_phase.data.heating import run_report

    kept = run.kept
    summary = {"params": params,
        "phase": run.phase, "label": run.label, "potential": run.potential, "pressure_gpa": run.pressure_gpa,
        "kept": len(kept), "total": len(run.snapshots), "report": run_report([run]),
        "temperatures_kept": [float(s.temperature) for s in kept],
        "pressures_kept": [float(s.pressure_gpa) for s in kept],
        "atom_label_names": list(getattr(run, "labels", []) or []),
    }
    pending = PendingFile(path)  # the run appears under its name only once complete
    tmp = pending.path
    if kept:
        np.savez_compressed(
            tmp,
            positions=np.stack([s.positions for s in kept]).astype(np.float32),
            cells=np.stack([s.cell for s in kept]),
            origins=np.stack([s.origin for s in kept]),
            temperature=np.array([s.temperature for s in kept], np.float32),
            pressure=np.array([s.pressure_gpa for s in kept], np.float32),
            species=np.array(kept[0].species),
            **({"atom_labels": np.stack([s.atom_labels for s in kept]).astype(np.int8)}
               if kept[0].atom_labels is not None else {}),
        )
    else:
        np.savez_compressed(tmp, positions=np.zeros((0, 0, 3), np.float32), species=np.array([], dtype=str))
    pending.commit()
    write_text(path.with_suffix(".json"), json.dumps(summary, indent=1))
    return summary


def _one_run(cfg: PipelineConfig, runs_dir: Path, spec: PhaseSpec, p: float, seed: int, force: bool,
             log) -> tuple[dict[str, Any], bool, float]:
    """(summary, made now, seconds) of one heating run: the cached one when still current, else a new one."""
    key = run_key(spec, p, seed)
    npz = runs_dir / f"{key}.npz"
    params = run_params(cfg, spec, p, seed)
    cached = None if force else _cached_run(npz, params, log)
    if cached is not None:
        return cached, False, 0.0
    t0 = time.perf_counter()
    try:
        run = _heating_job(cfg, spec, p, seed, runs_dir / f"{key}.log")
        summary = save_run(run, npz, params)
    except LammpsPhaseError as err:
        summary = {"params": params, "phase": spec.name, "label": spec.name, "pressure_gpa": p, "kept": 0, "total": 0,
                   "report": f"{key}: failed: {err}"}
        with atomic_path(npz) as tmp:
            np.savez_compressed(tmp, positions=np.zeros((0, 0, 3), np.float32), species=np.array([], dtype=str))
        write_text(npz.with_suffix(".json"), json.dumps(summary, indent=1))
    return summary, True, time.perf_counter() - t0


def stage_heating(cfg: PipelineConfig, work: Path, force: bool, log=print) -> list[dict[str, Any]]:
    """Every (phase block, pressure, seed) run; ``runs.jobs`` of them at a time (each run is its own process)."""
    from concurrent.futures import ThreadPoolExecutor

    runs_dir = work / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(spec, p, seed) for spec in cfg.phases for p in spec.pressures for split in SPLITS for seed in cfg.seeds[split]]
    jobs.sort(key=lambda job: job[0].variant == "bulk")  # new kinds of run first: their failures show early
    with ThreadPoolExecutor(max_workers=max(1, cfg.jobs)) as pool:
        futures = [pool.submit(_one_run, cfg, runs_dir, spec, p, seed, force, log) for spec, p, seed in jobs]
        summaries = []
        for i, ((spec, p, seed), future) in enumerate(zip(jobs, futures)):
            summary, made, seconds = future.result()
            if made:
                log(f"[heating {i + 1}/{len(jobs)}] {run_key(spec, p, seed)}: kept {summary['kept']}/{summary['total']} "
                    f"snapshots ({seconds:.0f} s)")
            summaries.append(summary)
    write_text(work / "heating_report.txt", "\n".join(s["report"] for s in summaries) + "\n")
    return summaries


# ----------------------------------------------------------------------------- stage 2: datasets


def _params_path(target: Path) -> Path:
    return target.with_name(target.name + ".params.json")


def _record(target: Path, params: dict[str, Any]) -> None:
    """Note what a stage output was made from, so a later run can tell whether it is still current."""
    write_text(_params_path(target), json.dumps(params, indent=1, sort_keys=True))


def _fresh(target: Path, sources: list[Path], params: dict[str, Any]) -> bool:
    """True when ``target`` exists, is newer than every source, and was made with ``params``.

    An output without a record (made by an older version) counts as fresh while it is newer than its
    sources: what cannot be compared is not thrown away.
    """
    if not target.exists():
        return False
    newest = max((s.stat().st_mtime for s in sources if s.exists()), default=0.0)
    if newest > target.stat().st_mtime:
        return False
    record = _params_path(target)
    if not record.exists():
        return True
    return json.loads(record.read_text()) == json.loads(json.dumps(params, sort_keys=True))


def species_indices(cfg: PipelineConfig, species) -> np.ndarray:
    """Element names of a snapshot → indices into ``cfg.elements``; unknown elements are a config error."""
    return element_indices(species, cfg.elements, "add them to `elements` in the config", owner="the config")


def iter_snapshots(cfg: PipelineConfig, work: Path, split: str):
    """(positions, cell, origin, species, labels, temperature, pressure, run_id) of every kept frame of a split.

    ``labels`` is one class index per atom (−1: no label, e.g. crystal atoms that left their sites at an
    interface); ``run_id`` is unique per run."""
    for ci, spec in enumerate(cfg.phases):
        for p in spec.pressures:
            for seed in cfg.seeds[split]:
                npz = work / "runs" / f"{run_key(spec, p, seed)}.npz"
                if not npz.exists():
                    raise LammpsPhaseError(f"heating run {npz.stem} is missing: run the heating stage first")
                data = np.load(npz)
                run_id = seed * 100000 + ci * 100 + spec.pressures.index(p)
                label = cfg.classes.index(spec.name)
                codes = data["atom_labels"] if "atom_labels" in data.files else None
                lut = np.array([label] + ([cfg.classes.index(spec.partner)] if codes is not None else []) + [-1])
                for f in range(len(data["positions"])):
                    n = data["positions"].shape[1]
                    labels = np.full(n, label) if codes is None else lut[codes[f].astype(np.int64)]
                    yield (data["positions"][f].astype(np.float64), data["cells"][f], data["origins"][f],
                           data["species"], labels, float(data["temperature"][f]), float(data["pressure"][f]), run_id)


def stage_datasets(cfg: PipelineConfig, work: Path, force: bool, log=print) -> dict[str, Path]:
    from lammps_phase.data.datasets import EnvironmentSet, SampleSet, sample_environments

    mode = cfg.dataset.get("mode", "samples")
    k = int(cfg.model.get("k", 16))
    points = int(cfg.dataset.get("points", 64))
    per_frame = int(cfg.dataset.get("environments_per_frame", 64))
    paths = {}
    for split in SPLITS:
        path = work / f"{split}_{mode}.h5"
        paths[split] = path
        runs = sorted(work / "runs" / f"{run_key(spec, p, seed)}.npz"
                      for spec in cfg.phases for p in spec.pressures for seed in cfg.seeds[split])
        params = {"runs": [r.stem for r in runs], "classes": cfg.classes, "elements": cfg.elements, "k": k,
                  "mode": mode, "points": points, "environments_per_frame": per_frame}
        if not force and _fresh(path, runs, params):
            continue
        rng = np.random.default_rng(SPLITS.index(split) + 17)
        sets = []
        for pos, cell, origin, species, labels, temp, pres, run_id in iter_snapshots(cfg, work, split):
            sp = species_indices(cfg, species)
            if mode == "samples":
                sets.append(SampleSet.from_snapshot(pos, cell, sp, labels, k, cfg.classes, cfg.elements, origin=origin,
                                                    temperature=temp, pressure=pres, run_id=run_id))
            else:
                sets.append(sample_environments(pos, cell, sp, labels, points, per_frame, rng, cfg.classes, cfg.elements,
                                                origin=origin, temperature=temp, pressure=pres, run_id=run_id))
        if not sets:
            raise LammpsPhaseError(f"no kept snapshots for the {split} split: check the heating report")
        data = (SampleSet if mode == "samples" else EnvironmentSet).concatenate(sets)
        _require_every_class(cfg, data.labels, split, work)
        data.save(path)
        _record(path, params)
        log(f"[datasets] {split}: {len(data)} {mode} → {path}")
    return paths


def _require_every_class(cfg: PipelineConfig, labels: np.ndarray, split: str, work: Path) -> None:
    """A class without data in a split would train nothing or score a meaningless accuracy: refuse it."""
    present = set(np.unique(np.asarray(labels)).tolist())
    empty = [name for i, name in enumerate(cfg.classes) if i not in present]
    if empty:
        raise LammpsPhaseError(
            f"class(es) {', '.join(empty)} have no kept snapshots in the {split} runs (see "
            f"{work / 'heating_report.txt'}): their heating runs failed or every snapshot failed its structural check; "
            f"fix those [[phase]] blocks in {cfg.source} (structure, pressures, temperatures) or remove the class")


def _load_split(path: Path, mode: str):
    from lammps_phase.data.datasets import EnvironmentSet, SampleSet

    return (SampleSet if mode == "samples" else EnvironmentSet).load(path)


# ----------------------------------------------------------------------------- stage 3: training


def stage_train(cfg: PipelineConfig, work: Path, force: bool, output: Path, quiet: bool, log=print):
    from lammps_phase.model import checkpoint as ckpt_io
    from lammps_phase.model.network import ModelConfig
    from lammps_phase.training.loop import TrainConfig, train_model

    ckpt_path = work / "model.pt"
    hist_path = work / "history.json"
    mode = cfg.dataset.get("mode", "samples")
    params = {"model": cfg.model, "train": cfg.train, "classes": cfg.classes, "elements": cfg.elements}
    sources = [work / f"train_{mode}.h5", work / f"val_{mode}.h5"]
    if not force and hist_path.exists() and _fresh(ckpt_path, sources, params):
        log(f"[train] cached: {ckpt_path}")
    else:
        train = _load_split(work / f"train_{mode}.h5", mode)
        val = _load_split(work / f"val_{mode}.h5", mode)
        mcfg = ModelConfig(elements=cfg.elements, num_classes=len(cfg.classes), **cfg.model)
        tcfg = TrainConfig(progress=not quiet, **cfg.train)
        ckpt, hist = train_model(train, val, mcfg, tcfg, log=log)
        from lammps_phase.model.checkpoint import fingerprint

        ckpt.data_fingerprint = fingerprint(train.labels, train.species, val.labels, cfg.source)
        ckpt_io.save(ckpt, ckpt_path)
        write_text(hist_path, json.dumps(hist.to_dict()))
        _record(ckpt_path, params)
    ckpt_io.save(ckpt_io.load(ckpt_path), output)  # usable at once; the report stage adds test metrics
    return ckpt_path


# ----------------------------------------------------------------------------- stage 4: report


def stage_report(cfg: PipelineConfig, work: Path, output: Path, log=print) -> dict[str, Any]:
    """Held-out test runs through the Classifier (the inference path), rotations, then the report files."""
    from lammps_phase.model import checkpoint as ckpt_io
    from lammps_phase.inference.classify import Classifier
    from lammps_phase.model.network import random_rotations
    from lammps_phase.analysis.training import write_training_report

    import torch

    ckpt = ckpt_io.load(work / "model.pt")
    clf = Classifier(ckpt, device="auto")
    from lammps_phase.inference.neighbors import knn
    from lammps_phase.data.variants import interface_distance, surface_depth

    true, pred, temps, press = [], [], [], []
    first_frames = {}
    places: dict[str, list[int]] = {}  # "variant" / "slab depth a-b Å" / "interface ≤ 3 Å" → [correct, atoms]
    kth_max = 0.0  # largest k-th neighbour distance of a bulk test frame: the receptive radius in Å

    def tally(key: str, ok: np.ndarray) -> None:
        c = places.setdefault(key, [0, 0])
        c[0] += int(ok.sum())
        c[1] += int(ok.size)

    for pos, cell, origin, species, labels, temp, pres, run_id in iter_snapshots(cfg, work, "test"):
        spec = cfg.phases[(run_id // 100) % 1000]
        res = clf.classify(pos, cell, species, origin=origin)
        known = labels >= 0
        true.append(labels[known])
        pred.append(res.labels[known])
        temps.append(np.full(known.sum(), temp))
        press.append(np.full(known.sum(), pres))
        ok = res.labels == labels
        tally(spec.variant, ok[known])
        if any(p.potential for p in cfg.phases):  # a mixed-potential config: accuracy per potential too
            tally(f"potential {potential_of(cfg, spec)}", ok[known])
        if spec.variant == "slab":
            depth = surface_depth(pos, cell, origin, spec.axis)
            for lo, hi in ((0, 2), (2, 4), (4, 6), (6, 10), (10, 1e9)):
                sel = known & (depth >= lo) & (depth < hi)
                tally(f"slab, depth {lo}-{hi:g} Å" if hi < 1e9 else f"slab, depth > {lo} Å", ok[sel])
        elif spec.variant == "interface":
            near = known & (interface_distance(pos, cell, origin, spec.axis) <= 3.0)
            tally("interface, atoms ≤ 3 Å from it", ok[near])
        elif spec.variant == "bulk":
            kth_max = max(kth_max, float(knn(pos, clf.k, cell=cell, origin=origin).distances[:, clf.k - 1].max()))
        if spec.variant == "bulk" and (labels == labels[0]).all():  # rotation check on one bulk frame per class
            first_frames.setdefault(int(labels[0]), (pos, cell, origin, species))
    if not true:
        raise LammpsPhaseError("no held-out test snapshots: check the heating report")
    true_a, pred_a = np.concatenate(true), np.concatenate(pred)
    by_place = {k: round(c / n, 4) for k, (c, n) in places.items() if n}
    n_rot = int(cfg.report.get("rotations", 24))
    gen = torch.Generator().manual_seed(0)
    rot_agree = {}
    for label, (pos, cell, origin, species) in first_frames.items():
        base = clf.classify(pos, cell, species, origin=origin).labels
        agree = []
        for rot in random_rotations(n_rot, gen, dtype=torch.float64).numpy():
            res = clf.classify((pos - origin) @ rot.T, cell @ rot.T, species, origin=(0, 0, 0))
            agree.append(float((res.labels == base).mean()))
        rot_agree[cfg.classes[label]] = float(np.mean(agree))
    hist = json.loads((work / "history.json").read_text())
    extra = {
        "rotation_agreement": rot_agree,
        "rotation_agreement_overall": float(np.mean(list(rot_agree.values()))),
        "rotations": n_rot,
        "accuracy by place (held-out runs)": by_place,
        "receptive radius": f"{clf.receptive_hops} hops × {kth_max:.2f} Å (largest k-th neighbour distance of a bulk "
                            f"test frame) = {clf.receptive_hops * kth_max:.1f} Å",
        "potential": ", ".join(dict.fromkeys(potential_of(cfg, spec) for spec in cfg.phases)),
        "heating_report": f"heating_report.txt (copied from {work / 'heating_report.txt'})",
    }
    # what the config says about classes it left out or labels it restricted ([report] dropped / notes tables)
    for key in ("dropped", "notes"):
        if cfg.report.get(key):
            extra[f"{key} (from {Path(cfg.source).name})"] = dict(cfg.report[key])
    report_dir = report_dir_for(output)
    report_dir.mkdir(parents=True, exist_ok=True)
    if (work / "heating_report.txt").exists():
        copy_file(work / "heating_report.txt", report_dir / "heating_report.txt")
    summary = write_training_report(
        report_dir, cfg.classes, true_labels=true_a, predicted=pred_a, temperature=np.concatenate(temps),
        pressure=np.concatenate(press), history=hist, extra=extra, title=f"{cfg.name}: held-out test runs",
    )
    per_class = {c: float((pred_a[true_a == i] == i).mean()) for i, c in enumerate(cfg.classes) if (true_a == i).any()}
    ckpt.metrics.update({
        "test_accuracy": float((true_a == pred_a).mean()),
        "test_per_class": per_class,
        "rotation_agreement": extra["rotation_agreement_overall"],
        "test_atoms": int(len(true_a)),
        "test_by_place": by_place,
        "receptive_radius_angstrom": round(clf.receptive_hops * kth_max, 2),
    })
    ckpt_io.save(ckpt, output)
    log(f"[report] test accuracy {ckpt.metrics['test_accuracy']:.4f}; checkpoint {output}; report {report_dir}")
    return summary


def report_dir_for(output: Path) -> Path:
    """Where the training report of checkpoint ``output`` goes: checkpoints/sio2.pt -> checkpoints/sio2_report/."""
    stem = output.with_suffix("")
    return stem.parent / f"{stem.name}_report"


#: checkpoints shipped with the package (never overwritten without --overwrite)
SHIPPED_CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"
_OUTPUTS_RECORD = "outputs_written.json"


def _digest(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _written_here(work: Path, out: Path) -> bool:
    """Whether this work folder wrote ``out`` as it is now (a rerun after an interrupt may replace it)."""
    try:
        record = json.loads((work / _OUTPUTS_RECORD).read_text())
        return record.get(str(out.resolve())) == _digest(out)
    except (OSError, ValueError, AttributeError):
        return False


def _note_written(work: Path, out: Path) -> None:
    try:
        record = json.loads((work / _OUTPUTS_RECORD).read_text())
        record = record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        record = {}
    record[str(out.resolve())] = _digest(out)
    write_text(work / _OUTPUTS_RECORD, json.dumps(record, indent=1))


def check_outputs(cfg: PipelineConfig, work: Path, out: Path, overwrite: bool, writes_checkpoint: bool = True) -> None:
    """Before any stage runs: the work folder and the checkpoint path can be written, the checkpoint is not an
    input, and an existing checkpoint is replaced only with ``overwrite`` (or when this work folder wrote it;
    a shipped one under checkpoints/ always needs ``overwrite``)."""
    if work.exists() and not work.is_dir():
        raise LammpsPhaseError(f"--workdir {work} is a file: give a folder for the cached runs and datasets")
    inputs = [cfg.source] + [spec.structure for spec in cfg.phases if Path(spec.structure).is_file()]
    check_output(out, inputs=inputs, option="output", create_parent=True)
    report_dir = report_dir_for(out)
    if report_dir.exists() and not report_dir.is_dir():
        raise LammpsPhaseError(f"the report folder {report_dir} of output {out} is a file: move it away or choose "
                               "another output path")
    if not out.exists() or overwrite or not writes_checkpoint:
        return
    shipped = SHIPPED_CHECKPOINTS.is_dir() and same_file(out.resolve().parent, SHIPPED_CHECKPOINTS)
    if shipped or not _written_here(work, out):
        what = "a checkpoint shipped with lammps-phase" if shipped else "an existing file this work folder did not write"
        raise LammpsPhaseError(
            f"output {out} is {what}: lammps-phase-train does not overwrite it; pass --overwrite to replace it, "
            f"or choose another path with --output or `output = ...` in {cfg.source}")


def run_pipeline(config: str, stage: str = "all", workdir: Optional[str] = None, output: Optional[str] = None,
                 force: bool = False, quiet: bool = False, overwrite: bool = False) -> int:
    cfg = load_config(config)
    work = Path(workdir or Path("cache") / cfg.name)
    out = Path(output or cfg.output)
    todo = STAGES if stage == "all" else (stage,)
    # before any heating run: nothing is lost to a typo in the config
    check_outputs(cfg, work, out, overwrite, writes_checkpoint=bool({"train", "report"} & set(todo)))
    work.mkdir(parents=True, exist_ok=True)
    log = (lambda m: None) if quiet else print
    for st in todo:
        t0 = time.perf_counter()
        if st == "heating":
            stage_heating(cfg, work, force, log)
        elif st == "datasets":
            stage_datasets(cfg, work, force, log)
        elif st == "train":
            stage_train(cfg, work, force, out, quiet, log)
            _note_written(work, out)
        else:
            stage_report(cfg, work, out, log)
            _note_written(work, out)
        log(f"[{st}] done in {time.perf_counter() - t0:.0f} s")
    return 0


__all__ = ["load_config", "run_pipeline", "PipelineConfig", "PhaseSpec"]
