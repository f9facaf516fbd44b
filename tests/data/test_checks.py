"""Structural checks on real snapshots: a scrambled lattice is not the crystal, a glass is a network."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lammps_phase.data import quartz_order
from lammps_phase.data.checks import check_amorphous, check_liquid, check_phase, check_quartz_tilt
from lammps_phase.data.heating import heating_run
from lammps_phase.data.structures import build
from lammps_phase.data.variants import STRAINED_SITE_CUTOFF, check_strained


@pytest.fixture(scope="module")
def quartz_run():
    return heating_run(build("alpha_quartz"), "bks_dsf", pressure_gpa=0.0, t_start=300.0, t_end=600.0, ps=0.5,
                       seed=7, snapshot_every_ps=0.1, supercell_min_length=8.0)


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


def test_heated_alpha_quartz_keeps_its_tilt_and_is_refused_as_beta(quartz_run):
    """The heating check measures every quartz snapshot; real α frames labelled β-quartz fail it."""
    assert quartz_run.kept, "the BKS α-quartz run should keep its snapshots"
    for snap in quartz_run.snapshots:
        assert snap.check.tilt is not None and snap.check.tilt > quartz_order.MIN_ALPHA_TILT
        as_beta = check_quartz_tilt(snap.check, snap, "beta_quartz")
        assert not as_beta.holds and "tilted into α-quartz" in as_beta.reason
    coesite = check_quartz_tilt(quartz_run.snapshots[0].check, quartz_run.snapshots[0], "coesite")
    assert coesite is quartz_run.snapshots[0].check


def test_the_strained_check_judges_the_frame_itself_not_its_time_average(quartz_run):
    """A training sample is the frame's own positions, so the strained check judges those (a collapse late in the
    averaging window hides in the time average: tests/data/test_variants.py has the real case)."""
    snap = quartz_run.snapshots[0]
    assert check_strained(snap, quartz_run.reference).holds
    smeared = dataclasses.replace(snap, site_displacement=np.full(len(snap.positions), 2.0))
    assert not check_phase(smeared, quartz_run.reference).holds  # the heating check reads the time average
    assert check_strained(smeared, quartz_run.reference).holds
    rng = np.random.default_rng(1)
    moved = snap.positions + rng.normal(scale=0.5, size=snap.positions.shape)
    verdict = check_strained(dataclasses.replace(snap, positions=moved, site_displacement=np.zeros(len(moved))),
                             quartz_run.reference)
    assert not verdict.holds and f"> {STRAINED_SITE_CUTOFF} Å from their lattice site" in verdict.reason


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
    from lammps_phase.data import checks

    def fake_check_phase(snapshot, reference, **kwargs):
        return checks.PhaseCheck(False, "not the crystal", dict(histogram), 0.0, 1.0, displaced, 0.0)

    monkeypatch.setattr(checks, "check_phase", fake_check_phase)
    verdict = check_amorphous(quartz_run.snapshots[-1], quartz_run.reference)
    assert verdict.holds is holds, verdict.reason
