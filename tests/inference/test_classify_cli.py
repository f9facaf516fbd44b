"""Classifier API, checkpoint safety, the `lammps-phase classify/info` CLI and every bad-input message."""

import gzip
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from lammps_phase import Classifier
from lammps_phase.model import checkpoint as ckpt_io
from lammps_phase.cli import main
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.formats import DumpWriter, Frame, read_dump
from lammps_phase.inference.memory import LabelMemory
from lammps_phase.inference.neighbors import knn
from lammps_phase.cell import lammps_box_to_cell
from lammps_phase.data.structures import build, supercell

from conftest import SIO2_CLASSES


@pytest.fixture(scope="module")
def quartz():
    c = supercell(build("alpha_quartz"), 12.0)
    rng = np.random.default_rng(0)
    return c.positions + rng.normal(scale=0.05, size=c.positions.shape), c.cell, np.array(c.symbols)


@pytest.fixture(scope="module")
def clf(random_sio2_checkpoint):
    return Classifier.load(random_sio2_checkpoint, device="cpu")


def write_frames(path, frames_pos, cell, symbols, timesteps=(0,), tilt=(0.0, 0.0, 0.0)):
    types = np.where(symbols == "Si", 1, 2)
    with DumpWriter(path) as w:
        for ts, pos in zip(timesteps, frames_pos):
            cols = {"id": np.arange(1, len(pos) + 1), "type": types, "x": pos[:, 0], "y": pos[:, 1], "z": pos[:, 2]}
            w.write(Frame(ts, np.zeros(3), np.diag(cell).copy(), np.array(tilt), (True, True, True), cols))


def test_classify_api_shapes_and_consistency(clf, quartz):
    pos, cell, sym = quartz
    res = clf.classify(pos, cell, sym)
    assert res.labels.shape == (len(pos),) and res.labels.dtype == np.int32
    assert ((res.labels >= 0) & (res.labels < len(clf.classes))).all()
    assert ((res.confidence > 1.0 / len(clf.classes) - 1e-6) & (res.confidence <= 1.0)).all()
    assert len(set(res.labels.tolist())) > 1, "random weights should not give one label everywhere"
    # periodic images are the same configuration
    shifted = pos + cell[0] * np.where(np.arange(len(pos)) % 2, 1, -1)[:, None]
    np.testing.assert_array_equal(clf.classify(shifted, cell, sym).labels, res.labels)
    # LAMMPS types + type map give the same answer as element names
    types = np.where(sym == "Si", 1, 2)
    np.testing.assert_array_equal(clf.classify(pos, cell, types, type_map=["Si", "O"]).labels, res.labels)
    # LAMMPS box form equals the cell form
    lo = np.array([-3.0, 2.0, 1.0])
    lres = clf.classify_lammps_box(pos + lo, lo, lo + np.diag(cell), sym)
    np.testing.assert_array_equal(lres.labels, res.labels)
    # fractions add up
    assert abs(sum(res.fractions().values()) - 1.0) < 1e-9


def test_triclinic_box_equals_orthogonal_equivalent(clf, quartz):
    pos, cell, sym = quartz
    res = clf.classify(pos, cell, sym)
    # the same lattice described with a tilted cell: b' = b + a (an integer combination) is the same periodic solid
    lx = cell[0, 0]
    cell_t, origin = lammps_box_to_cell((0, 0, 0), np.diag(cell), xy=lx, xz=0.0, yz=0.0)
    res_t = clf.classify(pos, cell_t, sym, origin=origin)
    np.testing.assert_array_equal(res_t.labels, res.labels)


def test_threshold_marks_low_confidence_as_other(clf, quartz):
    pos, cell, sym = quartz
    res = clf.classify(pos, cell, sym)
    thr = float(np.median(res.confidence))
    low = clf.classify(pos, cell, sym, threshold=thr)
    assert (low.labels[res.confidence < thr] == -1).all()
    np.testing.assert_array_equal(low.labels[res.confidence >= thr], res.labels[res.confidence >= thr])
    assert 0 < low.fractions()["other"] < 1


def test_device_auto_is_cpu_without_cuda(clf):
    if not torch.cuda.is_available():
        assert clf.device.type == "cpu"


# ---------- bad input: one clear message each ----------

