"""`lammps-phase-train`: a tiny end-to-end training (two phases, small cells, few steps), caching, errors."""

import os
import time

import numpy as np
import pytest

from lammps_phase.model import checkpoint as ckpt_io
from lammps_phase.cli import train_main
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.training.config import load_config

from conftest import TINY


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("tiny")
    (work / "tiny.toml").write_text(TINY)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        t0 = time.perf_counter()
        assert train_main(["tiny.toml", "-q"]) == 0
        first = time.perf_counter() - t0
    finally:
        os.chdir(cwd)
    return work, first


def test_tiny_end_to_end_training(tiny_run):
    work, seconds = tiny_run
    ck = ckpt_io.load(work / "tiny.pt")
    assert ck.classes == ["alpha_quartz", "stishovite"]
    # held-out test run (seed 3) through the Classifier: quartz and stishovite are easy to tell apart
    assert ck.metrics["test_accuracy"] >= 0.95
    # [calibrate] consensus: the threshold was chosen on the blended probabilities, and the weight travels with it
    assert ck.default_consensus == 0.5 and 0.0 < ck.calibration["accuracy_network"] <= 1.0
    assert set(ck.metrics["test_per_class"]) == {"alpha_quartz", "stishovite"}
    assert ck.metrics["rotation_agreement"] >= 0.95
    measured = {"bulk", "bulk, alpha_quartz", "bulk, stishovite", "strained", "potential bks_dsf",
                "potential tersoff_munetoh"}
    assert set(ck.metrics["test_by_place"]) == measured  # accuracy where it was measured
    # a mixed-potential config: each potential's places on their own (the strained block is Tersoff's)
    by_potential = ck.metrics["test_by_potential_place"]
    assert set(by_potential) == {"bks_dsf", "tersoff_munetoh"}
    assert set(by_potential["bks_dsf"]) == {"bulk", "bulk, alpha_quartz", "bulk, stishovite"}
    assert set(by_potential["tersoff_munetoh"]) == {"strained"}
    assert by_potential["tersoff_munetoh"]["strained"] == ck.metrics["test_by_place"]["strained"]
    assert set(ck.metrics["test_by_potential_class"]["tersoff_munetoh"]) == {"alpha_quartz"}
    assert 4.0 < ck.metrics["receptive_radius_angstrom"] < 25.0  # 4 hops × the 12th-neighbour distance
    assert ck.data_fingerprint
    assert (work / "cache" / "tiny" / "model.pt").exists()
    assert not (work / "cache" / "tiny" / "train_state.pt").exists()  # the epoch state goes once model.pt holds all
    report = work / "tiny_report"
    for name in ("report.json", "report.md", "confusion.png", "accuracy_vs_temperature.png", "loss_curves.png"):
        assert (report / name).stat().st_size > 0, name
    heating = (work / "cache" / "tiny" / "heating_report.txt").read_text()
    assert "alpha_quartz" in heating and "kept" in heating


def test_rerun_is_cached_and_single_stage_runs(tiny_run):
    work, first = tiny_run
    runs = sorted((work / "cache" / "tiny" / "runs").glob("*.npz"))
    assert len(runs) == 9  # 3 [[phase]] blocks × 3 seeds
    stamp = {p: p.stat().st_mtime for p in runs}
    cwd = os.getcwd()
    os.chdir(work)
    try:
        assert train_main(["tiny.toml", "-q", "--stage", "heating"]) == 0
        assert train_main(["tiny.toml", "-q", "--stage", "datasets"]) == 0
    finally:
        os.chdir(cwd)
    assert {p: p.stat().st_mtime for p in runs} == stamp  # nothing was rerun
    kept = np.load(runs[0])["positions"]
    assert kept.ndim == 3 and kept.shape[0] > 0


