"""Ensembles: several checkpoints read as one (mean calibrated probabilities), their file, CLI and refusals."""

import numpy as np
import pytest
import torch

from lammps_phase import Classifier
from lammps_phase.cli import main
from lammps_phase.data.datasets import SampleSet
from lammps_phase.data.structures import build, supercell
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.neighbors import knn
from lammps_phase.inference.ensemble import EnsembleClassifier, lead_checkpoint, read_ensemble, write_ensemble
from lammps_phase.model import checkpoint as ckpt_io

from conftest import SIO2_CLASSES, make_random_checkpoint


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    folder = tmp_path_factory.mktemp("members")
    paths = []
    for seed, temperature in ((1, 0.7), (2, 1.3)):
        path = make_random_checkpoint(folder / f"m{seed}.pt", seed=seed)
        ck = ckpt_io.load(path)
        ck.calibration = {"temperature": temperature, "threshold": 0.4}
        ckpt_io.save(ck, path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def quartz():
    c = supercell(build("alpha_quartz"), 12.0)
    rng = np.random.default_rng(3)  # disordered enough that two random networks read atoms differently
    return c.positions + rng.normal(scale=0.3, size=c.positions.shape), c.cell, list(c.symbols)


def test_labels_are_those_of_the_mean_calibrated_probabilities(members, quartz):
    pos, cell, symbols = quartz
    singles = [Classifier.load(p, device="cpu", check_domain=False) for p in members]
    probs = []
    for clf in singles:
        sp = clf.species_indices(symbols)
        probs.append(clf.probabilities(clf.logits(sp, knn(pos, clf.k, cell=cell))))
    mean = np.mean(probs, axis=0)
    ens = EnsembleClassifier([ckpt_io.load(p) for p in members], {"temperature": 1.0}, threshold=0.0, device="cpu")
    res = ens.classify(pos, cell, symbols)
    np.testing.assert_array_equal(res.labels, mean.argmax(axis=1))
    np.testing.assert_allclose(res.confidence, mean.max(axis=1), atol=1e-5)
    for p in probs:  # the members read the atoms differently, and the ensemble is neither of them: a real test
        assert np.abs(p - mean).max() > 0.05
    # the ensemble's own temperature sharpens or softens the mean; labels stay
    sharp = EnsembleClassifier([ckpt_io.load(p) for p in members], {"temperature": 0.5}, threshold=0.0,
                               device="cpu").classify(pos, cell, symbols)
    np.testing.assert_array_equal(sharp.labels, res.labels)
    assert sharp.confidence.mean() > res.confidence.mean()
    assert ens.kernels.startswith("2 networks")


def test_an_ensemble_of_one_checkpoint_twice_is_that_checkpoint(members, quartz):
    pos, cell, symbols = quartz
    ck = ckpt_io.load(members[0])
    one = Classifier(ck, device="cpu", threshold=0.0).classify(pos, cell, symbols)
    twice = EnsembleClassifier([ck, ck], {"temperature": 1.0}, threshold=0.0, device="cpu").classify(pos, cell, symbols)
    np.testing.assert_array_equal(twice.labels, one.labels)
    np.testing.assert_allclose(twice.confidence, one.confidence, atol=1e-5)


def test_file_round_trip_calibration_and_cli(members, quartz, tmp_path, capsys):
    pos, cell, symbols = quartz
    clf = Classifier.load(members[0], device="cpu")
    labels = clf.classify(pos, cell, symbols, threshold=0.0).labels  # something the ensemble can be fitted on
    val = SampleSet.concatenate([SampleSet.from_snapshot(pos + np.random.default_rng(s).normal(scale=0.03, size=pos.shape),
                                                         cell, clf.species_indices(symbols), labels, 12, SIO2_CLASSES,
                                                         ["Si", "O"]) for s in range(3)])
    path = tmp_path / "sub" / "ens.toml"
    path.parent.mkdir()
    calibration = write_ensemble(path, members, val)
    assert set(calibration) == {"temperature", "threshold"} and calibration["temperature"] > 0
    paths, read = read_ensemble(path)
    assert [p.resolve() for p in paths] == [p.resolve() for p in members]  # stored relative to the file
    assert read == pytest.approx(calibration, rel=1e-5)
    loaded = Classifier.load(path, device="cpu")
    assert isinstance(loaded, EnsembleClassifier)
    assert loaded.threshold == pytest.approx(calibration["threshold"], rel=1e-5)
    assert loaded.classes == SIO2_CLASSES
    assert lead_checkpoint(path).data_fingerprint == ckpt_io.load(members[0]).data_fingerprint  # classes etc.
    assert lead_checkpoint(members[1]).classes == SIO2_CLASSES  # a checkpoint leads itself
    assert main(["info", str(path)]) == 0
    assert "mean calibrated probabilities of 2 checkpoints" in capsys.readouterr().out
    out = tmp_path / "ens2.toml"
    assert main(["ensemble", str(out), *map(str, members)]) == 0
    assert "uncalibrated" in capsys.readouterr().out
    assert read_ensemble(out)[1] == {}
    assert main(["ensemble", str(tmp_path / "ens.pt"), *map(str, members)]) == 2
    assert "ends in .toml" in capsys.readouterr().err


def test_bad_ensembles_are_refused_with_the_reason(members, tmp_path):
    bad = tmp_path / "bad.toml"
    cases = {
        'members = ["m.pt"]': "at least 2 checkpoint paths",
        f'members = ["{members[0]}", "gone.pt"]': "gone.pt not found",
        f'members = ["{members[0]}", "{members[1]}"]\nweights = [1, 2]': "unknown keys",
        f'members = ["{members[0]}", "{members[1]}"]\n[calibration]\ntemperature = -1.0': "temperature must be positive",
        f'members = ["{members[0]}", "{members[1]}"]\n[calibration]\nthreshold = "high"': "as numbers",
        'members = [': "cannot be read as TOML",
        f'members = ["{members[0]}", "{members[1]}"]\ncalibration = 0.5': "must be a table",
    }
    for text, message in cases.items():
        bad.write_text(text)
        with pytest.raises(LammpsPhaseError, match=message):
            Classifier.load(bad)
    other = make_random_checkpoint(tmp_path / "other.pt", classes=["alpha_quartz", "melt"])
    with pytest.raises(LammpsPhaseError, match="same classes"):
        EnsembleClassifier([ckpt_io.load(members[0]), ckpt_io.load(other)], device="cpu")
    with pytest.raises(LammpsPhaseError, match="at least 2"):
        EnsembleClassifier([ckpt_io.load(members[0])], device="cpu")
    ens = EnsembleClassifier([ckpt_io.load(p) for p in members], device="cpu")
    with pytest.raises(LammpsPhaseError, match="local mode takes one checkpoint"):
        ens.logits(np.zeros(1, np.int64), None, halo=object())


def test_the_shipped_ensemble_reads_like_its_members():
    """checkpoints/sio2_ensemble.toml: its members exist, share the shipped model's classes, and it is calibrated."""
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[2] / "checkpoints"
    members, calibration = read_ensemble(shipped / "sio2_ensemble.toml")
    assert len(members) == 3 and members[0].resolve() == (shipped / "sio2.pt").resolve()
    assert 0.3 < calibration["threshold"] < 0.9 and calibration["temperature"] > 0
    ens = Classifier.load(shipped / "sio2_ensemble.toml", device="cpu")
    assert ens.classes == ckpt_io.load(shipped / "sio2.pt").classes
    c = supercell(build("stishovite"), 12.0)
    res = ens.classify(c.positions, c.cell, list(c.symbols))
    assert (res.labels == ens.classes.index("stishovite")).mean() >= 0.99


def test_classify_cli_with_an_ensemble_file(members, quartz, tmp_path):
    """`lammps-phase classify --model ENSEMBLE.toml` writes the ensemble's labels."""
    from lammps_phase.inference import formats

    pos, cell, symbols = quartz
    data = tmp_path / "quartz.data"
    formats.write_lammps_data(data, pos, cell, symbols, ["Si", "O"])
    ens = tmp_path / "pair.toml"
    write_ensemble(ens, members)
    out = tmp_path / "labelled.dump"
    assert main(["classify", str(data), "--model", str(ens), "--types", "Si O", "-o", str(out), "-q"]) == 0
    frame = next(iter(formats.read_dump(out)))
    expect = Classifier.load(ens, device="cpu").classify(frame.positions(), frame.cell(), frame.species(["Si", "O"]),
                                                         origin=frame.boxlo)
    np.testing.assert_array_equal(frame.columns["phase"].astype(np.int32), expect.labels)
