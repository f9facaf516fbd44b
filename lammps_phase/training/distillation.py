"""Distillation: one network trained toward the mean probabilities of several trained ones (its teachers).

Why: trainings that differ only in their seed disagree most where users look. On session 19's held-out runs the
shipped model and two retrains read atoms 4–6 Å below a void surface 0.92 / 0.94 / 0.81 and interfaces (≤ 3 Å)
0.881 / 0.875 / 0.862, and the mean of their calibrated probabilities beat the shipped model at every place
(bulk glass 0.995 → 0.999, slab 4–6 Å 0.988 → 0.994, BKS 0.978 → 0.983; ``benchmarks/place_spread.py``) — at three
times the network time. A student trained toward that mean keeps one network's cost (Hinton, Vinyals and Dean
2015, "Distilling the knowledge in a neural network").

The targets (:func:`lammps_phase.training.loop.combined_loss`) of every labelled training atom are

    q = (1 − λ)·onehot(label) + λ·p̄,    p̄ = (1/T)·Σ_t softmax(z_t / τ_t),

λ = ``[train] distill``, z_t the logits of teacher t and τ_t its calibration temperature. Unlabelled atoms (−1)
take no part: what the teachers say of them was never checked. Each teacher sees a snapshot once, in its stored
orientation: the networks are rotation invariant (edges see angles, not laboratory components).

Measured (benchmarks/RESULTS.md, "Session 21"): with those three as teachers and λ = 0.5, a student on their own
training data read the held-out places like one more training (the teachers agree with 98.8 % of its labels), and
one on data they never saw (more voids) no better either. The ensemble itself ships instead
(:mod:`lammps_phase.inference.ensemble`); this stays for teachers that know more than the labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from lammps_phase.data.datasets import SampleSet
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.model import checkpoint as ckpt_io


def load_teachers(paths: Sequence[str], classes: Sequence[str], elements: Sequence[str], k: int
                  ) -> list[ckpt_io.Checkpoint]:
    """The teacher checkpoints, each checked to label the same classes from the same elements and neighbours as
    the student: their probabilities are then the student's targets class by class."""
    teachers = []
    for path in paths:
        if not Path(path).is_file():
            raise LammpsPhaseError(f"teacher checkpoint {path} not found: [train] teachers are paths from the folder "
                                   "lammps-phase-train runs in (e.g. checkpoints/members/sio2_s19_seed1.pt)")
        ckpt = ckpt_io.load(path)
        problem = None
        if ckpt.kind != "segmentation":
            problem = f"is a {ckpt.kind!r} model; teachers must label every atom (segmentation)"
        elif list(ckpt.classes) != list(classes):
            problem = f"labels {', '.join(ckpt.classes)}; this config trains {', '.join(classes)} (same order needed)"
        elif ckpt.elements != list(elements):
            problem = f"knows elements {' '.join(ckpt.elements)}; this config has {' '.join(elements)}"
        elif ckpt.k != k:
            problem = f"reads k = {ckpt.k} neighbours; the datasets hold k = {k}"
        if problem:
            raise LammpsPhaseError(f"teacher {path} {problem}: use a teacher trained on this config's classes")
        teachers.append(ckpt)
    return teachers


def teacher_probabilities(teachers: Sequence[ckpt_io.Checkpoint], data: SampleSet) -> np.ndarray:
    """(atoms, classes) float32: per atom of ``data`` the mean of the teachers' calibrated probabilities, read
    through the Classifier snapshot by snapshot (as calibration reads validation data)."""
    from lammps_phase.inference.classify import Classifier
    from lammps_phase.training.calibration import validation_logits

    if not teachers:
        raise LammpsPhaseError("no teacher checkpoints to distil from")
    mean = np.zeros((len(data.labels), len(data.classes)), np.float32)
    for ckpt in teachers:
        clf = Classifier(ckpt, device="cpu", threshold=0.0, check_domain=False)
        mean += clf.probabilities(validation_logits(clf, data)[0])
    mean /= len(teachers)
    return mean