def test_one_split_heats_and_builds_only_its_runs_then_calibrates(tiny_run, capsys):
    """--split val: the validation runs and val_samples.h5 without the others (a test run missing is not heated),
    then `lammps-phase calibrate` on it; --split with a stage that reads every split is refused."""
    from lammps_phase.cli import main

    work, _ = tiny_run
    cache = work / "cache" / "tiny"
    test_run, val_run = cache / "runs" / "alpha_quartz_0GPa_seed3.npz", cache / "runs" / "alpha_quartz_0GPa_seed2.npz"
    moved = test_run.with_suffix(".kept")
    test_run.rename(moved)
    val_run.unlink()
    train_stamp = (cache / "train_samples.h5").stat().st_mtime
    (cache / "val_samples.h5").unlink()
    cwd = os.getcwd()
    os.chdir(work)
    try:
        assert train_main(["tiny.toml", "-q", "--stage", "heating", "--split", "val"]) == 0
        assert val_run.exists() and not test_run.exists()
        assert train_main(["tiny.toml", "-q", "--stage", "datasets", "--split", "val"]) == 0
        assert train_main(["tiny.toml", "-q", "--stage", "train", "--split", "val"]) == 2
        assert "--split selects runs for the heating and datasets stages only" in capsys.readouterr().err
        assert main(["calibrate", "tiny.pt", "--on", str(cache / "val_samples.h5"), "--consensus", "0.3",
                     "-o", "recalibrated.pt"]) == 0
    finally:
        os.chdir(cwd)
        moved.rename(test_run)
    assert val_run.exists() and (cache / "val_samples.h5").exists()
    assert (cache / "heating_report_val.txt").exists()
    assert (cache / "train_samples.h5").stat().st_mtime == train_stamp  # the other splits untouched
    before, after = ckpt_io.load(work / "tiny.pt"), ckpt_io.load(work / "recalibrated.pt")
    assert after.default_consensus == 0.3 and after.domain == before.domain and after.metrics == before.metrics


def test_resume_after_interrupt_redoes_only_the_missing_run(tiny_run):
    work, _ = tiny_run
    runs_dir = work / "cache" / "tiny" / "runs"
    victim = runs_dir / "stishovite_0GPa_seed2.npz"
    others = {p: p.stat().st_mtime for p in runs_dir.glob("*.npz") if p != victim}
    victim.unlink()
    cwd = os.getcwd()
    os.chdir(work)
    try:
        assert train_main(["tiny.toml", "-q", "--stage", "heating"]) == 0
    finally:
        os.chdir(cwd)
    assert victim.exists()
    assert {p: p.stat().st_mtime for p in others} == others


def test_changed_phase_parameters_remake_only_that_phase_and_its_datasets(tiny_run):
    work, _ = tiny_run
    cache = work / "cache" / "tiny"
    runs_dir = cache / "runs"
    before = {p.name: p.stat().st_mtime for p in runs_dir.glob("*.npz")}
    datasets = {p.name: p.stat().st_mtime for p in cache.glob("*_samples.h5")}
    changed = TINY.replace("t_end = 600\nps = 0.4\n\n[dataset]", "t_end = 500\nps = 0.4\n\n[dataset]")
    assert changed != TINY  # the stishovite ramp (last phase) now ends at 500 K
    (work / "tiny_changed.toml").write_text(changed)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        assert train_main(["tiny_changed.toml", "-q", "--stage", "heating"]) == 0
        assert train_main(["tiny_changed.toml", "-q", "--stage", "datasets"]) == 0
    finally:
        os.chdir(cwd)
    after = {p.name: p.stat().st_mtime for p in runs_dir.glob("*.npz")}
    remade = {name for name in after if after[name] != before[name]}
    assert remade == {f"stishovite_0GPa_seed{s}.npz" for s in (1, 2, 3)}
    assert all(p.stat().st_mtime > datasets[p.name] for p in cache.glob("*_samples.h5"))  # rebuilt from the new runs


