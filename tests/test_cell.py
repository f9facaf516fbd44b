"""The LAMMPS box convention (lammps_phase.cell): box <-> cell round trips, LAMMPS form, rotation into it."""

import numpy as np
import pytest

from lammps_phase.cell import cell_to_lammps_box, lammps_box_to_cell, lammps_cell, lammps_frame, rows_times
from lammps_phase.errors import LammpsPhaseError


def test_box_roundtrip_triclinic():
    boxlo, boxhi = np.array([-1.5, 2.0, 0.25]), np.array([10.0, 9.0, 7.0])
    cell, origin = lammps_box_to_cell(boxlo, boxhi, xy=-3.1, xz=2.2, yz=-1.7)
    np.testing.assert_array_equal(cell, [[11.5, 0, 0], [-3.1, 7.0, 0], [2.2, -1.7, 6.75]])
    lo, hi, xy, xz, yz = cell_to_lammps_box(cell, origin)
    np.testing.assert_allclose(lo, boxlo)
    np.testing.assert_allclose(hi, boxhi)
    assert (xy, xz, yz) == (-3.1, 2.2, -1.7)


def test_cell_not_lower_triangular_is_rejected():
    rotated = np.array([[3.0, 1.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 5.0]])
    with pytest.raises(LammpsPhaseError, match="lower-triangular"):
        cell_to_lammps_box(rotated, (0, 0, 0))
    with pytest.raises(LammpsPhaseError, match="positive"):
        lammps_box_to_cell((0, 0, 0), (1, -1, 1))


def test_lammps_cell_rejects_left_handed_cells():
    with pytest.raises(LammpsPhaseError, match="left-handed"):
        lammps_cell(np.diag([1.0, 1.0, -1.0]))


def test_a_general_cell_is_rotated_into_lammps_form_keeping_lengths_and_angles():
    rng = np.random.default_rng(3)
    cell = np.array([[5.0, 1.0, 0.5], [0.3, 6.0, -1.0], [0.8, 0.2, 7.0]])
    form, rotation = lammps_cell(cell)
    assert form[0, 1] == form[0, 2] == form[1, 2] == 0.0 and np.all(np.diag(form) > 0)
    np.testing.assert_allclose(cell @ rotation, form, atol=1e-12)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)  # a proper rotation
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    positions = rng.random((20, 3)) @ cell
    new_cell, new_positions = lammps_frame(cell, positions)
    np.testing.assert_allclose(new_cell, form)
    fractional = new_positions @ np.linalg.inv(new_cell)
    assert np.all((fractional >= 0.0) & (fractional < 1.0))  # wrapped into the cell
    np.testing.assert_allclose(fractional, (positions @ np.linalg.inv(cell)) % 1.0, atol=1e-12)


def test_rows_times_is_the_matrix_product_for_rows_shifts_and_neighbour_arrays():
    """The BLAS-free product the neighbour search uses: ``rows @ matrix`` to rounding, for float rows, integer
    image shifts and (N, k, 3) arrays, in the dtype ``@`` gives."""
    rng = np.random.default_rng(8)
    cell = np.array([[17.0, 0, 0], [3.3, 15.1, 0], [-1.7, 2.9, 16.3]])
    inverse = np.linalg.inv(cell)
    rows = rng.uniform(-50.0, 50.0, size=(70_000, 3))
    shifts = rng.integers(-2, 3, size=(500, 16, 3)).astype(np.int32)
    for a, m in ((rows, inverse), (rows, cell), (shifts, cell)):
        got, want = rows_times(a, m), a @ m
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-12)
    frac = rows_times(rows_times(rows, inverse), cell)
    np.testing.assert_allclose(frac, rows, rtol=0, atol=1e-12)
