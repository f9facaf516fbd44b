"""`lammps-phase-train CONFIG.toml`: heating runs → datasets → training → report, cached and resumable.

Each stage writes its results under the work folder and is skipped when they exist, so a rerun after
an interrupt continues where it stopped (a heating run is the unit of resumption: :mod:`.runs`). Runs are split
into train / validation / test by seed, never by neighbouring frames of one run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from lammps_phase.atomic_write import atomic_open, copy_file, write_text
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.training.config import SPLITS, PipelineConfig, block_seeds, load_config, potential_of, species_indices
from lammps_phase.training.outputs import check_outputs, note_written, report_dir_for
from lammps_phase.training.runs import decode_run_id, iter_snapshots, run_key, run_reference_cell, stage_heating

STAGES = ("heating", "datasets", "train", "calibrate", "report")

# stage 1, the heating runs, is lammps_phase.training.runs.stage_heating


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


def stage_datasets(cfg: PipelineConfig, work: Path, force: bool, log=print,
                   splits: Sequence[str] = SPLITS) -> dict[str, Path]:
    """<split>_<mode>.h5 for each of ``splits`` from its kept snapshots, remade when its runs or settings changed."""
    from lammps_phase.data.datasets import EnvironmentSet, SampleSet, sample_environments

    mode = cfg.dataset.get("mode", "samples")
    k = int(cfg.model.get("k", 16))
    points = int(cfg.dataset.get("points", 64))
    per_frame = int(cfg.dataset.get("environments_per_frame", 64))
    paths = {}
    for split in splits:
        path = work / f"{split}_{mode}.h5"
        paths[split] = path
        runs = sorted(work / "runs" / f"{run_key(spec, p, seed)}.npz"
                      for spec in cfg.phases for p in spec.pressures for seed in block_seeds(cfg, spec, split))
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


def _model_config(cfg: PipelineConfig):
    """The network a config trains: its [model] settings, elements and classes."""
    from lammps_phase.model.network import ModelConfig

    return ModelConfig(elements=cfg.elements, num_classes=len(cfg.classes), **cfg.model)


def stage_train(cfg: PipelineConfig, work: Path, force: bool, output: Path, quiet: bool, log=print):
    from lammps_phase.model import checkpoint as ckpt_io
    from lammps_phase.training.loop import TrainConfig, train_model

    ckpt_path = work / "model.pt"
    hist_path = work / "history.json"
    mode = cfg.dataset.get("mode", "samples")
    params = {"model": cfg.model, "train": cfg.train, "classes": cfg.classes, "elements": cfg.elements}
    sources = [work / f"train_{mode}.h5", work / f"val_{mode}.h5"] + [Path(t) for t in cfg.train.get("teachers", [])]
    sources += [Path(cfg.train["init"])] if cfg.train.get("init") else []  # a replaced start retrains
    if not force and hist_path.exists() and _fresh(ckpt_path, sources, params):
        log(f"[train] cached: {ckpt_path}")
    else:
        train = _load_split(work / f"train_{mode}.h5", mode)
        val = _load_split(work / f"val_{mode}.h5", mode)
        mcfg = _model_config(cfg)
        tcfg = TrainConfig(progress=not quiet, **cfg.train)
        state_path = work / "train_state.pt"  # the state after each epoch: an interrupted training resumes
        if force:
            state_path.unlink(missing_ok=True)
        teacher = _teacher_probabilities(cfg, work, train, log) if tcfg.distill > 0 else None
        ckpt, hist = train_model(train, val, mcfg, tcfg, log=log, state_path=state_path, teacher=teacher)
        from lammps_phase.model.checkpoint import fingerprint

        ckpt.data_fingerprint = fingerprint(train.labels, train.species, val.labels, cfg.source)
        if teacher is not None:
            ckpt.metrics["distilled_from"] = {"weight": tcfg.distill, "teachers": list(tcfg.teachers)}
        ckpt_io.save(ckpt, ckpt_path)
        write_text(hist_path, json.dumps(hist.to_dict()))
        _record(ckpt_path, params)
        state_path.unlink(missing_ok=True)  # model.pt now holds the result
    ckpt_io.save(ckpt_io.load(ckpt_path), output)  # usable at once; the report stage adds test metrics
    return ckpt_path


def _teacher_probabilities(cfg: PipelineConfig, work: Path, train, log=print) -> np.ndarray:
    """The teachers' mean probabilities for every training atom (lammps_phase.training.distillation), kept in the
    work folder and remade when the teachers or the training data change."""
    from lammps_phase.model.checkpoint import fingerprint
    from lammps_phase.training.distillation import load_teachers, teacher_probabilities

    paths = list(cfg.train["teachers"])
    target = work / "teacher_train.npy"
    params = {"teachers": {p: fingerprint(Path(p).read_bytes()) for p in paths},  # present: run_pipeline checked
              "train": fingerprint(np.asarray(train.labels), np.ascontiguousarray(train.vectors))}
    if _fresh(target, [Path(p) for p in paths], params):
        probs = np.load(target)
        if probs.shape == (len(train.labels), len(cfg.classes)):
            log(f"[train] teachers' probabilities cached: {target}")
            return probs
    t0 = time.perf_counter()
    teachers = load_teachers(paths, cfg.classes, cfg.elements, train.k)
    probs = teacher_probabilities(teachers, train)
    with atomic_open(target, "wb") as fh:
        np.save(fh, probs)
    _record(target, params)
    known = np.asarray(train.labels) >= 0
    agree = float((probs[known].argmax(axis=1) == np.asarray(train.labels)[known]).mean())
    log(f"[train] {len(teachers)} teachers' probabilities for {len(probs)} training atoms in "
        f"{time.perf_counter() - t0:.0f} s (their mean agrees with {100 * agree:.2f} % of the labels) → {target}")
    return probs


# ----------------------------------------------------------------------------- stage 4: calibration


def stage_calibrate(cfg: PipelineConfig, work: Path, output: Path, log=print) -> dict[str, Any]:
    """Temperature scaling and default threshold from the validation runs, the training domain from the training
    runs (lammps_phase.training.calibration), the threshold chosen with the [calibrate] consensus weight and
    pooling rounds; stored in
    the checkpoint, which the report stage then scores."""
    from lammps_phase.model import checkpoint as ckpt_io
    from lammps_phase.training.calibration import calibrate_checkpoint, training_domain

    mode = cfg.dataset.get("mode", "samples")
    if mode != "samples":
        log(f"[calibrate] skipped: dataset mode {mode!r} has no whole snapshots to calibrate on")
        return {}
    ckpt = ckpt_io.load(work / "model.pt")
    calibration = calibrate_checkpoint(ckpt, _load_split(work / "val_samples.h5", mode),
                                       float(cfg.calibrate.get("consensus", 0.0)), int(cfg.calibrate.get("pooling", 0)))
    domain = training_domain(ckpt, _load_split(work / "train_samples.h5", mode))
    ckpt.calibration, ckpt.domain = calibration.to_dict(), domain.to_dict()
    ckpt_io.save(ckpt, work / "model.pt")
    ckpt_io.save(ckpt, output)
    log(f"[calibrate] temperature {calibration.temperature:.3f}, threshold {calibration.threshold:.3f}"
        + (f" with consensus {calibration.consensus:g} (network alone: accuracy {calibration.accuracy_network:.4f})"
           if calibration.consensus else "") + (f", pooling {calibration.pooling} rounds" if calibration.pooling else "")
        + " "
        f"(validation ECE {calibration.ece_before:.4f} → {calibration.ece_after:.4f}; "
        f"{100 * calibration.other_fraction:.2f} % below it, accuracy {calibration.accuracy:.4f} → "
        f"{calibration.accuracy_with_threshold:.4f})")
    return ckpt.calibration


# ----------------------------------------------------------------------------- stage 5: report


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
    from lammps_phase.training.places import PlaceTally

    true, pred, temps, press, unthresholded = [], [], [], [], []
    first_frames = {}
    tally = PlaceTally(cfg.classes)
    mixed = any(p.potential for p in cfg.phases)
    per_potential: dict[str, dict[str, list[int]]] = {}  # potential → class → [correct, atoms] (mixed configs)
    place_by_potential: dict[str, PlaceTally] = {}  # potential → its own places (mixed configs)
    radius = 0.0  # largest receptive radius (Å) of a bulk test frame
    reference_cells: dict[int, Optional[np.ndarray]] = {}  # run id → relaxed cell (strained runs)

    for pos, cell, origin, species, labels, temp, pres, run_id in iter_snapshots(cfg, work, "test"):
        spec = cfg.phases[decode_run_id(run_id)[1]]
        res = clf.classify(pos, cell, species, origin=origin, threshold=0.0)
        known = labels >= 0
        unthresholded.append(res.labels[known] == labels[known])
        res.labels = np.where(res.confidence < clf.threshold, -1, res.labels)  # the checkpoint's default threshold
        true.append(labels[known])
        pred.append(res.labels[known])
        temps.append(np.full(known.sum(), temp))
        press.append(np.full(known.sum(), pres))
        if spec.variant == "strained" and run_id not in reference_cells:
            reference_cells[run_id] = run_reference_cell(cfg, work, run_id)
        potential = potential_of(cfg, spec) if mixed else None  # mixed configs: accuracy per potential, too
        tally.add(spec, pos, cell, origin, labels, res.labels, temp, pres, reference_cells.get(run_id), potential,
                  species=species)
        ok = res.labels == labels
        if mixed:  # by class and by place in each potential
            place_by_potential.setdefault(potential, PlaceTally(cfg.classes)).add(
                spec, pos, cell, origin, labels, res.labels, temp, pres, reference_cells.get(run_id), species=species)
            for code in np.unique(labels[known]):
                mine = known & (labels == code)
                c = per_potential.setdefault(potential, {}).setdefault(cfg.classes[int(code)], [0, 0])
                c[0] += int(ok[mine].sum())
                c[1] += int(mine.sum())
        if spec.variant == "bulk":
            radius = max(radius, clf.receptive_radius(knn(pos, clf.k, cell=cell, origin=origin)))
        if spec.variant == "bulk" and (labels == labels[0]).all():  # rotation check on one bulk frame per class
            first_frames.setdefault(int(labels[0]), (pos, cell, origin, species))
    if not true:
        raise LammpsPhaseError("no held-out test snapshots: check the heating report")
    true_a, pred_a = np.concatenate(true), np.concatenate(pred)
    by_place = tally.by_place()
    by_potential = {pot: {name: round(c / n, 4) for name, (c, n) in classes.items()} for pot, classes in per_potential.items()}
    places_by_potential = {pot: t.by_place() for pot, t in place_by_potential.items()}
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
        **tally.tables(),
        **({"accuracy by potential and class (held-out runs)": by_potential} if by_potential else {}),
        **{f"accuracy by place, {pot} (held-out runs)": places for pot, places in places_by_potential.items()},
        "receptive radius": f"{radius:.1f} Å: {clf.receptive_hops} hops to the {clf.hop_neighbors} nearest neighbours "
                            "(sum of each hop's largest neighbour distance in a bulk test frame)",
        "potential": ", ".join(dict.fromkeys(potential_of(cfg, spec) for spec in cfg.phases)),
        "calibration": (f"temperature {clf.temperature:.3f}; default threshold {clf.threshold:.3f}: accuracy "
                        f"{float(np.concatenate(unthresholded).mean()):.4f} without it, "
                        f"{float((true_a == pred_a).mean()):.4f} with it (atoms below it count as wrong); "
                        f"{100 * float((pred_a == -1).mean()):.2f} % of held-out atoms labelled other"
                        if ckpt.calibration else "none (uncalibrated checkpoint)"),
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
        "test_accuracy_without_threshold": float(np.concatenate(unthresholded).mean()),
        "test_other_fraction": float((pred_a == -1).mean()),
        "test_per_class": per_class,
        "rotation_agreement": extra["rotation_agreement_overall"],
        "test_atoms": int(len(true_a)),
        "test_by_place": by_place,
        **({"test_by_potential_class": by_potential} if by_potential else {}),
        **({"test_by_potential_place": places_by_potential} if places_by_potential else {}),
        "receptive_radius_angstrom": round(radius, 2),
    })
    ckpt_io.save(ckpt, output)
    log(f"[report] test accuracy {ckpt.metrics['test_accuracy']:.4f}; checkpoint {output}; report {report_dir}")
    return summary


def run_pipeline(config: str, stage: str = "all", workdir: Optional[str] = None, output: Optional[str] = None,
                 force: bool = False, quiet: bool = False, overwrite: bool = False,
                 splits: Optional[Sequence[str]] = None) -> int:
    """The stages ``stage`` ("all" or one of STAGES) of a config; ``splits`` limits the heating and datasets stages
    to those splits' runs (e.g. ["val"] to recalibrate a checkpoint with `lammps-phase calibrate`)."""
    cfg = load_config(config)
    if splits is not None and not {"heating", "datasets"} >= ({stage} if stage != "all" else set(STAGES)):
        raise LammpsPhaseError("--split selects runs for the heating and datasets stages only: give --stage heating "
                               "or --stage datasets (training, calibration and report read every split)")
    splits = tuple(splits or SPLITS)
    work = Path(workdir or Path("cache") / cfg.name)
    out = Path(output or cfg.output)
    todo = STAGES if stage == "all" else (stage,)
    # before any heating run: nothing is lost to a typo in the config
    check_outputs(cfg, work, out, overwrite, writes_checkpoint=bool({"train", "calibrate", "report"} & set(todo)))
    if "train" in todo and cfg.train.get("teachers"):
        from lammps_phase.training.distillation import load_teachers

        load_teachers(cfg.train["teachers"], cfg.classes, cfg.elements, int(cfg.model.get("k", 16)))
    if "train" in todo and cfg.train.get("init"):  # the start of a fine-tuning fits this network
        from lammps_phase.training.warm_start import initial_checkpoint

        initial_checkpoint(cfg.train["init"], _model_config(cfg), "segmentation", cfg.classes)
    work.mkdir(parents=True, exist_ok=True)
    log = (lambda m: None) if quiet else print
    for st in todo:
        t0 = time.perf_counter()
        if st == "heating":
            stage_heating(cfg, work, force, log, splits)
        elif st == "datasets":
            stage_datasets(cfg, work, force, log, splits)
        elif st == "train":
            stage_train(cfg, work, force, out, quiet, log)
            note_written(work, out)
        elif st == "calibrate":
            stage_calibrate(cfg, work, out, log)
            note_written(work, out)
        else:
            stage_report(cfg, work, out, log)
            note_written(work, out)
        log(f"[{st}] done in {time.perf_counter() - t0:.0f} s")
    return 0


__all__ = ["run_pipeline", "stage_datasets", "stage_train", "stage_calibrate", "stage_report", "STAGES"]
