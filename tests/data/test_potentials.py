"""Potentials: every entry runs in LAMMPS, and the BKS short-range correction does its one job."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.data.heating import atom_energies, energy_and_forces
from lammps_phase.data.isolation import CrystalData
from lammps_phase.data.potentials import SAIKA_VOIVOD_30_6, get, lj_30_6_minimum, names, type_map_for
from lammps_phase.data.structures import build, supercell

SIO2_POTENTIALS = ["bks_dsf", "bks_dsf_uncorrected", "vashishta_1990", "vashishta_1997", "tersoff_munetoh"]


@pytest.fixture(scope="module")
def quartz():
    return supercell(build("alpha_quartz"), 8.0)  # 72 atoms


def test_registry_has_the_survey_candidates_and_cu():
    assert set(SIO2_POTENTIALS + ["eam_cu"]) <= set(names())
    with pytest.raises(LammpsPhaseError, match="unknown potential"):
        get("bks_typo")


def test_commands_follow_the_type_order():
    bks = get("bks_dsf")
    swapped = bks.commands({"O": 1, "Si": 2})
    assert "set type 1 charge -1.2" in swapped and "set type 2 charge 2.4" in swapped
    assert any(line.startswith("pair_coeff 1 2 mie/cut") for line in swapped)  # O–Si gets the correction
    assert not any(line.startswith("pair_coeff 2 2 mie/cut") for line in swapped)  # Si–Si has none
    tersoff = get("tersoff_munetoh").commands({"O": 1, "Si": 2})
    assert tersoff[-1].endswith("SiO.tersoff O Si")
    with pytest.raises(LammpsPhaseError, match="no parameters"):
        type_map_for(get("eam_cu"), ("Si", "O"))


@pytest.mark.parametrize("name", SIO2_POTENTIALS)
def test_quartz_energy_and_forces_are_finite_and_bound(quartz, name):
    energy, forces = energy_and_forces(quartz, name)
    assert forces.shape == (len(quartz), 3)
    assert np.isfinite(energy) and np.all(np.isfinite(forces))
    assert energy / len(quartz) < -1.0  # a bound solid (eV/atom)
    assert np.allclose(forces.sum(axis=0), 0.0, atol=1e-6)  # Newton's third law
    assert np.abs(forces).max() < 5.0  # experimental quartz is near a minimum of every SiO2 potential


def test_eam_cu_fcc_is_at_rest():
    cu = supercell(build("fcc", element="Cu", a=3.615), 7.0)
    energy, forces = energy_and_forces(cu, "eam_cu")
    assert energy / len(cu) == pytest.approx(-3.54, abs=0.02)  # Cu cohesive energy of Foiles et al.
    assert np.abs(forces).max() < 1e-8  # perfect fcc: every force cancels by symmetry


def test_bks_correction_leaves_quartz_untouched(quartz):
    corrected, f_corrected = energy_and_forces(quartz, "bks_dsf")
    plain, f_plain = energy_and_forces(quartz, "bks_dsf_uncorrected")
    assert abs(corrected - plain) / len(quartz) < 1e-3  # < 1 meV/atom
    assert np.abs(f_corrected - f_plain).max() < 1e-6


def _dimer_curve(potential: str, pair: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Energy (incl. DSF Coulomb) of an isolated pair from 0.5 to 2.0 Å: 61 dimers 13 Å apart in one box."""
    separations = np.linspace(0.5, 2.0, 61)
    spacing, grid = 13.0, 4  # beyond the 10 Å cutoff: the dimers do not see each other
    centres = spacing * np.stack(np.meshgrid(*[np.arange(grid)] * 3, indexing="ij"), -1).reshape(-1, 3)[: len(separations)]
    positions = np.concatenate([centres + 1.0, centres + 1.0 + separations[:, None] * [1.0, 0.0, 0.0]])
    symbols = (pair[0],) * len(separations) + (pair[1],) * len(separations)
    dimers = CrystalData("dimers", np.eye(3) * spacing * grid, positions, symbols)
    per_atom = atom_energies(dimers, potential)
    return separations, per_atom[: len(separations)] + per_atom[len(separations):]


def test_bks_correction_keeps_si_o_repulsive_down_to_half_an_angstrom():
    r, plain = _dimer_curve("bks_dsf_uncorrected", ("Si", "O"))
    _, corrected = _dimer_curve("bks_dsf", ("Si", "O"))
    well = np.argmin(np.where(r > 1.2, corrected, np.inf))
    # plain BKS: a shallow barrier near 1.2 Å, then the energy plunges far below the bonded well
    assert plain[r < 0.8].min() < corrected[well] - 100.0
    # corrected: energy falls monotonically from 0.5 Å into the well, and is unchanged beyond the 30–6 minimum
    assert np.all(np.diff(corrected[: well + 1]) < 0)
    beyond = r >= lj_30_6_minimum(SAIKA_VOIVOD_30_6[("Si", "O")][1]) + 1e-6
    assert np.allclose(corrected[beyond], plain[beyond], atol=1e-9)
    assert corrected[r <= 0.8].min() > 1000.0


def test_bks_correction_keeps_o_o_repulsive():
    r, plain = _dimer_curve("bks_dsf_uncorrected", ("O", "O"))
    _, corrected = _dimer_curve("bks_dsf", ("O", "O"))
    assert plain[r < 0.8].min() < 0  # O–O falls through its barrier too
    assert np.all(np.diff(corrected) < 0)  # corrected O–O is repulsive over the whole range
