"""Where the surfaces and interfaces of slabs, clusters, voids and bicrystals lie (lammps_phase.data.geometry)."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_phase.data import geometry, structures
from lammps_phase.errors import LammpsPhaseError


def test_surface_depth_of_a_slab_that_wraps_across_the_box():
    cell = np.diag([10.0, 10.0, 50.0])
    z = np.linspace(0.0, 20.0, 41)  # slab 20 Å thick ...
    pos = np.column_stack([np.zeros_like(z), np.zeros_like(z), (z + 40.0) % 50.0])  # ... across the boundary
    depth = geometry.surface_depth(pos, cell, np.zeros(3), "z")
    assert depth.max() == pytest.approx(10.0)
    assert depth[0] == pytest.approx(0.0) and depth[-1] == pytest.approx(0.0)
    assert depth[4] == pytest.approx(2.0)


def test_surface_depth_is_measured_along_the_plane_normal_of_a_tilted_cell():
    cell = np.array([[10.0, 0, 0], [0, 10.0, 0], [5.0, 0, 40.0]])  # c tilted: planes ⊥ z are 40 Å apart per cell
    frac = np.column_stack([np.full(5, 0.1), np.full(5, 0.1), np.linspace(0.0, 0.5, 5)])
    depth = geometry.surface_depth(frac @ cell, cell, np.zeros(3), "z")
    assert depth.max() == pytest.approx(10.0)  # half of 0.5 × 40 Å


def test_interface_distance_and_sides():
    cell = np.diag([40.0, 10.0, 10.0])
    pos = np.array([[1.0, 0, 0], [19.0, 0, 0], [21.0, 0, 0], [30.0, 0, 0], [39.5, 0, 0]])
    assert geometry.interface_side(pos, cell, np.zeros(3), "x").tolist() == [False, False, True, True, True]
    np.testing.assert_allclose(geometry.interface_distance(pos, cell, np.zeros(3), "x"), [1.0, 1.0, 1.0, 10.0, 0.5])


def test_phase_boundary_follows_the_labels_where_crystal_regrew_into_the_melted_half():
    cell = np.diag([40.0, 10.0, 10.0])  # melted half 20-40 Å; crystal regrew to 23 Å and from 37 Å on
    x = np.arange(0.25, 40.0, 0.5)
    pos = np.c_[x, np.zeros_like(x), np.zeros_like(x)]
    partner = ((x > 23.0) & (x < 37.0)).astype(int)
    partner[(x > 10) & (x < 11)] = 1  # a stray glass-labelled atom deep in the crystal does not move the boundary
    partner[np.abs(x - 30.25) < 0.1] = -1  # nor does an unlabelled one
    lower, upper = geometry.phase_boundary_planes(pos, cell, np.zeros(3), "x", partner)
    assert lower * 40.0 == pytest.approx(23.0) and upper * 40.0 == pytest.approx(37.0)
    distance, inside = geometry.phase_boundary_distance(pos, cell, np.zeros(3), "x", partner)
    assert distance[x == 21.25][0] == pytest.approx(1.75) and not inside[x == 21.25][0]
    assert distance[x == 30.25][0] == pytest.approx(6.75) and inside[x == 30.25][0]
    assert distance[x == 0.25][0] == pytest.approx(3.25)  # the crystal's middle is far from both boundaries
    # the partner region may reach across the box edge, and without both phases labelled the starting planes stand
    wrapped = ((x > 23.0) | (x < 1.5)).astype(int)
    lower, upper = geometry.phase_boundary_planes(pos, cell, np.zeros(3), "x", wrapped)
    assert (lower * 40.0, upper * 40.0) == (pytest.approx(23.0), pytest.approx(1.5))
    distance, inside = geometry.phase_boundary_distance(pos, cell, np.zeros(3), "x", wrapped)
    assert inside[x == 0.25][0] and distance[x == 0.25][0] == pytest.approx(1.25)
    assert geometry.phase_boundary_planes(pos, cell, np.zeros(3), "x", np.zeros_like(partner)) == (0.5, 0.0)


def test_cut_sphere_makes_a_cluster_in_vacuum_and_a_void_in_the_crystal():
    from lammps_phase.data.structures import supercell

    q = supercell(structures.build("alpha_quartz"), 26.0, orthogonal=True)
    cluster = geometry.cut_sphere(q, 10.0, "cluster", vacuum=20.0)
    assert np.allclose(cluster.cell, np.eye(3) * 60.0)
    depth = geometry.sphere_depth(cluster.positions, cluster.cell, np.zeros(3), "cluster")
    assert 7.0 < depth.max() <= 10.0 and depth.min() == pytest.approx(0.0)  # from the outermost to the central atom
    void = geometry.cut_sphere(q, 5.0, "void")
    assert len(void.symbols) + len(geometry.cut_sphere(q, 5.0, "cluster").symbols) == len(q.symbols)
    assert geometry.sphere_depth(void.positions, void.cell, np.zeros(3), "void").min() == pytest.approx(0.0)
    with pytest.raises(LammpsPhaseError, match="too small"):
        geometry.cut_sphere(q, 20.0, "cluster")


def test_quartz_stishovite_bicrystal_matches_laterally_and_keeps_both_structures():
    q, st = structures.build("alpha_quartz"), structures.build("stishovite")
    both, mask = geometry.bicrystal(q, st, "x", length=16.0, lateral=14.0)
    n_si = np.array([s == "Si" for s in both.symbols])
    assert n_si.sum() * 3 == len(both.symbols)  # SiO2 on both sides
    assert mask.sum() and (~mask).sum()
    x = both.positions[:, 0]
    assert x[~mask].max() < x[mask].min()  # stacked along x, quartz first
    assert both.cell[1, 1] >= 14.0 and both.cell[2, 2] >= 14.0
    planes = geometry.bicrystal_planes(both, mask, "x")
    d = geometry.interface_distance(both.positions, both.cell, np.zeros(3), "x", planes)
    assert d.min() > 0.5 and d.max() > 5.0  # no atom sits in a gap; the slabs have interiors
    # stishovite strained onto quartz's lateral cell by less than the 5 % limit: Si–O bonds stay 1.7–1.9 Å
    from lammps_phase.data.checks import coordination

    counts = coordination(both.positions, both.cell, both.symbols, "Si", "O", 2.1)
    inner = (d > 3.0)[n_si]
    assert (counts[inner & mask[n_si]] == 6).all() and (counts[inner & ~mask[n_si]] == 4).all()
