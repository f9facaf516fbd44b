"""Every library structure is checked against physics: composition, bonds, coordination of every atom, density."""

import itertools

import numpy as np
import pytest
from ase.spacegroup import crystal as ase_crystal

from lammps_phase.data import structures
from lammps_phase.errors import LammpsPhaseError

SIO2 = structures.names("sio2")
SIMPLE = structures.names("simple")
ALL = structures.names()

# Independent expectations from the task brief / literature, not read back from the data file.
ATOMS_PER_CELL = {"alpha_quartz": 9, "beta_quartz": 9, "coesite": 48, "alpha_cristobalite": 12, "stishovite": 6,
                  "seifertite": 12, "pyrite_type": 12, "cacl2_type": 6}
DENSITY = {"alpha_quartz": 2.65, "coesite": 2.92, "stishovite": 4.29, "alpha_cristobalite": 2.33, "fcc": 8.96,
           "bcc": 7.87, "diamond": 2.33}
SI_COORDINATION = {"alpha_quartz": 4, "beta_quartz": 4, "coesite": 4, "alpha_cristobalite": 4, "beta_cristobalite": 4,
                   "beta_tridymite": 4, "stishovite": 6, "cacl2_type": 6, "seifertite": 6, "pyrite_type": 6,
                   "rosiaite_type": 6}
NEIGHBOURS = {"fcc": 12, "bcc": 8, "hcp": 12, "diamond": 4, "sc": 6}


def test_every_sio2_phase_of_the_brief_is_present():
    assert set(SI_COORDINATION) == set(SIO2)
    assert set(NEIGHBOURS) == set(SIMPLE)


@pytest.mark.parametrize("name", SIO2)
def test_sio2_entry_validates(name):
    crystal = structures.build(name)
    report = structures.validate(crystal, expected_coordination=structures.expected_coordination(name))
    assert report.ok, report.problems
    assert report.composition["O"] == 2 * report.composition["Si"]
    assert set(crystal.symbols) == {"Si", "O"}
    assert report.min_distance > 1.5


@pytest.mark.parametrize("name", SIO2)
def test_every_atom_has_the_expected_coordination(name):
    crystal = structures.build(name)
    report = structures.validate(crystal, expected_coordination={})
    symbols = np.array(crystal.symbols)
    si_cn = SI_COORDINATION[name]
    o_cn = 2 if si_cn == 4 else 3
    assert np.all(report.coordination[symbols == "Si"] == si_cn)
    assert np.all(report.coordination[symbols == "O"] == o_cn)


@pytest.mark.parametrize("name", SIO2)
def test_si_o_bonds_match_literature(name):
    report = structures.validate(structures.build(name))
    record = structures.entry(name)
    assert 1.50 <= report.si_o_min <= report.si_o_max <= 1.95
    assert report.si_o_mean == pytest.approx(record["reference_mean_si_o"], abs=0.01)


@pytest.mark.parametrize("name,low,high", [("alpha_quartz", 1.60, 1.62), ("coesite", 1.60, 1.62),
                                           ("alpha_cristobalite", 1.59, 1.62), ("stishovite", 1.77, 1.81),
                                           ("seifertite", 1.77, 1.82)])
def test_mean_si_o_of_well_known_phases(name, low, high):
    assert low <= structures.validate(structures.build(name)).si_o_mean <= high


@pytest.mark.parametrize("name", ALL)
def test_density_matches_reference(name):
    crystal = structures.build(name)
    reference = DENSITY.get(name, structures.entry(name)["reference_density"])
    assert structures.density(crystal) == pytest.approx(reference, rel=0.03)


@pytest.mark.parametrize("name", ALL)
def test_atoms_per_cell(name):
    expected = ATOMS_PER_CELL.get(name, structures.entry(name)["atoms_per_cell"])
    assert len(structures.build(name)) == expected


