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
