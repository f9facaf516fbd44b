"""Interface atoms are labelled by what they are, not by the side they started on (lattice_registry)."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_phase.data import structures, variants
from lammps_phase.data.checks import PhaseCheck, Reference, Snapshot, lattice_registry
from lammps_phase.data.geometry import interface_side
from lammps_phase.errors import LammpsPhaseError


def _crystal(min_length: float | tuple[float, float, float] = 16.0, orthogonal: bool = True):
    crystal = structures.supercell(structures.build("alpha_quartz"), min_length, orthogonal=orthogonal)
    cell = np.asarray(crystal.cell, float)
    return np.asarray(crystal.positions, float) @ np.linalg.inv(cell), cell, np.asarray(crystal.symbols)


@pytest.mark.parametrize("orthogonal", [True, False])
def test_a_drifted_thermal_crystal_is_on_its_lattice(orthogonal):
    sites, cell, species = _crystal(orthogonal=orthogonal)
    rng = np.random.default_rng(1)
    thermal = rng.normal(scale=0.1, size=sites.shape) @ np.linalg.inv(cell)  # 0.1 Å per component
    frac = sites + thermal + np.array([0.31, -0.12, 0.07])  # the whole sample drifted by several Å
    registry, on = lattice_registry(frac, sites, cell, species, anchor=np.ones(len(sites), bool))
    assert on.all() and np.allclose(registry, 1.0)
    # without an anchor the drift is not removed: most atoms are then off the lattice
    registry, on = lattice_registry(frac, sites, cell, species, anchor=np.zeros(len(sites), bool))
    assert on.mean() < 0.5


def test_disordered_atoms_have_a_low_registry_and_a_chance_site_is_not_crystal():
    sites, cell, species = _crystal((30.0, 12.0, 12.0))
    rng = np.random.default_rng(2)
    upper = sites[:, 0] % 1.0 >= 0.5
    frac = sites.copy()
    frac[upper] += rng.normal(scale=1.0, size=(upper.sum(), 3)) @ np.linalg.inv(cell)  # a scrambled half
    deep = upper & (np.abs(sites[:, 0] % 1.0 - 0.75) < 0.1)
    lucky = np.flatnonzero(deep)[0]
    frac[lucky] = sites[lucky]  # one scrambled atom back on its site by chance
    registry, on = lattice_registry(frac, sites, cell, species, anchor=~upper)
    assert on[lucky] and registry[lucky] < 0.5  # on a site, but among disordered neighbours
    assert np.median(registry[deep]) < 0.35
    margin = 5.0 / cell[0, 0]  # farther than the 3.5 Å radius (and the scrambling's tails) from the other half
    intact = ~upper & (sites[:, 0] % 1.0 > margin) & (sites[:, 0] % 1.0 < 0.5 - margin)
    assert intact.sum() > 20 and np.all(registry[intact] == 1.0)


def test_lattice_registry_refuses_mismatched_input():
    sites, cell, species = _crystal()
    with pytest.raises(LammpsPhaseError, match="one lattice site, one species and one anchor"):
        lattice_registry(sites[:-1], sites, cell, species, anchor=np.ones(len(sites), bool))


def _interface_codes(monkeypatch, sites, frac, cell, species, upper):
    """variants._interface_labels of one frame whose time-averaged fractional positions are ``frac``; both sides'
    phase checks pass (they are judged by their own tests: here only the codes)."""
    positions = sites @ cell
    reference = Reference("alpha_quartz", "bks_dsf", 0.0, positions, cell, np.zeros(3), tuple(species), 0.0, 2.6,
                          "Si", "O", 2.1, np.full(int((species == "Si").sum()), 4), 0.0)
    moved = np.linalg.norm((frac - sites) @ cell, axis=1)
    snap = Snapshot(frac @ cell, cell, np.zeros(3), tuple(species), 0, 0.0, 300.0, 300.0, 0.0, 2.6, -18.0,
                    site_displacement=moved, msd=moved.mean() ** 2, stage="hold", mean_fractional=frac)
    glass = PhaseCheck(True, "", {4: 1}, 0.0, 1.0, 0.9, 1.0)
    monkeypatch.setattr(variants, "check_amorphous", lambda *a, **k: glass)
    crystal = PhaseCheck(True, "", {4: 1}, 1.0, 1.0, 0.0, 0.0)
    monkeypatch.setattr(variants, "check_phase", lambda *a, **k: crystal)
    return variants._interface_labels(snap, reference, upper, "amorphous")


def _displaced(sites, cell, atoms, shift, rng):
    """``sites`` with ``atoms`` moved ``shift`` Å each, in random directions."""
    direction = rng.normal(size=(int(atoms.sum()), 3))
    direction *= shift / np.linalg.norm(direction, axis=1, keepdims=True)
    frac = sites.copy()
    frac[atoms] += direction @ np.linalg.inv(cell)
    return frac


@pytest.mark.parametrize("thermal, far_shift", [(0.1, 0.6), (0.7, 0.5)])
def test_a_melted_side_atom_is_crystal_only_as_close_to_the_lattice_as_the_crystal_itself(monkeypatch, thermal,
                                                                                         far_shift):
    """The regrown layer's atoms count as crystal within the crystal half's p90 site distance (at least 0.4 Å);
    farther, still inside the 0.9 Å registry band, they could be either and carry no label."""
    sites, cell, species = _crystal((30.0, 12.0, 12.0))
    upper = interface_side(sites @ cell, cell, np.zeros(3), "x")
    rng = np.random.default_rng(7)
    frac = _displaced(sites, cell, ~upper, thermal, rng)  # the crystal half: every atom `thermal` Å off its site
    depth = (sites[:, 0] % 1.0 - 0.5) * cell[0, 0]
    layer = upper & (depth < 4.0)  # the melted half: a layer on the lattice, glass beyond it
    near, far = layer & (np.arange(len(sites)) % 2 == 0), layer & (np.arange(len(sites)) % 2 == 1)
    for atoms, shift in ((near, 0.25), (far, far_shift)):
        frac[atoms] = _displaced(sites, cell, atoms, shift, rng)[atoms]
    glass = upper & ~layer
    frac[glass] += rng.normal(scale=1.0, size=(int(glass.sum()), 3)) @ np.linalg.inv(cell)
    codes, _, distance = _interface_codes(monkeypatch, sites, frac, cell, species, upper)
    assert variants.lattice_spread(distance[~upper & (codes == 0)]) == pytest.approx(max(thermal, 0.4), abs=0.1)
    inner = (depth > 0.5) & (depth < 2.5)  # well inside the layer: neighbours on the lattice on both sides
    assert (codes[near & inner] == 0).all()
    if thermal < 0.4:  # a stiff crystal: 0.6 Å is beyond its spread and the floor
        assert (codes[far & inner] == -1).all()
    else:  # a soft one: its own atoms sit farther than 0.5 Å from their sites too
        assert (codes[far & inner] == 0).all()


def test_lattice_spread_is_the_crystals_p90_with_a_floor():
    assert variants.lattice_spread(np.linspace(0.0, 1.0, 101)) == pytest.approx(0.9)
    assert variants.lattice_spread(np.full(50, 0.1)) == variants.MIN_LATTICE_SPREAD
    assert variants.lattice_spread(np.zeros(0)) == variants.MIN_LATTICE_SPREAD


def test_interface_codes_follow_the_atoms_not_their_starting_side(monkeypatch):
    """Layers of the melted side that stayed on the lattice are crystal, the rest glass, the band between none."""
    sites, cell, species = _crystal((30.0, 12.0, 12.0))
    positions = sites @ cell
    upper = interface_side(positions, cell, np.zeros(3), "x")
    s = sites[:, 0] % 1.0
    depth = (s - 0.5) * cell[0, 0]  # Å into the melted half from its lower interface plane
    ordered_layer = upper & (depth < 3.6)  # the melted half's first layers stayed on the lattice
    rng = np.random.default_rng(3)
    frac = sites.copy()
    scrambled = upper & ~ordered_layer
    frac[scrambled] += rng.normal(scale=0.8, size=(scrambled.sum(), 3)) @ np.linalg.inv(cell)
    codes, check, distance = _interface_codes(monkeypatch, sites, frac, cell, species, upper)
    assert check.holds
    # the distance the registry thresholded, time-averaged: the ordered layer on its sites, the scrambled atoms off
    assert distance.shape == (len(codes),) and np.median(distance[ordered_layer]) < 0.05
    assert np.median(distance[scrambled]) > 0.5
    inner = ordered_layer & (depth > 0.5) & (depth < 2.0)  # ordered layer, away from the scrambled atoms
    assert (codes[inner] == 0).all()  # started on the melted side, still crystal
    deep_glass = scrambled & (np.abs(s - 0.8) < 0.05)
    assert (codes[deep_glass] == 1).mean() > 0.9
    assert (codes[~upper & (np.abs(s - 0.25) < 0.05)] == 0).all()
    assert set(np.unique(codes)) <= {-1, 0, 1} and (codes == -1).mean() < 0.2


def test_the_lattice_follows_a_crystal_strained_against_its_cell():
    """Half a box next to a glass is strained along the normal unlike the cell: the sites must follow it."""
    sites, cell, species = _crystal((40.0, 12.0, 12.0))
    lower = sites[:, 0] % 1.0 < 0.5
    frac = sites.copy()
    frac[lower, 0] = 0.25 + 0.9 * (sites[lower, 0] - 0.25)  # 10 % shorter along x: ±1 Å at its edges
    registry, on = lattice_registry(frac, sites, cell, species, anchor=lower)
    assert on[lower].all()
    shifted_only = frac[lower] - sites[lower]
    assert np.abs(shifted_only[:, 0] - shifted_only[:, 0].mean()).max() * cell[0, 0] > 0.9  # a shift cannot fit it


def test_order_is_not_lent_across_an_interface():
    """Counted over all neighbours, a scrambled atom next to a crystal borrows the crystal's order; by side, not."""
    sites, cell, species = _crystal((30.0, 12.0, 12.0))
    s = sites[:, 0] % 1.0
    upper = s >= 0.5
    frac = sites.copy()
    frac[upper] += np.random.default_rng(4).normal(scale=1.0, size=(upper.sum(), 3)) @ np.linalg.inv(cell)
    contact = upper & ((s - 0.5) * cell[0, 0] < 1.0)  # scrambled atoms within 1 Å of the crystal
    pooled, _ = lattice_registry(frac, sites, cell, species, anchor=~upper)
    by_side, _ = lattice_registry(frac, sites, cell, species, anchor=~upper, groups=upper)
    assert np.median(pooled[contact]) > 0.45 and np.median(by_side[contact]) < 0.3