@pytest.mark.parametrize("name", ALL)
def test_entry_has_citation_and_symmetry(name):
    record = structures.entry(name)
    assert any(str(year) in record["source"] for year in range(1900, 2030))
    assert 1 <= record["spacegroup"]["number"] <= 230 and record["spacegroup"]["symbol"]
    assert structures.build(name).source == record["source"]


@pytest.mark.parametrize("name", SIMPLE)
def test_simple_crystal_neighbours(name):
    crystal = structures.build(name)
    counts, distance = structures.nearest_neighbours(crystal)
    a = structures.entry(name)["defaults"]["a"]
    assert np.all(counts == NEIGHBOURS[name])
    assert distance == pytest.approx(a * structures.entry(name)["nearest_neighbour_distance_over_a"], rel=1e-6)
    assert structures.expected_coordination(name) == {crystal.symbols[0]: {NEIGHBOURS[name]}}


def test_simple_crystal_parameters():
    copper = structures.build("fcc")
    assert copper.symbols == ("Cu",) * 4 and np.allclose(copper.cell, 3.615 * np.eye(3))
    aluminium = structures.build("fcc", element="Al", a=4.05)
    assert set(aluminium.symbols) == {"Al"}
    assert structures.nearest_neighbours(aluminium)[1] == pytest.approx(4.05 / np.sqrt(2))
    stretched = structures.build("hcp", element="Zn", a=2.665, c_over_a=1.856)
    assert stretched.cell[2, 2] == pytest.approx(2.665 * 1.856)
    assert structures.nearest_neighbours(stretched)[0].tolist() == [6, 6]  # c/a far from ideal: only the basal shell
    with pytest.raises(LammpsPhaseError, match="c_over_a"):
        structures.build("fcc", c_over_a=1.6)
    with pytest.raises(LammpsPhaseError, match="element"):
        structures.build("bcc", element="Xx")
    with pytest.raises(LammpsPhaseError, match="no parameters"):
        structures.build("stishovite", a=4.0)


def test_unknown_name_lists_known_names():
    with pytest.raises(LammpsPhaseError) as error:
        structures.build("quartz")
    assert "alpha_quartz" in str(error.value) and "fcc" in str(error.value)
    with pytest.raises(LammpsPhaseError, match="sio2"):
        structures.names("oxides")


def _wrong_quartz(o_shift: float, si_z: float) -> structures.Crystal:
    atoms = ase_crystal(["Si", "O"], [(0.4697, 0, si_z), (0.4135, 0.2669, 0.1191 + o_shift)], spacegroup=154,
                        cellpar=[4.9134, 4.9134, 5.4052, 90, 90, 120])
    return structures.Crystal("alpha_quartz", atoms.cell.array, atoms.positions, tuple(atoms.get_chemical_symbols()), "test")


def test_validate_catches_quartz_in_the_wrong_setting():
    assert structures.validate(_wrong_quartz(2 / 3, 2 / 3)).ok  # the right setting passes
    unshifted = structures.validate(_wrong_quartz(0.0, 0.0))  # literature numbers in the wrong origin
    assert not unshifted.ok
    assert any("stoichiometry" in p for p in unshifted.problems)
    assert any("Si-Si" in p for p in unshifted.problems)
    o_not_shifted = structures.validate(_wrong_quartz(0.0, 2 / 3))
    assert not o_not_shifted.ok
    assert any("coordination" in p for p in o_not_shifted.problems)
    with pytest.raises(LammpsPhaseError, match="failed validation"):
        o_not_shifted.raise_if_bad()


def test_validate_catches_an_overlapping_atom():
    quartz = structures.build("alpha_quartz")
    extra = quartz.positions[3] + np.array([0.6, 0.0, 0.0])
    broken = structures.Crystal("broken", quartz.cell, np.vstack([quartz.positions, extra]), quartz.symbols + ("Si",), "test")
    report = structures.validate(broken, expected_coordination={})
    assert not report.ok
    assert report.min_distance == pytest.approx(0.6, abs=1e-6)
    assert any("overlap" in p for p in report.problems) and any("stoichiometry" in p for p in report.problems)


