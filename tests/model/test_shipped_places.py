"""The shipped SiO2 model where shock users look (issue 11), on held-out frames it never trained on.

``tests/frames/held_out_sio2.npz`` holds one frame of each of ten test-seed runs (seed 4; training uses
seeds 1–2), copied from ``cache/sio2/runs/<run>.npz`` after ``lammps-phase-train inputs/train_sio2.toml``: in BKS
an α-quartz slab ⊥ y at 385 K, α-quartz | glass ⊥ x and coesite | glass ⊥ x at 290–295 K, an 8 Å void in
α-quartz at 267 K, and β-quartz | melt ⊥ y at 3060 K; in Tersoff (Munetoh) coesite at 1705 K and melt at
6847 K; in Vashishta 1990 β-quartz at 2674 K, glass at 307 K and melt at 5991 K (issue 12).
Each carries its per-atom truth: interface atoms as the run labelled them by lattice registry (crystal, glass,
or none); rebuild the file with ``python scripts/make_held_out_frames.py <workdir>/runs``. The floors are the
issue's targets where the shipped model meets them on these frames (slab, void), and its measured figure minus
a margin where it does not yet (interfaces), so a retrained model that loses ground fails here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lammps_phase.data.geometry import interface_distance, sphere_depth, surface_depth

ROOT = Path(__file__).resolve().parents[2]
FRAMES = ROOT / "tests" / "frames" / "held_out_sio2.npz"


@pytest.fixture(scope="module")
def shipped():
    from lammps_phase.inference.classify import Classifier
    from lammps_phase.model import checkpoint as ckpt_io

    return Classifier(ckpt_io.load(ROOT / "checkpoints" / "sio2.pt"), device="cpu", fast="eager")


def _frame(name: str, clf):
    """(positions, cell, origin, truth as class indices of the model (−1: none), predicted labels)."""
    with np.load(FRAMES) as z:
        pos, cell, origin = (z[f"{name}_{key}"].astype(np.float64) for key in ("positions", "cell", "origin"))
        species, codes, names = z[f"{name}_species"], z[f"{name}_codes"], list(z[f"{name}_classes"])
    lut = np.array([clf.classes.index(n) for n in names] + [-1])
    truth = lut[codes.astype(np.int64)]
    return pos, cell, origin, truth, clf.classify(pos, cell, species, origin=origin).labels


def _score(truth: np.ndarray, predicted: np.ndarray, where: np.ndarray) -> float:
    sel = where & (truth >= 0)
    assert sel.sum() >= 30, "too few atoms to score"
    return float((predicted[sel] == truth[sel]).mean())


def test_slab_is_its_own_phase_below_4_angstrom_and_mostly_at_the_surface(shipped):
    pos, cell, origin, truth, pred = _frame("quartz_slab_y", shipped)
    depth = surface_depth(pos, cell, origin, "y")
    assert _score(truth, pred, depth >= 4.0) >= 0.99
    outer = depth < 4.0
    assert _score(truth, pred, outer) >= 0.85
    another = (pred >= 0) & (pred != truth)  # −1 ("other") is allowed at a surface, another phase is not
    assert another[outer].mean() <= 0.05


def test_void_surface_in_quartz(shipped):
    pos, cell, origin, truth, pred = _frame("quartz_void", shipped)
    depth = sphere_depth(pos, cell, origin, "void")
    assert _score(truth, pred, depth >= 4.0) >= 0.99
    assert _score(truth, pred, depth < 4.0) >= 0.85


@pytest.mark.parametrize("name, axis, beyond, within", [
    ("quartz_glass_x", "x", 0.95, 0.78), ("coesite_glass_x", "x", 0.82, 0.92), ("quartz_melt_y", "y", 0.93, 0.77)])
def test_crystal_glass_and_melt_interfaces(shipped, name, axis, beyond, within):
    """Below the issue's targets (> 3 Å: 0.99, ≤ 3 Å: 0.90): floors a little under the session-10 models, whose
    truth labels interface atoms by what they are (lattice registry; the coesite frame's melted half kept ordered
    layers and pockets, now crystal). Beyond / within 3 Å, shipped (training seed 1), seed 0 and session 8:
    quartz | glass 0.960 / 0.829, 0.960 / 0.800, 0.977 / 0.829; coesite | glass 0.870 / 0.933, 0.839 / 0.942,
    0.886 / 0.946; β-quartz | melt at 3060 K 0.958 / 0.789, 0.947 / 0.796, 0.935 / 0.648. The floors admit both
    session-10 seeds: one training seed moves such figures by a few points."""
    pos, cell, origin, truth, pred = _frame(name, shipped)
    distance = interface_distance(pos, cell, origin, axis)
    assert _score(truth, pred, distance > 3.0) >= beyond
    assert _score(truth, pred, distance <= 3.0) >= within


@pytest.mark.parametrize("name", ["tersoff_coesite", "tersoff_melt", "vashishta_beta_quartz", "vashishta_glass",
                                  "vashishta_melt"])
def test_other_potentials(shipped, name):
    """Issue 12's per-class target (0.97) on held-out runs of the two other potentials. The shipped model scores
    0.997–1.000 on these frames; the BKS-only model (checkpoints/sio2_bks.pt) 0.802–0.969 and fails all five."""
    pos, cell, origin, truth, pred = _frame(name, shipped)
    assert _score(truth, pred, np.ones(len(truth), bool)) >= 0.97
