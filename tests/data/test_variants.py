"""Slabs, uniaxial strain and interfaces: geometry helpers, the LAMMPS runs and their labels in the pipeline."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from lammps_phase.data import structures, variants
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.training.pipeline import iter_snapshots, load_config, run_key
from lammps_phase.training.loop import combined_loss


def test_surface_depth_of_a_slab_that_wraps_across_the_box():
    cell = np.diag([10.0, 10.0, 50.0])
    z = np.linspace(0.0, 20.0, 41)  # slab 20 Å thick ...
    pos = np.column_stack([np.zeros_like(z), np.zeros_like(z), (z + 40.0) % 50.0])  # ... across the boundary
    depth = variants.surface_depth(pos, cell, np.zeros(3), "z")
    assert depth.max() == pytest.approx(10.0)
    assert depth[0] == pytest.approx(0.0) and depth[-1] == pytest.approx(0.0)
    assert depth[4] == pytest.approx(2.0)


def test_surface_depth_is_measured_along_the_plane_normal_of_a_tilted_cell():
    cell = np.array([[10.0, 0, 0], [0, 10.0, 0], [5.0, 0, 40.0]])  # c tilted: planes ⊥ z are 40 Å apart per cell
    frac = np.column_stack([np.full(5, 0.1), np.full(5, 0.1), np.linspace(0.0, 0.5, 5)])
    depth = variants.surface_depth(frac @ cell, cell, np.zeros(3), "z")
    assert depth.max() == pytest.approx(10.0)  # half of 0.5 × 40 Å


def test_interface_distance_and_sides():
    cell = np.diag([40.0, 10.0, 10.0])
    pos = np.array([[1.0, 0, 0], [19.0, 0, 0], [21.0, 0, 0], [30.0, 0, 0], [39.5, 0, 0]])
    assert variants.interface_side(pos, cell, np.zeros(3), "x").tolist() == [False, False, True, True, True]
    np.testing.assert_allclose(variants.interface_distance(pos, cell, np.zeros(3), "x"), [1.0, 1.0, 1.0, 10.0, 0.5])


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


BASE = """
name = "v"
elements = ["Si", "O"]
potential = "bks_dsf"
output = "{out}"
[runs]
seeds = {{ train = [1], val = [2], test = [3] }}
"""


def _config(tmp_path, blocks: str):
    path = tmp_path / "v.toml"
    path.write_text(BASE.format(out=tmp_path / "v.pt") + blocks)
    return path


def test_config_variants_are_checked(tmp_path):
    ok = '[[phase]]\nname = "alpha_quartz"\nvariant = "slab"\naxis = "x"\n[[phase]]\nname = "alpha_quartz"\n'
    cfg = load_config(_config(tmp_path, ok))
    assert [run_key(p, 0.0, 1) for p in cfg.phases] == ["alpha_quartz_slab-x_0GPa_seed1", "alpha_quartz_0GPa_seed1"]
    for block, message in [
        ('variant = "slab"\naxis = "q"', "axis must be x, y or z"),
        ('variant = "sheared"', "variant 'sheared'"),
        ('variant = "strained"\nkind = "melt"', "variant strained takes kind crystal"),
        ('variant = "strained"\nstrain = 0.6', "strain must be a compression"),
        ('variant = "slab"\nvacuum = 5.0', "vacuum 5.0"),
        ('variant = "interface"\npartner = "magic"', "partner must be"),
        ('variant = "interface"\npartner = "coesite"', "partner 'coesite' is not a class of this config"),
    ]:
        with pytest.raises(LammpsPhaseError, match=message):
            load_config(_config(tmp_path, f'[[phase]]\nname = "alpha_quartz"\n{block}\n'))
    twice = '[[phase]]\nname = "alpha_quartz"\nvariant = "slab"\n' * 2
    with pytest.raises(LammpsPhaseError, match=r"alpha_quartz at 0 GPa \(slab-z\) appears in two"):
        load_config(_config(tmp_path, twice))


def test_per_atom_labels_of_an_interface_run_reach_the_datasets(tmp_path):
    blocks = ('[[phase]]\nname = "alpha_quartz"\nvariant = "interface"\npartner = "melt"\n'
              '[[phase]]\nname = "melt"\nkind = "melt"\nstructure = "alpha_quartz"\n')
    cfg = load_config(_config(tmp_path, blocks))
    assert cfg.classes == ["alpha_quartz", "melt"]
    runs = tmp_path / "work" / "runs"
    runs.mkdir(parents=True)
    n = 6
    for spec in cfg.phases:
        for seed in (1, 2, 3):
            arrays = dict(positions=np.zeros((1, n, 3), np.float32), cells=np.eye(3)[None] * 10, origins=np.zeros((1, 3)),
                          temperature=np.array([300.0], np.float32), pressure=np.zeros(1, np.float32),
                          species=np.array(["Si", "O", "O"] * 2))
            if spec.variant == "interface":
                arrays["atom_labels"] = np.array([[0, 0, -1, 1, 1, 1]], np.int8)
            np.savez(runs / f"{run_key(spec, 0.0, seed)}.npz", **arrays)
    frames = list(iter_snapshots(cfg, tmp_path / "work", "test"))
    assert frames[0][4].tolist() == [0, 0, -1, 1, 1, 1]  # crystal, unlabelled, melt
    assert frames[1][4].tolist() == [1] * n
    assert frames[0][7] != frames[1][7]  # run ids differ



def test_slab_strain_and_interface_runs_in_lammps(tmp_path):
    q = structures.build("alpha_quartz")
    slab = variants.slab_run(q, "bks_dsf", axis="z", vacuum=20.0, t_start=300, t_end=300, ps=0.4, seed=5,
                             snapshot_every_ps=0.2, supercell_min_length=20.0, log_path=tmp_path / "slab.log")
    assert len(slab.kept) == 2
    s = slab.kept[-1]
    assert s.cell[2, 2] == pytest.approx(slab.reference.cell[2, 2] + 20.0)  # the gap is there
    depth = variants.surface_depth(s.positions, s.cell, s.origin, "z")
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
    upper = variants.interface_side(run.reference.positions, run.reference.cell, np.zeros(3), "x")
    assert snap.check.holds, snap.check.reason
    assert (snap.atom_labels[upper] == 1).all()  # the melted half: proven liquid
    lower = snap.atom_labels[~upper]
    assert (lower == 0).mean() > 0.7 and set(np.unique(lower)) <= {0, -1}  # crystal, or unlabelled if it moved


def test_cut_sphere_makes_a_cluster_in_vacuum_and_a_void_in_the_crystal():
    from lammps_phase.data.structures import supercell

    q = supercell(structures.build("alpha_quartz"), 26.0, orthogonal=True)
    cluster = variants.cut_sphere(q, 10.0, "cluster", vacuum=20.0)
    assert np.allclose(cluster.cell, np.eye(3) * 60.0)
    depth = variants.sphere_depth(cluster.positions, cluster.cell, np.zeros(3), "cluster")
    assert 7.0 < depth.max() <= 10.0 and depth.min() == pytest.approx(0.0)  # from the outermost to the central atom
    void = variants.cut_sphere(q, 5.0, "void")
    assert len(void.symbols) + len(variants.cut_sphere(q, 5.0, "cluster").symbols) == len(q.symbols)
    assert variants.sphere_depth(void.positions, void.cell, np.zeros(3), "void").min() == pytest.approx(0.0)
    with pytest.raises(LammpsPhaseError, match="too small"):
        variants.cut_sphere(q, 20.0, "cluster")


def test_quartz_stishovite_bicrystal_matches_laterally_and_keeps_both_structures():
    q, st = structures.build("alpha_quartz"), structures.build("stishovite")
    both, mask = variants.bicrystal(q, st, "x", length=16.0, lateral=14.0)
    n_si = np.array([s == "Si" for s in both.symbols])
    assert n_si.sum() * 3 == len(both.symbols)  # SiO2 on both sides
    assert mask.sum() and (~mask).sum()
    x = both.positions[:, 0]
    assert x[~mask].max() < x[mask].min()  # stacked along x, quartz first
    assert both.cell[1, 1] >= 14.0 and both.cell[2, 2] >= 14.0
    planes = variants.bicrystal_planes(both, mask, "x")
    d = variants.interface_distance(both.positions, both.cell, np.zeros(3), "x", planes)
    assert d.min() > 0.5 and d.max() > 5.0  # no atom sits in a gap; the slabs have interiors
    # stishovite strained onto quartz's lateral cell by less than the 5 % limit: Si–O bonds stay 1.7–1.9 Å
    from lammps_phase.data.heating import coordination

    counts = coordination(both.positions, both.cell, both.symbols, "Si", "O", 2.1)
    inner = (d > 3.0)[n_si]
    assert (counts[inner & mask[n_si]] == 6).all() and (counts[inner & ~mask[n_si]] == 4).all()


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


def test_a_block_may_name_its_own_potential(tmp_path):
    """One class fed by two potentials (issue 12): the block's potential reaches its runs and their cache names."""
    from lammps_phase.training.pipeline import potential_of, run_params

    blocks = ('[[phase]]\nname = "alpha_quartz"\n'
              '[[phase]]\nname = "alpha_quartz"\npotential = "tersoff_munetoh"\n')
    cfg = load_config(_config(tmp_path, blocks))
    bks, tersoff = cfg.phases
    assert [potential_of(cfg, p) for p in cfg.phases] == ["bks_dsf", "tersoff_munetoh"]
    assert run_key(bks, 0.0, 1) == "alpha_quartz_0GPa_seed1"
    assert run_key(tersoff, 0.0, 1) == "alpha_quartz_tersoff_munetoh_0GPa_seed1"  # no clash at one pressure
    assert run_params(cfg, tersoff, 0.0, 1)["potential"] == "tersoff_munetoh"
    with pytest.raises(LammpsPhaseError, match="potential = .*is unknown"):
        load_config(_config(tmp_path, '[[phase]]\nname = "alpha_quartz"\npotential = "bks_typo"\n'))
