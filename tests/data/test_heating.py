"""Heating runs: a stable crystal is kept, a collapsed one is rejected, LAMMPS errors surface."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.data.heating import heating_run, heating_summary, melt_quench, relax
from lammps_phase.data.structures import build


@pytest.fixture(scope="module")
def quartz_run():
    return heating_run(build("alpha_quartz"), "bks_dsf", pressure_gpa=0.0, t_start=300.0, t_end=600.0, ps=0.5,
                       seed=7, snapshot_every_ps=0.1, supercell_min_length=8.0)


def test_quartz_heating_keeps_every_snapshot(quartz_run):
    snaps = quartz_run.snapshots
    assert len(snaps) == 5 and quartz_run.kept == snaps
    for snap in snaps:
        species = np.asarray(snap.species)
        assert np.sum(species == "O") == 2 * np.sum(species == "Si") == 2 * 24  # SiO2, 72 atoms
        assert snap.check.coordination_histogram == {4: 24}
        assert 2.3 < snap.density < 2.9
        assert np.all(snap.site_displacement < 0.6)
        frac = (snap.positions - snap.origin) @ np.linalg.inv(snap.cell)
        assert np.all((frac >= 0) & (frac < 1))
    assert [s.step for s in snaps] == [100, 200, 300, 400, 500]
    assert snaps[-1].target_temperature == pytest.approx(600.0)
    assert np.mean([s.temperature for s in snaps[-2:]]) > np.mean([s.temperature for s in snaps[:2]])


def test_stishovite_in_vashishta_1990_is_rejected():
    run = heating_run(build("stishovite"), "vashishta_1990", pressure_gpa=0.0, t_start=300.0, t_end=300.0, ps=0.2,
                      seed=3, snapshot_every_ps=0.1, supercell_min_length=8.0)
    assert not run.reference.relaxation_check.holds  # the 0 K relaxation already leaves 6-fold Si
    assert run.kept == []
    assert all(not snap.check.holds and "coordination 6" in snap.check.reason for snap in run.snapshots)
    assert "relaxation already transformed it" in heating_summary([run])


def test_bks_stishovite_relaxes_as_stishovite():
    reference = relax(build("stishovite"), "bks_dsf", 0.0, supercell_min_length=8.0)
    assert reference.relaxation_check.holds
    assert reference.relaxation_check.coordination_histogram == {6: len(reference.species) // 3}
    assert 4.0 < reference.density < 4.6


def test_lammps_error_surfaces_with_its_error_line():
    with pytest.raises(LammpsPhaseError, match=r"ERROR: .*pair"):
        relax(build("alpha_quartz"), "bks_dsf", 0.0, extra_commands=["pair_coeff 1 2 born/coul/dsf not-a-number"])


def test_two_mpi_ranks_give_the_same_checked_run(quartz_run):
    run = heating_run(build("alpha_quartz"), "bks_dsf", pressure_gpa=0.0, t_start=300.0, t_end=600.0, ps=0.2,
                      seed=7, snapshot_every_ps=0.1, supercell_min_length=8.0, ranks=2)
    assert [s.step for s in run.snapshots] == [100, 200]
    assert all(s.check.holds for s in run.snapshots)
    # the same start on 1 and 2 ranks: identical relaxed crystal, trajectories agree early on
    assert run.reference.energy_per_atom == pytest.approx(quartz_run.reference.energy_per_atom, abs=1e-6)
    assert np.allclose(run.snapshots[0].cell, quartz_run.snapshots[0].cell, atol=1e-3)


def test_melt_quench_proves_the_liquid_and_keeps_only_glass():
    run = melt_quench(build("alpha_quartz"), "bks_dsf", 0.0, melt_temperature=6500.0, melt_ps=3.0,
                      quench_rate_k_per_ps=5000.0, hold_temperatures=(300.0,), hold_ps=0.4, seed=2,
                      snapshot_every_ps=0.2, supercell_min_length=8.0)
    melt = [s for s in run.snapshots if s.stage == "melt"]
    assert melt[-1].msd > 5.0 and melt[-1].check.displaced_fraction > 0.5  # diffusing, lattice forgotten
    assert run.label == "amorphous" and run.kept and all(s.stage == "hold" for s in run.kept)
    for glass in run.kept:
        assert glass.check.displaced_fraction > 0.5 and glass.temperature < 600.0
        assert set(glass.check.coordination_histogram) <= {3, 4, 5, 6}