def test_site_distance_is_thermal_for_a_crystal_and_wide_for_a_scrambled_one():
    """lattice_site_distance: what lattice_registry thresholds; a crystal's atoms sit within their thermal spread,
    scrambled atoms anywhere up to half a bond away."""
    from lammps_phase.data.checks import lattice_site_distance

    sites, cell, species = _crystal()
    rng = np.random.default_rng(3)
    hot = sites + rng.normal(0.0, 0.1, sites.shape) @ np.linalg.inv(cell)  # 0.1 Å per axis
    d = lattice_site_distance(hot, sites, cell, species, anchor=np.ones(len(sites), bool))
    assert d.shape == (len(sites),) and np.median(d) < 0.25 and d.max() < 0.7
    scrambled = rng.random(sites.shape)
    d = lattice_site_distance(scrambled, sites, cell, species, anchor=np.zeros(len(sites), bool))
    assert np.median(d) > 0.6
    # the lattice follows the anchors: a rigid shift of every atom leaves them on it
    shifted = hot + np.array([0.3, -0.2, 0.1])
    moved = lattice_site_distance(shifted, sites, cell, species, anchor=np.ones(len(sites), bool))
    assert np.allclose(moved, lattice_site_distance(hot, sites, cell, species, anchor=np.ones(len(sites), bool)),
                       atol=0.05)