def test_distilled_training_through_the_pipeline(tiny_run, capsys):
    """[train] distill + teachers: the teachers' probabilities are made once and kept, the checkpoint says whom it
    learned from, and a missing teacher stops the run before any heating."""
    import shutil

    work, _ = tiny_run
    student = work / "cache" / "tiny_student"
    shutil.copytree(work / "cache" / "tiny", student, ignore=shutil.ignore_patterns("model.pt*", "history.json"))
    config = 'base = "tiny.toml"\nname = "tiny_student"\noutput = "tiny_student.pt"\n[train]\ndistill = 0.5\n'
    (work / "student.toml").write_text(config + 'teachers = ["tiny.pt"]\n')
    (work / "orphan.toml").write_text(config.replace("tiny_student", "orphan") + 'teachers = ["gone.pt"]\n')
    cwd = os.getcwd()
    os.chdir(work)
    try:
        assert train_main(["student.toml", "-q", "--stage", "train"]) == 0
        made = (student / "teacher_train.npy").stat().st_mtime
        assert train_main(["student.toml", "--stage", "train"]) == 0
        assert train_main(["orphan.toml", "-q"]) == 2
    finally:
        os.chdir(cwd)
    out = capsys.readouterr()
    assert "[train] cached" in out.out
    assert "teacher checkpoint gone.pt not found" in out.err
    assert not (work / "cache" / "orphan" / "runs").exists()  # refused before the first heating run
    assert (student / "teacher_train.npy").stat().st_mtime == made
    probs = np.load(student / "teacher_train.npy")
    from lammps_phase.data.datasets import SampleSet

    assert probs.shape == (len(SampleSet.load(student / "train_samples.h5").labels), 2)
    ck = ckpt_io.load(work / "tiny_student.pt")
    assert ck.metrics["distilled_from"] == {"weight": 0.5, "teachers": ["tiny.pt"]}


def test_fine_tuning_through_the_pipeline(tiny_run, capsys, monkeypatch):
    """[train] init: the training starts from a shipped checkpoint and says so in the one it writes; a start of
    another network stops the run before any heating."""
    import shutil

    work, _ = tiny_run
    tuned = work / "cache" / "tiny_tuned"
    shutil.copytree(work / "cache" / "tiny", tuned, ignore=shutil.ignore_patterns("model.pt*", "history.json"))
    config = 'base = "tiny.toml"\nname = "tiny_tuned"\noutput = "tiny_tuned.pt"\n[train]\nepochs = 1\nlr = 5e-4\n'
    (work / "tuned.toml").write_text(config + 'init = "tiny.pt"\n')
    alien = config.replace("tiny_tuned", "alien") + 'init = "tiny.pt"\n[model]\nembed_dim = 4\n'
    (work / "alien.toml").write_text(alien)
    monkeypatch.chdir(work)
    assert train_main(["tuned.toml", "--stage", "train"]) == 0
    assert train_main(["alien.toml", "-q"]) == 2
    out = capsys.readouterr()
    assert "starting from tiny.pt: val accuracy" in out.out
    assert "init checkpoint tiny.pt was built with other [model] settings: embed_dim = 8 there, 4 here" in out.err
    assert not (work / "cache" / "alien" / "runs").exists()  # refused before the first heating run
    start = ckpt_io.load(work / "tiny.pt")
    recorded = ckpt_io.load(work / "tiny_tuned.pt").metrics["fine_tuned_from"]
    assert recorded["path"] == "tiny.pt"
    assert recorded["fingerprint"] == ckpt_io.fingerprint((work / "tiny.pt").read_bytes())
    assert 0.0 < recorded["val_accuracy"] <= 1.0 and start.metrics["val_accuracy"] > 0


def test_config_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.replace('seeds = { train = [1], val = [2], test = [3] }', 'seeds = { train = [1], val = [1], test = [3] }'))
    with pytest.raises(LammpsPhaseError, match="disjoint"):
        load_config(bad)
    bad.write_text(TINY.replace('name = "stishovite"', 'name = "stishovite"\nkind = "plasma"'))
    with pytest.raises(LammpsPhaseError, match="plasma"):
        load_config(bad)
    bad.write_text("name = 'x'\n")
    with pytest.raises(LammpsPhaseError, match="lacks the key 'elements'"):
        load_config(bad)
    assert train_main([str(tmp_path / "missing.toml")]) == 2


def test_two_blocks_may_feed_one_class_but_not_at_the_same_pressure(tmp_path):
    extra = '\n[[phase]]\nname = "alpha_quartz"\npressure_gpa = [{p}]\nt_start = 300\nt_end = 900\nps = 0.4\n'
    cfg_path = tmp_path / "two.toml"
    cfg_path.write_text(TINY + extra.format(p=8.0))
    cfg = load_config(cfg_path)
    assert cfg.classes == ["alpha_quartz", "stishovite"]  # the third block adds runs, not a class
    assert len(cfg.phases) == 4  # TINY has three blocks
    cfg_path.write_text(TINY + extra.format(p=0.0))
    with pytest.raises(LammpsPhaseError, match="alpha_quartz at 0 GPa appears in two"):
        load_config(cfg_path)
