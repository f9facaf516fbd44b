"""The checkpoint report: numbers equal hand counts of a held-out set with planted errors; figures are real images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.analysis.training import write_training_report

CLASSES = ["alpha-quartz", "coesite", "stishovite"]
COLD, HOT = 300.0, 3000.0


def _held_out_set():
    """Cold atoms are all right; the hot ones carry every planted error.

    class 0: 80 cold right; 20 hot: 10 right, 10 read as class 1
    class 1: 40 cold right; 20 hot: 5 right, 10 read as class 2, 5 'other'
    class 2: 30 cold right; 10 hot right
    """
    rows = []  # (true, predicted, temperature, pressure)
    rows += [(0, 0, COLD, 0.0)] * 80 + [(0, 0, HOT, 10.0)] * 10 + [(0, 1, HOT, 10.0)] * 10
    rows += [(1, 1, COLD, 0.0)] * 40 + [(1, 1, HOT, 10.0)] * 5 + [(1, 2, HOT, 10.0)] * 10 + [(1, -1, HOT, 10.0)] * 5
    rows += [(2, 2, COLD, 0.0)] * 30 + [(2, 2, HOT, 10.0)] * 10
    table = np.array(rows)[np.random.default_rng(3).permutation(len(rows))]  # order must not matter
    return table[:, 0].astype(int), table[:, 1].astype(int), table[:, 2], table[:, 3]


def _history():
    return {
        "train_loss": [1.2, 0.7, 0.45, 0.4], "train_ce": [1.1, 0.6, 0.4, 0.36], "train_rot": [0.1, 0.1, 0.05, 0.04],
        "val_loss": [1.0, 0.6, 0.5, 0.55], "val_accuracy": [0.5, 0.8, 0.9, 0.88],
        "batch_ce": list(np.linspace(1.3, 0.3, 40) + 0.05 * np.sin(np.arange(40))),
        "best_epoch": 2, "seconds": 12.5,
    }


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("report")
    true, pred, temp, pres = _held_out_set()
    extra = {"rotation_agreement": 0.97, "second_potential_accuracy": {"Tersoff": 0.81, "Vashishta 1990": 0.74},
             "dropped_classes": ["cristobalite"], "drop_reasons": {"cristobalite": "transforms above 1500 K"}}
    report = write_training_report(outdir, CLASSES, true_labels=true, predicted=pred, temperature=temp, pressure=pres,
                                   history=_history(), extra=extra, title="synthetic")
    return outdir, report


def test_overall_and_per_class_accuracy_equal_hand_counts(written):
    outdir, report = written
    assert json.loads((outdir / "report.json").read_text()) == report
    assert report["n_atoms"] == 200
    assert report["overall_accuracy"] == pytest.approx(175 / 200)
    assert report["other_fraction"] == pytest.approx(5 / 200)
    assert report["per_class"]["alpha-quartz"] == {"accuracy": pytest.approx(0.9), "support": 100, "predicted_other": 0}
    assert report["per_class"]["coesite"] == {"accuracy": pytest.approx(0.75), "support": 60, "predicted_other": 5}
    assert report["per_class"]["stishovite"] == {"accuracy": pytest.approx(1.0), "support": 40, "predicted_other": 0}


def test_confusion_matrix_has_named_rows_and_other_column(written):
    _, report = written
    conf = report["confusion"]
    assert conf["rows"] == CLASSES
    assert conf["columns"] == CLASSES + ["other"]
    assert conf["counts"] == [[90, 10, 0, 0], [0, 45, 10, 5], [0, 0, 40, 0]]


def test_temperature_bins_isolate_the_hot_errors(written):
    _, report = written
    t = report["per_temperature"]
    assert t["width"] == 250.0  # 300–3000 K in at most 12 round bins
    assert t["edges"][0] == 250.0 and t["edges"][-1] == 3000.0 and len(t["edges"]) == 12
    assert t["support"][0] == 150 and t["accuracy"][0] == pytest.approx(1.0)
    assert t["support"][-1] == 50 and t["accuracy"][-1] == pytest.approx(25 / 50)
    assert all(s == 0 and a is None for s, a in zip(t["support"][1:-1], t["accuracy"][1:-1]))
    hot = {name: (t["per_class"][name]["accuracy"][-1], t["per_class"][name]["support"][-1]) for name in CLASSES}
    assert hot == {"alpha-quartz": (pytest.approx(0.5), 20), "coesite": (pytest.approx(0.25), 20),
                   "stishovite": (pytest.approx(1.0), 10)}
    cold = [t["per_class"][name]["support"][0] for name in CLASSES]
    assert cold == [80, 40, 30]
    assert [t["per_class"][name]["accuracy"][0] for name in CLASSES] == [1.0, 1.0, 1.0]


def test_pressure_bins(written):
    _, report = written
    p = report["per_pressure"]
    assert p["width"] == 1.0 and p["edges"][0] == 0.0 and p["edges"][-1] == 10.0
    assert (p["support"][0], p["accuracy"][0]) == (150, 1.0)
    assert (p["support"][-1], p["accuracy"][-1]) == (50, 0.5)


def test_history_and_extra_are_kept(written):
    _, report = written
    assert report["history"]["val_accuracy"] == [0.5, 0.8, 0.9, 0.88]
    assert report["history"]["best_epoch"] == 2 and len(report["history"]["batch_ce"]) == 40
    assert report["extra"]["second_potential_accuracy"] == {"Tersoff": 0.81, "Vashishta 1990": 0.74}


def test_markdown_names_classes_tables_extras_and_figures(written):
    outdir, _ = written
    md = (outdir / "report.md").read_text()
    for name in CLASSES:
        assert f"| {name} |" in md
    assert "87.5 %" in md  # overall accuracy
    assert "| 2750–3000 | 50 | 50.0 % | 50.0 % | 25.0 % | 100.0 % |" in md
    assert "| Tersoff | 0.81 |" in md and "**rotation_agreement**: 0.97" in md
    assert "transforms above 1500 K" in md
    for png in ("confusion.png", "accuracy_vs_temperature.png", "loss_curves.png"):
        assert f"]({png})" in md


@pytest.mark.parametrize("name", ["confusion.png", "accuracy_vs_temperature.png", "loss_curves.png"])
def test_figures_are_non_blank_images(written, name):
    import matplotlib.image as mpimg

    image = mpimg.imread(written[0] / name)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 300
    pixels = image[..., :3]
    assert pixels.std() > 0.05
    packed = np.round(255 * pixels).astype(np.int64) @ np.array([65536, 256, 1])
    assert len(np.unique(packed)) > 20  # text, lines and colour map, not one flat colour


def test_bad_inputs_fail_with_a_clear_message(tmp_path):
    true, pred, temp, pres = _held_out_set()
    with pytest.raises(LammpsPhaseError, match="predicted must lie in -1..2"):
        write_training_report(tmp_path, CLASSES, true_labels=true, predicted=pred + 5, temperature=temp,
                              pressure=pres, history={})
    with pytest.raises(LammpsPhaseError, match="temperature has 199"):
        write_training_report(tmp_path, CLASSES, true_labels=true, predicted=pred, temperature=temp[:-1],
                              pressure=pres, history={})
    assert not (tmp_path / "report.json").exists()


def test_empty_history_still_gives_a_report(tmp_path):
    true, pred, temp, pres = _held_out_set()
    report = write_training_report(tmp_path, CLASSES, true_labels=true, predicted=pred, temperature=temp,
                                   pressure=pres, history={})
    assert report["history"]["train_loss"] == [] and report["extra"] == {}
    assert (tmp_path / "loss_curves.png").stat().st_size > 0
