"""Held-out accuracy by place (lammps_phase.training.places): the depth, interface, strain and (P, T) tables the
report gives must put each atom where it is."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from lammps_phase.training.places import PlaceTally, uniaxial_strain

CLASSES = ["alpha_quartz", "amorphous", "melt"]


def _spec(**kw):
    base = dict(name="alpha_quartz", variant="bulk", axis="x", geometry="cluster", partner="amorphous")
    return SimpleNamespace(**{**base, **kw})


def test_slab_atoms_are_binned_by_depth_below_the_nearer_surface():
    cell = np.diag([40.0, 10.0, 10.0])
    x = np.array([10.0, 11.0, 13.0, 15.0, 20.0, 30.0])  # slab from 10 to 30 Å: depths 0, 1, 3, 5, 10, 0
    pos = np.c_[x, np.zeros(6), np.zeros(6)]
    labels = np.zeros(6, int)
    predicted = np.array([1, 0, 0, 1, 0, -1])  # wrong at depth 0 (twice) and 5
    t = PlaceTally(CLASSES)
    t.add(_spec(variant="slab"), pos, cell, np.zeros(3), labels, predicted, 300.0, 0.0)
    got = t.by_place()
    assert got["slab"] == pytest.approx(3 / 6, abs=1e-4)
    assert got["slab, depth 0-2 Å"] == pytest.approx(1 / 3, abs=1e-4)
    assert got["slab, depth 2-4 Å"] == 1.0
    assert got["slab, depth 4-6 Å"] == 0.0
    assert got["slab, depth > 10 Å"] == 1.0


def test_interface_atoms_by_distance_and_side_and_the_errors_named():
    cell = np.diag([40.0, 10.0, 10.0])  # interfaces at x = 0 and 20; the upper half (20-40) is the glass
    x = np.array([1.0, 5.0, 19.0, 21.0, 25.0, 39.5])
    pos = np.c_[x, np.zeros(6), np.zeros(6)]
    labels = np.array([0, 0, 0, 1, 1, 1])
    predicted = np.array([0, 0, 1, 0, 1, -1])
    t = PlaceTally(CLASSES)
    t.add(_spec(variant="interface"), pos, cell, np.zeros(3), labels, predicted, 300.0, 0.0)
    got = t.by_place()
    assert got["interface, atoms ≤ 3 Å from it"] == pytest.approx(1 / 4, abs=1e-4)  # x = 1, 19, 21, 39.5
    assert got["interface, atoms > 3 Å from it"] == 1.0
    assert got["interface ≤ 3 Å, crystal side (alpha_quartz)"] == 0.5
    assert got["interface ≤ 3 Å, amorphous side"] == 0.0
    errors = t.tables()["errors within 3 Å of an interface (share of those atoms)"]
    assert errors == {"alpha_quartz → amorphous": 0.25, "amorphous → alpha_quartz": 0.25,
                      "amorphous → other": 0.25}
    assert got["interface, atoms ≤ 3 Å from it: share without a label"] == 0.0
    # an atom without a label (−1) is not scored, but the share of them near the interface is reported
    t.add(_spec(variant="interface"), pos[:1] + [1.0, 0, 0], cell, np.zeros(3), np.array([-1]), np.array([0]), 300.0, 0.0)
    got = t.by_place()
    assert got["interface, atoms ≤ 3 Å from it: share without a label"] == pytest.approx(1 / 5, abs=1e-4)
    assert got["interface, atoms ≤ 3 Å from it"] == pytest.approx(1 / 4, abs=1e-4)


def test_interface_distances_are_from_where_the_phases_meet_now_not_from_where_the_melt_began():
    cell = np.diag([40.0, 10.0, 10.0])  # melted half 20-40 Å, crystal regrown into it to 23.75 Å
    x = np.array([10.0, 20.5, 22.5, 25.0, 28.0, 30.0])
    pos = np.c_[x, np.zeros(6), np.zeros(6)]
    labels = np.array([0, 0, 0, 1, 1, 1])
    predicted = np.array([0, 0, 1, 0, 1, 1])  # the two atoms either side of where the phases meet misread
    t = PlaceTally(CLASSES)
    t.add(_spec(variant="interface"), pos, cell, np.zeros(3), labels, predicted, 300.0, 0.0)
    got = t.by_place()
    # boundaries at 23.75 Å (half-way from 22.5 to 25) and 40 Å (half-way from 30 to the next crystal atom, 10 + 40)
    assert got["interface, atoms ≤ 3 Å from it"] == 0.0  # x = 22.5, 25
    assert got["interface, atoms > 3 Å from it"] == 1.0
    assert got["interface ≤ 3 Å, crystal side (alpha_quartz)"] == 0.0
    assert got["interface ≤ 3 Å, amorphous side"] == 0.0
    # from the starting plane at 20 Å the misread glass atom at 25 Å would count as "> 3 Å from the interface"
    assert got["interface, atoms ≤ 3 Å from the starting plane"] == 0.5  # x = 20.5, 22.5
    assert got["interface, atoms > 3 Å from the starting plane"] == 0.75


def test_strain_is_measured_against_the_relaxed_cell_and_binned():
    ref = np.diag([10.0, 12.0, 14.0])
    assert uniaxial_strain(np.diag([10.0, 10.2, 14.0]), ref, "y") == pytest.approx(0.15)
    t = PlaceTally(CLASSES)
    pos, labels = np.zeros((4, 3)), np.zeros(4, int)
    t.add(_spec(variant="strained", axis="y"), pos, np.diag([10.0, 11.9, 14.0]), np.zeros(3), labels,
          np.zeros(4, int), 300.0, 0.0, reference_cell=ref)
    t.add(_spec(variant="strained", axis="y"), pos, np.diag([10.0, 10.0, 14.0]), np.zeros(3), labels,
          np.array([0, 0, 0, 1]), 300.0, 0.0, reference_cell=ref)
    table = t.tables()["accuracy by uniaxial compression (strained runs, against the relaxed cell)"]
    assert list(table) == ["alpha_quartz along y, 0-5 %", "alpha_quartz along y, 15-20 %"]  # numeric order
    assert table["alpha_quartz along y, 15-20 %"] == "0.7500 (4 atoms)"


def test_glass_and_melt_are_binned_by_pressure_and_temperature():
    t = PlaceTally(CLASSES)
    pos = np.zeros((2, 3))
    for p, temp, pred in ((50.0, 2500.0, [1, 2]), (0.0, 300.0, [1, 1]), (50.0, 2600.0, [1, 1])):
        t.add(_spec(name="amorphous"), pos, np.eye(3) * 10, np.zeros(3), np.ones(2, int), np.array(pred), temp, p)
    table = t.tables()["glass and melt by pressure and temperature (bulk runs)"]
    assert t.by_place()["bulk, amorphous"] == pytest.approx(5 / 6, abs=1e-4)
    assert table == {"amorphous, -5-5 GPa, 0-1000 K": "1.0000 (2 atoms)",
                     "amorphous, 40-70 GPa, 2000-3000 K": "0.7500 (4 atoms)"}
    assert "melt" not in " ".join(PlaceTally(CLASSES).tables())  # nothing added, no table


def test_a_quartz_voids_deep_atoms_count_by_their_shells_tilt():
    """The shells that decide a void's α labels (data.quartz_order.TILT_SHELLS) are read again: an intact α box
    counts its deep atoms in the top tilt bin; a 4–10 Å shell whose two halves are Dauphiné twins (no net tilt, as
    quartz that went part of the way to β) falls in no bin, and the shell below it still counts."""
    from lammps_phase.data import structures

    crystal = structures.supercell(structures.build("alpha_quartz"), 24.0)
    positions, species, cell = crystal.positions, np.array(crystal.symbols), crystal.cell
    radius = np.linalg.norm(positions - np.diag(cell) / 2, axis=1)
    kept = radius > 3.0
    depth = radius - radius[kept].min()
    twin = positions.copy()
    twin[:, :2] = np.diag(cell)[:2] - twin[:, :2]  # mirrored about the void's centre: same radius, same z
    middle = (depth >= 4.0) & (depth < 10.0)
    mixed = np.where((middle & (positions[:, 2] >= cell[2, 2] / 2))[:, None], twin, positions)
    spec = _spec(variant="sphere", geometry="void")
    labels = np.zeros(kept.sum(), int)
    predicted = np.where(depth[kept] >= 10.0, 0, 1)  # right only in the deepest shell
    intact, twinned = PlaceTally(CLASSES), PlaceTally(CLASSES)
    intact.add(spec, positions[kept], cell, np.zeros(3), labels, predicted, 300.0, 0.0, species=species[kept])
    twinned.add(spec, mixed[kept], cell, np.zeros(3), labels, predicted, 300.0, 0.0, species=species[kept])
    deep = depth[kept] >= 4.0
    assert intact.by_place()["void ≥ 4 Å, shell tilt > 0.8"] == pytest.approx(
        (depth[kept] >= 10.0).sum() / deep.sum(), abs=1e-4)
    assert twinned.by_place()["void ≥ 4 Å, shell tilt > 0.8"] == 1.0  # the 4-10 Å shell is in no bin
    assert not any("tilt" in key for key in PlaceTally(CLASSES).by_place())
    untold = PlaceTally(CLASSES)  # without species (e.g. a caller that has none) no tilt is read
    untold.add(spec, positions[kept], cell, np.zeros(3), labels, predicted, 300.0, 0.0)
    assert not any("tilt" in key for key in untold.by_place())
