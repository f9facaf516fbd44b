"""Distillation: soft targets in the loss, the teachers' probabilities, a student that follows its teachers."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lammps_phase import Classifier
from lammps_phase.data.synthetic import synthetic_samples
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.model import checkpoint as ckpt_io
from lammps_phase.training.distillation import load_teachers, teacher_probabilities
from lammps_phase.training.loop import TrainConfig, combined_loss, evaluate, train_model

from test_loop import CLASSES, small_cfg, trained  # noqa: F401  (trained: the teacher's training, a fixture)


def test_soft_targets_blend_label_and_teacher():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 3)
    labels = torch.tensor([0, 1, 2, -1, 1, 0])
    hard = combined_loss(logits, labels, 1.0, 1.0)[1]
    onehot = torch.nn.functional.one_hot(labels.clamp(min=0), 3).float()
    # a teacher that says the label is the label: any blend is the plain cross entropy
    torch.testing.assert_close(combined_loss(logits, labels, 1.0, 1.0, soft=onehot, distill=0.7)[1], hard)
    soft = torch.softmax(torch.randn(6, 3), dim=-1)
    full = combined_loss(logits, labels, 1.0, 1.0, soft=soft, distill=1.0)[1]
    logp = torch.log_softmax(logits, dim=-1)
    known = labels != -1
    expect = -(soft[known] * logp[:, known]).sum(-1).mean()
    torch.testing.assert_close(full, expect)  # unlabelled atoms take no part, teacher or not
    half = combined_loss(logits, labels, 1.0, 1.0, soft=soft, distill=0.5)[1]
    torch.testing.assert_close(half, 0.5 * hard + 0.5 * full)
    # the loss is smallest where the student's probabilities are the blended targets
    q = 0.5 * onehot + 0.5 * soft
    at_target = q.log().unsqueeze(0).expand(2, 6, 3).clone().requires_grad_(True)
    combined_loss(at_target, labels, 1.0, 1.0, soft=soft, distill=0.5)[0].backward()
    assert at_target.grad.abs().max() < 1e-6


def test_distillation_settings_are_checked():
    with pytest.raises(LammpsPhaseError, match="both distill > 0 and a list of teacher"):
        TrainConfig(distill=0.5)
    with pytest.raises(LammpsPhaseError, match="both distill > 0 and a list of teacher"):
        TrainConfig(teachers=["a.pt"])
    with pytest.raises(LammpsPhaseError, match=r"distill must lie in \[0, 1\]"):
        TrainConfig(distill=1.5, teachers=["a.pt"])


@pytest.fixture(scope="module")
def teacher(trained, tmp_path_factory):
    """test_loop's synthetic training (≥ 0.95 on held-out samples there), calibrated to a temperature of 0.8."""
    ckpt = ckpt_io.load(trained[0])
    ckpt.calibration = {"temperature": 0.8}
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    ckpt_io.save(ckpt, path)
    return path, synthetic_samples(CLASSES, 12, per_class=1, seed=2, min_length=10.0, run_offset=1000)


def test_teacher_probabilities_are_the_classifiers(teacher):
    """The teachers' targets are what the inference path reads: the Classifier's calibrated probabilities."""
    path, val = teacher
    ckpt = ckpt_io.load(path)
    probs = teacher_probabilities([ckpt], val)
    assert probs.shape == (len(val.labels), len(CLASSES))
    np.testing.assert_allclose(teacher_probabilities([ckpt, ckpt], val), probs, atol=1e-6)  # mean of equals
    clf = Classifier(ckpt, device="cpu", fast=False, check_domain=False)
    for i in range(len(val)):
        rows = val.atoms(i)
        vectors = val.vectors[rows]
        # the snapshot's own graph, as the Classifier would search it
        nl = SimpleNamespace(index=val.index[rows].astype(np.int64), vectors=vectors)
        expect = clf.probabilities(clf.logits(val.species[rows].astype(np.int64), nl))
        np.testing.assert_allclose(probs[rows], expect, atol=1e-4)
    with pytest.raises(LammpsPhaseError, match="no teacher"):
        teacher_probabilities([], val)


def test_teachers_must_match_the_student(teacher, tmp_path):
    path, _ = teacher
    assert len(load_teachers([str(path)], CLASSES, ["Cu"], 12)) == 1
    with pytest.raises(LammpsPhaseError, match="not found"):
        load_teachers([str(tmp_path / "none.pt")], CLASSES, ["Cu"], 12)
    with pytest.raises(LammpsPhaseError, match="same order needed"):
        load_teachers([str(path)], CLASSES[::-1], ["Cu"], 12)
    with pytest.raises(LammpsPhaseError, match="k = 12 neighbours; the datasets hold k = 16"):
        load_teachers([str(path)], CLASSES, ["Cu"], 16)


def test_a_student_follows_its_teacher_not_wrong_labels(teacher):
    """Every training label shifted by one class: with distill = 1 the student learns the teacher's classes and
    reads held-out samples right; without the teacher the same training learns the wrong ones."""
    path, val = teacher
    train = synthetic_samples(CLASSES, 12, per_class=8, seed=3, min_length=10.0)
    probs = teacher_probabilities([ckpt_io.load(path)], train)
    wrong = train.subset(np.arange(len(train)))
    wrong.labels = ((train.labels.astype(np.int64) + 1) % len(CLASSES)).astype(np.int16)
    scores = {}
    for distill in (0.0, 1.0):
        cfg = TrainConfig(epochs=12, batch_size=4, lr=5e-3, progress=False, distill=distill,
                          teachers=["teacher.pt"] if distill else [])
        student, _ = train_model(wrong, val, small_cfg(), cfg, teacher=probs if distill else None)
        scores[distill] = evaluate(student.build(), val)["accuracy"]
    assert scores[1.0] >= 0.9, scores
    assert scores[0.0] <= 0.6, scores
    with pytest.raises(LammpsPhaseError, match="teachers' probabilities for every training atom"):
        train_model(wrong, val, small_cfg(), TrainConfig(epochs=1, progress=False, distill=0.5, teachers=["t.pt"]))