def test_nan_coordinates(clf, quartz):
    pos, cell, sym = quartz
    bad = pos.copy()
    bad[7, 1] = np.nan
    with pytest.raises(LammpsPhaseError, match="7"):
        clf.classify(bad, cell, sym)
    bad[7, 1] = np.inf
    with pytest.raises(LammpsPhaseError, match="(?i)inf|finite|nan"):
        clf.classify(bad, cell, sym)


def test_types_missing_from_type_map(clf, quartz):
    pos, cell, sym = quartz
    types = np.where(sym == "Si", 1, 3)
    with pytest.raises(LammpsPhaseError, match=r"type\(s\) 3 are not in the type map"):
        clf.classify(pos, cell, types, type_map=["Si", "O"])


def test_too_few_atoms_says_how_many(clf):
    pos = np.random.default_rng(1).random((5, 3)) * 4
    with pytest.raises(LammpsPhaseError, match=r"5 atoms.*13|13.*5 atoms|only 5"):
        clf.classify(pos, None, ["Si"] * 5, pbc=(False, False, False))


def test_checkpoint_for_other_elements(random_sio2_checkpoint):
    with pytest.raises(LammpsPhaseError, match="knows elements Si O.*Cu"):
        Classifier.load(random_sio2_checkpoint, type_map=["Cu"])


