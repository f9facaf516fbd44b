"""The heating stage of the pipeline: one checked MD run per (phase block, pressure, seed), cached on disk.

A heating run is the unit of resumption: each is saved under ``WORK/runs/KEY.npz`` (kept snapshots) with a JSON
summary that records the parameters it was made with, and is reused while those are unchanged. A run that fails in
LAMMPS is recorded as failed (no snapshots), so one bad block does not stop the others.
:func:`iter_snapshots` reads the kept frames of a split back, one label per atom.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

import numpy as np

from lammps_phase.atomic_write import PendingFile, atomic_path, write_text
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.training.config import SPLITS, PhaseSpec, PipelineConfig, block_seeds, potential_of

if TYPE_CHECKING:
    from lammps_phase.data.checks import PhaseRun

#: one kept frame of a split: positions, cell, origin, species, per-atom labels, temperature, pressure, run id
Frame = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float, int]


def _is_library(spec: PhaseSpec) -> bool:
    from lammps_phase.data import structures

    return spec.structure in structures.names()


def crystal_name(spec: PhaseSpec) -> str:
    """The name of the crystal :func:`build_crystal` makes (a run's ``phase``): the library structure's, else the
    block's own."""
    return spec.structure if _is_library(spec) else spec.name


def build_crystal(spec: PhaseSpec) -> Any:
    """The crystal a block names: a library structure (built with its ``lattice``) or the first frame of a file."""
    from lammps_phase.data import structures

    if _is_library(spec):
        return structures.build(spec.structure, **spec.lattice)
    if spec.lattice:
        raise LammpsPhaseError(f"phase {spec.name}: 'lattice' applies to library structures, not to the file {spec.structure}")
    from lammps_phase.inference.formats import read_frames
    from lammps_phase.data.structures import Crystal

    frame = next(iter(read_frames(spec.structure)))
    return Crystal(crystal_name(spec), frame.cell(), frame.positions() - frame.boxlo, tuple(frame.species(None)),
                   spec.structure)


def run_key(spec: PhaseSpec, pressure: float, seed: int) -> str:
    """Cache name of one run; bulk runs keep their historical names."""
    tag = "" if spec.variant == "bulk" else f"{spec.variant}-{spec.axis}_"
    if spec.variant == "interface":
        tag = f"interface-{spec.partner}-{spec.axis}_"
    elif spec.variant == "sphere":
        tag = f"{spec.geometry}-r{spec.radius:g}_"
    if spec.potential:  # blocks of one phase in several potentials must not share a cache file
        tag = f"{spec.potential}_{tag}"
    return f"{spec.name}_{tag}{pressure:g}GPa_seed{seed}"


def _heating_job(cfg: PipelineConfig, spec: PhaseSpec, pressure: float, seed: int, log_path: Path):
    from lammps_phase.data import heating

    common = dict(seed=seed, snapshot_every_ps=cfg.snapshot_every_ps,
                  supercell_min_length=spec.min_length or cfg.supercell_min_length,
                  log_path=log_path, ranks=cfg.ranks)
    crystal = build_crystal(spec)
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
        partner = build_crystal(PhaseSpec(name=spec.partner, kind="crystal", structure=spec.partner, pressures=[]))
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
    params = {"spec": spec_fields, "pressure_gpa": pressure, "seed": seed, "potential": potential_of(cfg, spec),
              "supercell_min_length": cfg.supercell_min_length, "snapshot_every_ps": cfg.snapshot_every_ps}
    from lammps_phase.data.variants import INTERFACE_LABELS, QUARTZ_TILT_PHASES, STRAINED_CHECK, VOID_LABELS

    # what decides a run's kept snapshots or its atoms' labels: runs judged or labelled otherwise are remade
    if spec.variant == "strained":
        params["check"] = STRAINED_CHECK
    if spec.variant == "interface" and spec.partner in ("amorphous", "melt"):
        params["labels"] = INTERFACE_LABELS
    if spec.variant == "sphere" and spec.geometry == "void" and crystal_name(spec) in QUARTZ_TILT_PHASES:
        params["labels"] = VOID_LABELS
    return params


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


def save_run(run: PhaseRun, path: Path, params: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Kept snapshots as one npz (all frames of a run have the same atoms) + a JSON summary."""
    from lammps_phase.data.heating import heating_summary

    kept = run.kept
    summary = {"params": params,
        "phase": run.phase, "label": run.label, "potential": run.potential, "pressure_gpa": run.pressure_gpa,
        "kept": len(kept), "total": len(run.snapshots), "report": heating_summary([run]),
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
            # the relaxed crystal's cell: what strain, density change, ... of a frame are measured against
            reference_cell=np.asarray(run.reference.cell),
            **({"atom_labels": np.stack([s.atom_labels for s in kept]).astype(np.int8)}
               if kept[0].atom_labels is not None else {}),
            # interface runs: how far each atom sat from the crystal's lattice, time-averaged (how sure its label is)
            **({"lattice_distance": np.stack([s.lattice_distance for s in kept]).astype(np.float32)}
               if kept[0].lattice_distance is not None else {}),
        )
    else:
        np.savez_compressed(tmp, positions=np.zeros((0, 0, 3), np.float32), species=np.array([], dtype=str))
    pending.commit()
    write_text(path.with_suffix(".json"), json.dumps(summary, indent=1))
    return summary


def one_run(cfg: PipelineConfig, runs_dir: Path, spec: PhaseSpec, p: float, seed: int, force: bool,
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


def stage_heating(cfg: PipelineConfig, work: Path, force: bool, log=print,
                  splits: Sequence[str] = SPLITS) -> list[dict[str, Any]]:
    """Every (phase block, pressure, seed) run of ``splits``; ``runs.jobs`` of them at a time (each run is its own
    process). The report of a subset of the splits is heating_report_<split>.txt, of all of them heating_report.txt."""
    from concurrent.futures import ThreadPoolExecutor

    runs_dir = work / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(spec, p, seed) for spec in cfg.phases for p in spec.pressures for split in splits
            for seed in block_seeds(cfg, spec, split)]
    jobs.sort(key=lambda job: job[0].variant == "bulk")  # new kinds of run first: their failures show early
    with ThreadPoolExecutor(max_workers=max(1, cfg.jobs)) as pool:
        futures = [pool.submit(one_run, cfg, runs_dir, spec, p, seed, force, log) for spec, p, seed in jobs]
        summaries = []
        for i, ((spec, p, seed), future) in enumerate(zip(jobs, futures)):
            summary, made, seconds = future.result()
            if made:
                log(f"[heating {i + 1}/{len(jobs)}] {run_key(spec, p, seed)}: kept {summary['kept']}/{summary['total']} "
                    f"snapshots ({seconds:.0f} s)")
            summaries.append(summary)
    name = "heating_report.txt" if set(splits) == set(SPLITS) else f"heating_report_{'_'.join(splits)}.txt"
    write_text(work / name, "\n".join(s["report"] for s in summaries) + "\n")
    return summaries


def encode_run_id(seed: int, block: int, pressure_index: int) -> int:
    """The run id :func:`iter_snapshots` gives a run: seed, phase block and pressure in one int."""
    return seed * 100000 + block * 100 + pressure_index


def decode_run_id(run_id: int) -> tuple[int, int, int]:
    """(seed, phase block index, pressure index) of a run id from :func:`encode_run_id`."""
    return run_id // 100000, (run_id // 100) % 1000, run_id % 100


def run_reference_cell(cfg: PipelineConfig, work: Path, run_id: int) -> Optional[np.ndarray]:
    """The relaxed cell a run (``run_id`` from :func:`iter_snapshots`) started from; None for runs saved before
    it was kept (remake them with ``--stage heating --force`` to get it)."""
    seed, block, p = decode_run_id(run_id)
    spec = cfg.phases[block]
    with np.load(work / "runs" / f"{run_key(spec, spec.pressures[p], seed)}.npz") as data:
        return np.array(data["reference_cell"]) if "reference_cell" in data.files else None


def iter_snapshots(cfg: PipelineConfig, work: Path, split: str,
                   only: Optional[Callable[[PhaseSpec], bool]] = None) -> Iterator[Frame]:
    """(positions, cell, origin, species, labels, temperature, pressure, run_id) of every kept frame of a split.

    ``labels`` is one class index per atom (−1: no label, e.g. crystal atoms that left their sites at an
    interface); ``run_id`` is unique per run. ``only``: the blocks to read (the others need not be heated); labels
    and run ids stay those of the whole config."""
    for ci, spec in enumerate(cfg.phases):
        if only is not None and not only(spec):
            continue
        for p in spec.pressures:
            for seed in block_seeds(cfg, spec, split):
                npz = work / "runs" / f"{run_key(spec, p, seed)}.npz"
                if not npz.exists():
                    raise LammpsPhaseError(f"heating run {npz.stem} is missing: run the heating stage first")
                data = np.load(npz)
                run_id = encode_run_id(seed, ci, spec.pressures.index(p))
                label = cfg.classes.index(spec.name)
                codes = data["atom_labels"] if "atom_labels" in data.files else None
                partner = codes is not None and spec.variant == "interface"  # code 1: the other side's class
                lut = np.array([label] + ([cfg.classes.index(spec.partner)] if partner else []) + [-1])
                for f in range(len(data["positions"])):
                    n = data["positions"].shape[1]
                    labels = np.full(n, label) if codes is None else lut[codes[f].astype(np.int64)]
                    yield (data["positions"][f].astype(np.float64), data["cells"][f], data["origins"][f],
                           data["species"], labels, float(data["temperature"][f]), float(data["pressure"][f]), run_id)
