"""Slabs, uniaxial strain and interfaces in LAMMPS (lammps_phase.data.variants); unlabelled and nonsense atoms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lammps_phase.data import geometry, structures, variants
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.training.loop import combined_loss
from lammps_phase.training.runs import save_run


def test_bad_axis_and_strain_are_refused_before_lammps_starts():
    q = structures.build("alpha_quartz")
    with pytest.raises(LammpsPhaseError, match="axis must be x, y or z"):
        variants.slab_run(q, "bks_dsf", axis="w")
    with pytest.raises(LammpsPhaseError, match="strain must be a compression"):
        variants.strained_run(q, "bks_dsf", strain=0.7)
    with pytest.raises(LammpsPhaseError, match="partner must be"):
        variants.interface_run(q, "bks_dsf", partner="stishovite")


def test_cross_entropy_ignores_unlabelled_atoms():
    logits = torch.tensor([[[4.0, 0.0], [0.0, 4.0], [9.0, -9.0]]])  # (R=1, N=3, C=2)
    with_unlabelled = combined_loss(logits, torch.tensor([0, 1, -1]), 1.0, 0.0)[0]
    labelled_only = combined_loss(logits[:, :2], torch.tensor([0, 1]), 1.0, 0.0)[0]
    assert with_unlabelled.item() == pytest.approx(labelled_only.item())


def test_slab_strain_and_interface_runs_in_lammps(tmp_path):
    q = structures.build("alpha_quartz")
    slab = variants.slab_run(q, "bks_dsf", axis="z", vacuum=20.0, t_start=300, t_end=300, ps=0.4, seed=5,
                             snapshot_every_ps=0.2, supercell_min_length=20.0, log_path=tmp_path / "slab.log")
    assert len(slab.kept) == 2
    s = slab.kept[-1]
    assert s.cell[2, 2] == pytest.approx(slab.reference.cell[2, 2] + 20.0)  # the gap is there
    depth = geometry.surface_depth(s.positions, s.cell, s.origin, "z")
    assert 9.0 < depth.max() < 12.0  # a ≈ 21 Å slab
    assert s.check.ideal_coordination_fraction > 0.95  # interior Si 4-fold

    strained = variants.strained_run(q, "bks_dsf", axis="x", strain=0.3, ps=0.6, seed=5, snapshot_every_ps=0.2,
                                     supercell_min_length=14.0, log_path=tmp_path / "strain.log")
    eps = [1 - snap.cell[0, 0] / strained.reference.cell[0, 0] for snap in strained.snapshots]
    assert eps == pytest.approx([0.1, 0.2, 0.3], abs=0.005)  # linear to the end of the stage
    assert strained.snapshots[0].check.holds  # 10 % keeps quartz 4-fold
    assert strained.snapshots[-1].pressure_gpa > strained.snapshots[0].pressure_gpa > 1.0
    assert s.cell[0, 0] == pytest.approx(slab.reference.cell[0, 0])  # the slab kept its lateral cell

    run = variants.interface_run(q, "bks_dsf", axis="x", partner="melt", melt_ps=3.0, hold_ps=0.2, seed=5,
                                 snapshot_every_ps=0.2, supercell_min_length=14.0, log_path=tmp_path / "if.log")
    snap = run.snapshots[-1]
    assert run.labels == ["alpha_quartz", "melt"]
    upper = geometry.interface_side(run.reference.positions, run.reference.cell, np.zeros(3), "x")
    assert snap.check.holds, snap.check.reason
    melted = snap.atom_labels[upper]
    # proven liquid; a half this thin (8 Å between two crystal faces) is layered against them, so some of its atoms
    # sit on the lattice among ordered neighbours (crystal) or between the thresholds (no label): 3 % and 23 % here
    assert set(np.unique(melted)) <= {1, 0, -1}
    assert (melted == 1).mean() > 0.7 and (melted == 0).mean() < 0.12
    lower = snap.atom_labels[~upper]
    # crystal, or unlabelled if it moved; judged against the crystal half's own drift, every atom here keeps its site
    # (against the whole box's drift, which the liquid shifts, 11 % of them "moved": session 24)
    assert (lower == 0).mean() > 0.95 and set(np.unique(lower)) <= {0, -1}
    # each snapshot keeps how far its atoms sat from the lattice (time-averaged): crystal close, liquid far
    assert np.median(snap.lattice_distance[~upper & (snap.atom_labels == 0)]) < 0.4
    assert np.median(snap.lattice_distance[upper & (snap.atom_labels == 1)]) > 0.6
    # a melted-side atom is crystal only as close to the lattice as the crystal half's own atoms sit (session 19)
    spread = variants.lattice_spread(snap.lattice_distance[~upper & (snap.atom_labels == 0)])
    assert (snap.lattice_distance[upper & (snap.atom_labels == 0)] <= spread).all()
    save_run(run, tmp_path / "if.npz")
    with np.load(tmp_path / "if.npz") as saved:
        assert saved["lattice_distance"].shape == saved["atom_labels"].shape


def test_a_quartz_void_run_labels_each_shell_by_its_tilt(tmp_path):
    """Cold α-quartz around a void keeps its tilt in every shell: every atom labelled, the codes saved with the run."""
    run = variants.sphere_run(structures.build("alpha_quartz"), "bks_dsf", geometry="void", radius=3.0, t_start=300,
                              t_end=300, ps=0.1, seed=5, snapshot_every_ps=0.1, supercell_min_length=22.0,
                              log_path=tmp_path / "void.log")
    assert run.labels == ["alpha_quartz"] and len(run.kept) == 1
    for snap in run.kept:
        assert snap.atom_labels.shape == (len(snap.species),) and (snap.atom_labels == 0).all()
    save_run(run, tmp_path / "void.npz")
    with np.load(tmp_path / "void.npz") as saved:
        assert (saved["atom_labels"] == 0).all()


def test_tersoff_quartz_that_gave_way_under_strain_is_not_kept(tmp_path):
    """Tersoff α-quartz compressed along x collapses near 11 % (pressure 6.3 → 2.7 GPa, tetrahedra untilted) with
    every atom's time-averaged position still within 1 Å of its site: the strained check refuses that frame."""
    q = structures.build("alpha_quartz")
    run = variants.strained_run(q, "tersoff_munetoh", axis="x", strain=0.15, ps=2.0, seed=11, snapshot_every_ps=0.5,
                                supercell_min_length=20.0, log_path=tmp_path / "strain.log")
    eps = [1 - snap.cell[0, 0] / run.reference.cell[0, 0] for snap in run.snapshots]
    assert eps[:3] == pytest.approx([0.0375, 0.075, 0.1125], abs=0.002)
    assert [snap.check.holds for snap in run.snapshots[:3]] == [True, True, False]
    collapsed = run.snapshots[2]
    assert collapsed.pressure_gpa < 0.6 * run.snapshots[1].pressure_gpa  # it gave way
    assert "lattice site" in collapsed.check.reason
    assert np.mean(collapsed.site_displacement > 1.0) < 0.05  # the heating runs' 1 Å time average lets it pass


def test_overlapping_atoms_are_other_not_a_confident_phase(tmp_path):
    """Nonsense geometry gets −1, not a confident label: atoms on top of each other exist in no phase."""
    from conftest import make_random_checkpoint

    from lammps_phase.inference.classify import OTHER, Classifier

    clf = Classifier.load(make_random_checkpoint(tmp_path / "r.pt"), device="cpu")
    crystal = structures.supercell(structures.build("alpha_quartz"), 12.0)
    pos = np.array(crystal.positions)
    pos[5] = pos[4] + 0.1  # atom 5 sits 0.17 Å from atom 4
    res = clf.classify(pos, crystal.cell, crystal.symbols)
    assert res.labels[4] == res.labels[5] == OTHER and res.confidence[4] == res.confidence[5] == 0.0
    assert (res.labels[6:] != OTHER).all()
    pos[7] = np.nan
    with pytest.raises(LammpsPhaseError, match="atom 7 .* non-finite position"):
        clf.classify(pos, crystal.cell, crystal.symbols)