def test_the_crystal_half_is_judged_against_its_own_drift(monkeypatch):
    """The recorded site displacement removes the whole box's mean drift, which a wandering disordered half shifts
    (seed-1 quartz | glass ⊥ z on session 23's machine: 41 % of the intact crystal half "> 1 Å from its site", every
    frame rejected). The crystal half's check and its on-site test remove its own drift instead."""
    sites, cell, species = _crystal((30.0, 12.0, 12.0))
    upper = interface_side(sites @ cell, cell, np.zeros(3), "x")
    rng = np.random.default_rng(11)
    frac = _displaced(sites, cell, ~upper, 0.15, rng)  # an intact crystal half
    frac[upper] += rng.normal(scale=1.0, size=(int(upper.sum()), 3)) @ np.linalg.inv(cell)  # glass ...
    frac[upper] += np.array([0.0, 0.3, 0.0])  # ... that slid 3.6 Å along y, as a whole
    frac[~upper] += np.array([0.01, 0.0, 0.02])  # and the crystal drifted a little on its own
    delta = frac - sites
    delta -= delta.mean(axis=0)  # what the run records: the whole box's drift removed
    recorded = np.linalg.norm(delta @ cell, axis=1)
    assert (recorded[~upper] > 1.0).mean() > 0.9  # the old judgement: the crystal half "left its sites"
    positions = sites @ cell
    reference = Reference("alpha_quartz", "bks_dsf", 0.0, positions, cell, np.zeros(3), tuple(species), 0.0, 2.6,
                          "Si", "O", 2.1, np.full(int((species == "Si").sum()), 4), 0.0)
    snap = Snapshot(frac @ cell, cell, np.zeros(3), tuple(species), 0, 0.0, 300.0, 300.0, 0.0, 2.6, -18.0,
                    site_displacement=recorded, msd=0.5, stage="hold", mean_fractional=frac)
    monkeypatch.setattr(variants, "check_amorphous", lambda *a, **k: PhaseCheck(True, "", {4: 1}, 0.0, 1.0, 0.9, 1.0))
    codes, check, _ = variants._interface_labels(snap, reference, upper, "amorphous")
    assert check.holds, check.reason  # the real crystal-side check_phase, against the half's own drift
    inner = ~upper & (np.abs(sites[:, 0] % 1.0 - 0.25) < 0.15)  # well inside the crystal half
    assert (codes[inner] == 0).mean() > 0.95
