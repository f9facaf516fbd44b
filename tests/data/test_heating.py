"""Heating runs: a stable crystal is kept, a collapsed one is rejected, LAMMPS errors surface."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.data.heating import (
    check_amorphous,
    check_liquid,
    check_phase,
    heating_run,
    melt_quench,
    relax,
    run_report,
)
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


def test_check_phase_rejects_a_scrambled_lattice(quartz_run):
    snap = quartz_run.snapshots[-1]
    rng = np.random.default_rng(0)
    moved = snap.positions + rng.normal(scale=1.2, size=snap.positions.shape)
    scrambled = dataclasses.replace(snap, positions=moved, site_displacement=None)
    verdict = check_phase(scrambled, quartz_run.reference)
    assert not verdict.holds
    assert "lattice site" in verdict.reason and "coordination" in verdict.reason
    assert check_amorphous(scrambled, quartz_run.reference).displaced_fraction > 0.5
    liquid = check_liquid(dataclasses.replace(scrambled, msd=1.5), quartz_run.reference)
    assert not liquid.holds and "mean-square displacement" in liquid.reason


def test_stishovite_in_vashishta_1990_is_rejected():
    run = heating_run(build("stishovite"), "vashishta_1990", pressure_gpa=0.0, t_start=300.0, t_end=300.0, ps=0.2,
                      seed=3, snapshot_every_ps=0.1, supercell_min_length=8.0)
    assert not run.reference.relaxation_check.holds  # the 0 K relaxation already leaves 6-fold Si
    assert run.kept == []
    assert all(not snap.check.holds and "coordination 6" in snap.check.reason for snap in run.snapshots)
    assert "relaxation already transformed it" in run_report([run])


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


@pytest.mark.parametrize(
    "histogram, displaced, holds",
    [
        ({4: 95, 5: 5}, 0.9, True),  # ordinary glass: 4-fold network
        ({4: 20, 5: 60, 6: 20}, 0.9, True),  # densified glass (15 GPa): 5-fold with 4/6 beside it — 80 % in 5 + 6
        ({3: 25, 4: 25, 5: 25, 6: 25}, 0.9, False),  # scattered: a broken network, not a glass
        ({4: 100}, 0.1, False),  # atoms still on their sites: crystal
    ],
)
def test_check_amorphous_accepts_normal_and_densified_networks(monkeypatch, quartz_run, histogram, displaced, holds):
    from lammps_phase.data import heating

    def fake_check_phase(snapshot, reference, **kwargs):
        return heating.PhaseCheck(False, "not the crystal", dict(histogram), 0.0, 1.0, displaced, 0.0)

    monkeypatch.setattr(heating, "check_phase", fake_check_phase)
    verdict = check_amorphous(quartz_run.snapshots[-1], quartz_run.reference)
    assert verdict.holds is holds, verdict.reason