def test_validate_catches_wrong_coordination():
    report = structures.validate(structures.build("alpha_quartz"), expected_coordination=structures.expected_coordination("stishovite"))
    assert not report.ok and any("coordination outside [6]" in p for p in report.problems)


def _volume(crystal):
    return abs(np.linalg.det(crystal.cell))


def _assert_no_duplicates(crystal):
    _, _, d = structures.periodic_distances(crystal, 1.0)
    assert len(d) == 0


@pytest.mark.parametrize("name", ALL)
def test_orthogonal_supercell(name):
    unit = structures.build(name)
    big = structures.supercell(unit, 9.0)
    assert np.allclose(big.cell, np.diag(np.diag(big.cell)))
    assert np.all(np.diag(big.cell) >= 9.0)
    ratio = _volume(big) / _volume(unit)
    assert len(big) == round(ratio) * len(unit)
    assert ratio == pytest.approx(round(ratio), rel=2e-3)  # only coesite's 0.17 deg shear changes the volume
    frac = big.fractional
    assert np.all((frac >= -1e-9) & (frac < 1 - 1e-9))
    _assert_no_duplicates(big)
    assert structures.density(big) == pytest.approx(structures.density(unit), rel=2e-3)
    if name in SIO2:
        unit_report, big_report = structures.validate(unit), structures.validate(big)
        assert big_report.ok, big_report.problems
        scale = len(big) // len(unit)
        assert big_report.coordination_histogram == {
            s: {cn: n * scale for cn, n in h.items()} for s, h in unit_report.coordination_histogram.items()}
    else:
        counts, _ = structures.nearest_neighbours(big)
        assert np.all(counts == NEIGHBOURS[name])


def test_hexagonal_supercell_uses_a_and_a_plus_2b():
    quartz = structures.build("alpha_quartz")
    big = structures.supercell(quartz, (4.0, 4.0, 4.0))
    a, c = 4.9134, 5.4052
    assert np.allclose(np.sort(np.diag(big.cell)), np.sort([a, a * np.sqrt(3), c]))
    assert len(big) == 18


def test_supercell_is_the_smallest_that_honours_min_length():
    stishovite = structures.build("stishovite")
    big = structures.supercell(stishovite, (8.0, 9.0, 10.0))
    assert np.allclose(np.diag(big.cell), [2 * 4.1773, 3 * 4.1773, 4 * 2.6655])
    assert len(big) == 6 * 2 * 3 * 4


def test_triclinic_supercell_without_orthogonality():
    atoms = ase_crystal(["Si"], [(0.1, 0.2, 0.3)], spacegroup=1, cellpar=[5.0, 6.0, 7.0, 80, 70, 100])
    oblique = structures.Crystal("oblique", atoms.cell.array, atoms.positions, ("Si",), "test")
    with pytest.raises(LammpsPhaseError, match="orthogonal=False"):
        structures.supercell(oblique, 10.0)
    big = structures.supercell(oblique, 10.0, orthogonal=False)
    assert len(big) == round(_volume(big) / _volume(oblique))
    heights = _volume(big) / np.linalg.norm(np.cross(big.cell[[1, 2, 0]], big.cell[[2, 0, 1]]), axis=1)
    assert np.all(np.linalg.norm(big.cell, axis=1) >= 10.0) and np.all(heights > 0)
    _assert_no_duplicates(big)


def test_periodic_distances_counts_images():
    cube = structures.build("sc", a=2.0)
    i, j, d = structures.periodic_distances(cube, 2.0 * np.sqrt(2) + 1e-9)
    assert sorted(np.round(d, 6).tolist()) == [2.0] * 6 + [round(2 * np.sqrt(2), 6)] * 12
    assert set(itertools.chain(i, j)) == {0}