def test_corrupt_missing_and_unsafe_checkpoints(tmp_path, random_sio2_checkpoint):
    with pytest.raises(LammpsPhaseError, match="does not exist"):
        ckpt_io.load(tmp_path / "nope.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(random_sio2_checkpoint.read_bytes()[:2000])
    with pytest.raises(LammpsPhaseError, match="corrupt"):
        ckpt_io.load(corrupt)
    payload = torch.load(random_sio2_checkpoint, weights_only=True)
    missing = dict(payload)
    del missing["state_dict"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(LammpsPhaseError, match="lacks state_dict"):
        ckpt_io.load(tmp_path / "missing.pt")
    future = dict(payload, format_version=99)
    torch.save(future, tmp_path / "future.pt")
    with pytest.raises(LammpsPhaseError, match="format version 99"):
        ckpt_io.load(tmp_path / "future.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(LammpsPhaseError):
        ckpt_io.load(tmp_path / "evil.pt")


# ---------- CLI ----------

def test_cli_classify_multiframe_gz(tmp_path, capsys, random_sio2_checkpoint, quartz, clf):
    pos, cell, sym = quartz
    rng = np.random.default_rng(2)
    frames = [pos, pos + rng.normal(scale=0.05, size=pos.shape)]
    src = tmp_path / "in.dump.gz"
    write_frames(src, frames, cell, sym, timesteps=(0, 100))
    out = tmp_path / "out.dump"
    rc = main(["classify", str(src), "--model", str(random_sio2_checkpoint), "--types", "Si O", "-o", str(out), "-q"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "alpha_quartz" in text and "other" in text
    got = list(read_dump(out))
    assert [f.timestep for f in got] == [0, 100]
    for f, p in zip(got, frames):
        assert list(f.columns)[-2:] == ["phase", "phase_conf"]
        expect = clf.classify(p, cell, sym)
        np.testing.assert_array_equal(f.columns["phase"], expect.labels)
        np.testing.assert_allclose(f.columns["phase_conf"], expect.confidence, atol=1e-4)
    # one table row per frame with fractions that sum to one
    rows = [line.split() for line in text.splitlines() if line.split() and line.split()[0] in ("0", "100")]
    assert len(rows) == 2
    for r in rows:
        assert abs(sum(map(float, r[1:])) - 1.0) < 1e-3


def test_classifier_labels_from_the_memory_blend(clf, quartz):
    """Labels are the argmax of the blended calibrated probabilities, confidence its maximum; weight 1 reproduces
    the labelling without memory; the memory is written in place."""
    positions, cell, species = quartz
    plain = clf.classify(positions, cell, species, threshold=0.0)
    assert len(np.unique(plain.labels)) > 1, "a test model that gives one label everywhere proves nothing"
    memory = LabelMemory.empty(len(positions), len(clf.classes), weight=1.0)
    same = clf.classify(positions, cell, species, threshold=0.0, memory=memory)
    assert np.array_equal(same.labels, plain.labels)
    np.testing.assert_allclose(same.confidence, plain.confidence, atol=1e-6)
    np.testing.assert_allclose(memory.values.sum(axis=1), 1.0, atol=1e-5)

    earlier = np.random.default_rng(3).dirichlet(np.ones(len(clf.classes)), size=len(positions))
    memory = LabelMemory(earlier.copy(), weight=0.5)
    blended = clf.classify(positions, cell, species, threshold=0.0, memory=memory)
    logits = clf.logits(clf.species_indices(species),
                               knn(positions, clf.k, cell=cell))
    expected = 0.5 * torch.softmax(logits.float() / clf.temperature, dim=-1).numpy() + 0.5 * earlier
    np.testing.assert_allclose(memory.values, expected, atol=1e-6)
    assert np.array_equal(blended.labels, expected.argmax(axis=1))
    np.testing.assert_allclose(blended.confidence, expected.max(axis=1), atol=1e-6)
    assert not np.array_equal(blended.labels, plain.labels)  # the memory did change labels


def test_cli_classify_with_memory_follows_atoms_by_id(tmp_path, capsys, random_sio2_checkpoint, quartz, clf):
    """--memory W: each atom's probabilities are averaged over the frames, matched by id even when a frame lists
    its atoms in another order; the labels equal the Classifier's with one LabelMemory in id order."""
    pos, cell, sym = quartz
    rng = np.random.default_rng(5)
    frames = [pos + rng.normal(scale=0.15, size=pos.shape) for _ in range(3)]
    shuffle = rng.permutation(len(pos))
    types = np.where(sym == "Si", 1, 2)
    src = tmp_path / "in.dump"
    with DumpWriter(src) as w:
        for ts, p in zip((0, 100, 200), frames):
            order = shuffle if ts == 200 else np.arange(len(p))  # the last frame unsorted
            cols = {"id": order + 1, "type": types[order], "x": p[order, 0], "y": p[order, 1], "z": p[order, 2]}
            w.write(Frame(ts, np.zeros(3), np.diag(cell).copy(), np.zeros(3), (True, True, True), cols))
    out = tmp_path / "out.dump"
    assert main(["classify", str(src), "--model", str(random_sio2_checkpoint), "--types", "Si O", "-o", str(out), "-q",
                 "--memory", "0.5"]) == 0
    memory = LabelMemory.empty(len(pos), len(clf.classes), 0.5)
    changed = 0
    for got, p in zip(read_dump(out), frames):
        expect = clf.classify(p, cell, sym, memory=memory)
        by_id = np.argsort(got.columns["id"])
        np.testing.assert_array_equal(got.columns["phase"][by_id], expect.labels)
        np.testing.assert_allclose(got.columns["phase_conf"][by_id], expect.confidence, atol=1e-4)
        changed += int((expect.labels != clf.classify(p, cell, sym).labels).sum())
    assert changed > 0, "the memory never changed a label: the test proves nothing"
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(["classify", str(src), "--model", str(random_sio2_checkpoint), "-o", str(tmp_path / "x.dump"),
              "--types", "Si O", "--memory", "0"])
    assert stopped.value.code == 2 and "--memory 0 must lie in (0, 1]" in capsys.readouterr().err


def test_cli_classify_says_how_to_get_the_faster_kernels(tmp_path, capsys, monkeypatch, random_sio2_checkpoint, quartz):
    """Without kernels built ahead of time, a large frame gets one line naming the command that builds them; with
    them, or with -q, nothing. Labels are the same either way."""
    from lammps_phase import cli
    from lammps_phase.model import aot, kernels

    pos, cell, sym = quartz
    src = tmp_path / "in.dump"
    write_frames(src, [pos, pos], cell, sym, timesteps=(0, 100))
    monkeypatch.setenv(aot.KERNEL_CACHE_ENV, str(tmp_path / "no-kernels"))  # an empty kernel cache
    monkeypatch.setattr(kernels, "compile_available", lambda device="cpu": True)  # as where g++ exists
    argv = ["classify", str(src), "--model", str(random_sio2_checkpoint), "--types", "Si O"]
    monkeypatch.setattr(cli, "KERNEL_HINT_ATOMS", len(pos) + 1)  # a small frame: no hint
    assert main(argv + ["-o", str(tmp_path / "a.dump")]) == 0
    assert "lammps-phase kernels" not in capsys.readouterr().err
    monkeypatch.setattr(cli, "KERNEL_HINT_ATOMS", len(pos))
    assert main(argv + ["-o", str(tmp_path / "b.dump")]) == 0
    err = capsys.readouterr().err
    assert err.count(f"lammps-phase kernels {random_sio2_checkpoint}") == 1  # once, not once per frame
    assert main(argv + ["-o", str(tmp_path / "c.dump"), "-q"]) == 0
    assert "lammps-phase kernels" not in capsys.readouterr().err
    labels = [f.columns["phase"] for name in "abc" for f in read_dump(tmp_path / f"{name}.dump")]
    assert all(np.array_equal(labels[0], other) for other in labels[1:])


def test_cli_info_json(random_sio2_checkpoint, capsys):
    assert main(["info", str(random_sio2_checkpoint), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["classes"] == {str(i): c for i, c in enumerate(SIO2_CLASSES)}
    assert info["elements"] == ["Si", "O"] and info["k"] == 12 and info["receptive_field_hops"] == 4  # 3 EdgeConv layers + the bond-order inputs
    assert main(["info", str(random_sio2_checkpoint)]) == 0
    assert "receptive field" in capsys.readouterr().out


def _cli_error(capsys, argv) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("lammps-phase: error:") or "error:" in err
    assert len(err.splitlines()) == 1, err
    return err


def test_cli_bad_inputs(tmp_path, capsys, random_sio2_checkpoint, quartz):
    pos, cell, sym = quartz
    ck = str(random_sio2_checkpoint)
    out = str(tmp_path / "o.dump")
    empty = tmp_path / "empty.dump"
    empty.write_text("")
    assert "empty" in _cli_error(capsys, ["classify", str(empty), "--model", ck, "--types", "Si O", "-o", out, "-q"])
    good = tmp_path / "good.dump"
    write_frames(good, [pos], cell, sym)
    lines = good.read_text().splitlines()
    trunc = tmp_path / "trunc.dump"
    trunc.write_text("\n".join(lines[:30]) + "\n")
    assert "truncated" in _cli_error(capsys, ["classify", str(trunc), "--model", ck, "--types", "Si O", "-o", out, "-q"])
    nocoord = tmp_path / "nocoord.dump"
    header = [ln.replace("ITEM: ATOMS id type x y z", "ITEM: ATOMS id type vx vy vz") for ln in lines]
    nocoord.write_text("\n".join(header) + "\n")
    assert "coordinate" in _cli_error(capsys, ["classify", str(nocoord), "--model", ck, "--types", "Si O", "-o", out, "-q"])
    unknown = tmp_path / "thing.bin"
    unknown.write_bytes(b"\x00\x01binary stuff\n")
    assert "format" in _cli_error(capsys, ["classify", str(unknown), "--model", ck, "--types", "Si O", "-o", out, "-q"])
    assert "type" in _cli_error(capsys, ["classify", str(good), "--model", ck, "--types", "Si", "-o", out, "-q"])
    assert "Cu" in _cli_error(capsys, ["classify", str(good), "--model", ck, "--types", "Cu Cu", "-o", out, "-q"])
    nan = tmp_path / "nan.dump"
    nan.write_text(good.read_text().replace(lines[12], " ".join(lines[12].split()[:2] + ["nan", "1.0", "1.0"]), 1))
    msg = _cli_error(capsys, ["classify", str(nan), "--model", ck, "--types", "Si O", "-o", out, "-q"])
    assert "nan" in msg.lower() or "finite" in msg.lower()
    assert "does not exist" in _cli_error(capsys, ["classify", str(good), "--model", "nope.pt", "-o", out, "-q"])


def test_console_script_exit_code(tmp_path, random_sio2_checkpoint):
    """The installed entry point exits non-zero with one line on stderr."""
    empty = tmp_path / "e.dump"
    empty.write_text("")
    proc = subprocess.run(
        [sys.executable, "-m", "lammps_phase.cli", "classify", str(empty), "--model", str(random_sio2_checkpoint),
         "-o", str(tmp_path / "o.dump"), "-q"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "empty" in proc.stderr


def test_gzip_output(tmp_path, random_sio2_checkpoint, quartz):
    pos, cell, sym = quartz
    src = tmp_path / "in.dump"
    write_frames(src, [pos], cell, sym)
    out = tmp_path / "out.dump.gz"
    assert main(["classify", str(src), "--model", str(random_sio2_checkpoint), "--types", "Si O", "-o", str(out), "-q"]) == 0
    with gzip.open(out, "rt") as f:
        assert "phase phase_conf" in f.read(2000)
