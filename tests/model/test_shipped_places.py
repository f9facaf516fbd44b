"""The shipped SiO2 model where shock users look (issue 11), on held-out frames it never trained on.

``tests/frames/held_out_sio2.npz`` holds one frame of each of fourteen test-seed runs (seed 4; training uses
seeds 1–2), copied from ``cache/sio2/runs/<run>.npz`` after ``lammps-phase-train inputs/train_sio2.toml``: in BKS
an α-quartz slab ⊥ y at 385 K, α-quartz | glass ⊥ x and coesite | glass ⊥ x at 290–295 K, an 8 Å void in
α-quartz at 267 K, and β-quartz | melt ⊥ y at 3060 K; in Tersoff (Munetoh) coesite at 1705 K and melt at
6847 K; in Vashishta 1990 β-quartz at 2674 K, glass at 307 K and melt at 5991 K (issue 12); and since session 13
an α-quartz slab (Tersoff ⊥ z at 274 K, Vashishta 1990 ⊥ x at 287 K) and α-quartz | glass ⊥ x (289–298 K) in each
of the two, scored with ``checkpoints/sio2_surfaces.pt``, the model trained on such places in those potentials.
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


def _load(name: str):
    from lammps_phase.inference.classify import Classifier
    from lammps_phase.model import checkpoint as ckpt_io

    return Classifier(ckpt_io.load(ROOT / "checkpoints" / name), device="cpu", fast="eager")


@pytest.fixture(scope="module")
def shipped():
    return _load("sio2.pt")


@pytest.fixture(scope="module")
def surfaces():
    return _load("sio2_surfaces.pt")


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


@pytest.mark.parametrize("name, axis", [("tersoff_quartz_slab_z", "z"), ("vashishta_quartz_slab_x", "x")])
def test_slabs_in_the_other_potentials(surfaces, name, axis):
    """Issue 11's slab targets in Tersoff and Vashishta 1990 (issue 12: keep the surface work in every potential).
    sio2_surfaces.pt scores 1.000 at every depth of both frames; sio2.pt, which saw these potentials in bulk only,
    reads the Tersoff slab at 0.43 in the outer 2 Å and 0.81 deeper than 6 Å (as β-quartz and cristobalite)."""
    pos, cell, origin, truth, pred = _frame(name, surfaces)
    depth = surface_depth(pos, cell, origin, axis)
    assert _score(truth, pred, depth >= 4.0) >= 0.99
    outer = depth < 4.0
    assert _score(truth, pred, outer) >= 0.85
    another = (pred >= 0) & (pred != truth)
    assert another[outer].mean() <= 0.05


@pytest.mark.parametrize("name, beyond, within", [
    ("tersoff_quartz_glass_x", 0.97, 0.80), ("vashishta_quartz_glass_x", 0.93, 0.81)])
def test_quartz_glass_interfaces_in_the_other_potentials(surfaces, name, beyond, within):
    """Below the issue's targets within 3 Å (0.90), as for BKS: sio2_surfaces.pt (session 17, width 64, with dense
    Tersoff glass) beyond / within 3 Å: Tersoff 1.000 / 0.876, Vashishta 1990 0.966 / 0.878 (session 15's model:
    0.990 / 0.821 and 0.954 / 0.892; session 13's width-48 model: 0.998 / 0.843 and 0.957 / 0.851; sio2.pt: 0.960 /
    0.755 and 0.947 / 0.813). Floors a few points under, as one training seed moves such figures by that much."""
    pos, cell, origin, truth, pred = _frame(name, surfaces)
    distance = interface_distance(pos, cell, origin, "x")
    assert _score(truth, pred, distance > 3.0) >= beyond
    assert _score(truth, pred, distance <= 3.0) >= within


@pytest.mark.parametrize("name", ["quartz_slab_y", "tersoff_coesite", "tersoff_melt", "vashishta_glass"])
def test_surfaces_model_keeps_the_other_places(surfaces, name):
    """The second model is not a Tersoff/Vashishta specialist: a BKS slab and the other potentials' bulk frames."""
    pos, cell, origin, truth, pred = _frame(name, surfaces)
    assert _score(truth, pred, np.ones(len(truth), bool)) >= 0.97
