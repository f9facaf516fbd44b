"""The α/β-quartz tilt: ideal structures, thermal noise, twins, boxes it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_phase.data import quartz_order, structures
from lammps_phase.errors import LammpsPhaseError


def _box(name: str, min_length: float = 14.0):
    crystal = structures.supercell(structures.build(name), min_length)
    return crystal.positions, np.array(crystal.symbols), crystal.cell


def test_ideal_alpha_reads_one_and_ideal_beta_zero_wherever_the_origin_is():
    for name, expected in (("alpha_quartz", 1.0), ("beta_quartz", 0.0)):
        positions, species, cell = _box(name)
        for origin in (np.zeros(3), np.array([-3.1, 7.7, 0.4])):
            value = quartz_order.tilt(positions + origin + np.array([1.3, -0.6, 2.2]), species, cell, origin)
            assert value == pytest.approx(expected, abs=0.02), (name, origin)


def test_the_dauphine_twin_is_alpha_too():
    """α2 is α1 rotated 180° about c: the tilt reads its magnitude, not its sign."""
    positions, species, cell = _box("alpha_quartz")
    twin = positions.copy()
    twin[:, :2] = np.diag(cell)[:2] - twin[:, :2]
    assert quartz_order.tilt(twin, species, cell, np.zeros(3)) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thermal_noise_keeps_alpha_above_and_beta_below_the_check_band(seed):
    """Independent displacements of 0.25 Å per component (hot quartz) in a 324-atom box."""
    rng = np.random.default_rng(seed)
    alpha, alpha_species, alpha_cell = _box("alpha_quartz")
    beta, beta_species, beta_cell = _box("beta_quartz")
    hot_alpha = alpha + rng.normal(scale=0.25, size=alpha.shape)
    hot_beta = beta + rng.normal(scale=0.25, size=beta.shape)
    assert quartz_order.tilt(hot_alpha, alpha_species, alpha_cell, np.zeros(3)) > quartz_order.MAX_BETA_TILT
    assert quartz_order.tilt(hot_beta, beta_species, beta_cell, np.zeros(3)) < quartz_order.MIN_ALPHA_TILT


def test_a_box_that_is_not_bulk_quartz_is_refused():
    positions, species, cell = _box("coesite")
    with pytest.raises(LammpsPhaseError, match="whole number of quartz cells"):
        quartz_order.tilt(positions, species, cell, np.zeros(3))
    positions, species, cell = _box("alpha_quartz")
    sheared = cell.copy()
    sheared[1, 0] = 1.0
    with pytest.raises(LammpsPhaseError, match="orthogonal"):
        quartz_order.tilt(positions, species, sheared, np.zeros(3))


def test_tilt_by_group_reads_each_part_of_a_box_with_a_void():
    """Shells of boxes with a void cut out: α-quartz reads ≈ 1 in each shell, β-quartz near each shell's floor, and
    a box whose halves are the two Dauphiné twins reads ≈ 1 per half though the halves cancel in the whole box."""
    rng = np.random.default_rng(4)
    for name, alpha in (("alpha_quartz", True), ("beta_quartz", False)):
        positions, species, cell = _box(name, 20.0)
        positions = positions + rng.normal(scale=0.1, size=positions.shape)
        radius = np.linalg.norm(positions - np.diag(cell) / 2, axis=1)
        kept = radius > 5.0  # a void of 5 Å radius
        shells = [(radius[kept] < 8.0), (radius[kept] >= 8.0)]
        for tilt, floor in quartz_order.tilt_by_group(positions[kept], species[kept], cell, np.zeros(3), shells):
            assert floor < 0.2
            assert (tilt > 0.9) if alpha else (tilt < 2.5 * floor), (name, tilt, floor)
    positions, species, cell = _box("alpha_quartz", 20.0)
    twin = positions.copy()
    twin[:, :2] = np.diag(cell)[:2] - twin[:, :2]  # α2: α1 rotated 180° about c (z unchanged)
    lower = positions[:, 2] < cell[2, 2] / 2
    halves = np.concatenate([positions[lower], twin[~lower]])
    order = np.concatenate([species[lower], species[~lower]])
    groups = [np.arange(len(halves)) < lower.sum(), np.arange(len(halves)) >= lower.sum()]
    (first, _), (second, _), (both, _) = quartz_order.tilt_by_group(halves, order, cell, np.zeros(3),
                                                                    groups + [np.ones(len(halves), bool)])
    assert first > 0.9 and second > 0.9 and both < 0.3
    void = np.linalg.norm(positions - np.diag(cell) / 2, axis=1) < 5.0
    with pytest.raises(LammpsPhaseError, match="whole number of quartz cells"):
        quartz_order.tilt(positions[~void], species[~void], cell, np.zeros(3))  # the heating check: whole boxes only


def test_shell_codes_unlabel_the_shell_below_a_void_that_lost_its_tilt():
    """A void in α-quartz whose 4–10 Å shell is half one Dauphiné twin, half the other: that shell has no net tilt
    (as hot quartz next to a void that went part of the way to β), so its atoms lose the α label while the shells
    above and below keep it; read as β-quartz, the codes are the other way round."""
    positions, species, cell = _box("alpha_quartz", 24.0)
    twin = positions.copy()
    twin[:, :2] = np.diag(cell)[:2] - twin[:, :2]  # mirrored about the void's centre: same radius, same z
    radius = np.linalg.norm(positions - np.diag(cell) / 2, axis=1)
    kept = radius > 3.0
    depth = radius - 3.0
    middle = (depth >= 4.0) & (depth < 10.0)
    mixed = np.where((middle & (positions[:, 2] >= cell[2, 2] / 2))[:, None], twin, positions)
    codes = quartz_order.shell_codes(mixed[kept], species[kept], cell, np.zeros(3), depth[kept], "alpha_quartz")
    assert (codes[middle[kept]] == -1).all() and (codes[~middle[kept]] == 0).all()
    as_beta = quartz_order.shell_codes(mixed[kept], species[kept], cell, np.zeros(3), depth[kept], "beta_quartz")
    assert (as_beta[middle[kept]] == 0).all() and (as_beta[~middle[kept]] == -1).all()


def test_local_tilt_reads_each_neighbourhood_where_the_box_tilt_cancels():
    """A box whose upper half is the other Dauphiné twin has no net tilt, yet every neighbourhood away from the twin
    boundaries is fully tilted; β-quartz reads near zero everywhere; a void cut out is accepted."""
    rng = np.random.default_rng(5)
    positions, species, cell = _box("alpha_quartz", 24.0)
    twin = positions.copy()
    twin[:, :2] = np.diag(cell)[:2] - twin[:, :2]
    length = cell[2, 2]
    upper = positions[:, 2] >= length / 2
    mixed = np.where(upper[:, None], twin, positions) + rng.normal(scale=0.05, size=positions.shape)
    centre = np.linalg.norm(mixed - np.diag(cell) / 2, axis=1) < 3.0  # a small void
    mixed, kept_species, z = mixed[~centre], species[~centre], positions[~centre, 2]
    assert quartz_order.tilt_by_group(mixed, kept_species, cell, np.zeros(3), [np.ones(len(mixed), bool)])[0][0] < 0.3
    local = quartz_order.local_tilt(mixed, kept_species, cell, np.zeros(3), radius=5.0)
    away = np.minimum(np.abs(z - length / 2), np.minimum(z, length - z)) > 5.5  # > radius from both boundaries
    assert away.sum() > 50 and local[away].min() > 0.9
    assert local[~away].min() < 0.9  # spheres across a boundary hold both twins
    beta, beta_species, beta_cell = _box("beta_quartz", 24.0)
    assert quartz_order.local_tilt(beta, beta_species, beta_cell, np.zeros(3), radius=5.0).max() < 0.1
