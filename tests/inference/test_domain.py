"""The training-domain envelope: in-distribution atoms pass, swapped elements, compression and isolation do not."""

import numpy as np
import pytest

from lammps_phase.data import structures
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference import domain
from lammps_phase.inference.neighbors import knn

ELEMENTS = ["Si", "O"]
K = 16


def quartz(seed: int, amplitude: float = 0.05, scale: float = 1.0, swap: bool = False):
    crystal = structures.supercell(structures.build("alpha_quartz"), min_length=14.0)
    rng = np.random.default_rng(seed)
    cell = np.asarray(crystal.cell) * scale
    positions = np.asarray(crystal.positions) * scale + rng.normal(0.0, amplitude, (len(crystal.positions), 3))
    species = np.array([ELEMENTS.index(s) for s in crystal.symbols])
    if swap:
        species = 1 - species
    neighbours = knn(positions, K, cell=cell)
    return species, neighbours.index, neighbours.distances


@pytest.fixture(scope="module")
def quartz_domain():
    return domain.measure([quartz(seed, amplitude) for seed, amplitude in enumerate((0.03, 0.05, 0.07))], ELEMENTS, K)


def test_the_envelope_holds_quartz_bonds(quartz_domain):
    lo, hi = quartz_domain.nearest["Si-O"]
    assert 1.2 < lo < 1.61 < hi < 2.1
    assert quartz_domain.nearest["Si-O#4"][1] < 2.1  # four O around every Si
    assert {"Si-O", "Si-O#4", "O-Si#2"} <= set(quartz_domain.required)
    assert quartz_domain.kth["Si"][1] < 6.0


def test_new_thermal_quartz_is_inside(quartz_domain):
    flagged = domain.outside(quartz_domain, *quartz(seed=9, amplitude=0.06))
    assert flagged.mean() < 0.01


def test_swapped_elements_are_outside(quartz_domain):
    assert domain.outside(quartz_domain, *quartz(seed=9, swap=True)).mean() >= 0.9


@pytest.mark.parametrize("scale", [0.75, 1.35])
def test_density_far_outside_the_trained_range_is_outside(quartz_domain, scale):
    assert domain.outside(quartz_domain, *quartz(seed=9, scale=scale)).mean() >= 0.9


def test_a_few_atoms_in_a_huge_box_are_outside(quartz_domain):
    rng = np.random.default_rng(3)
    positions = rng.uniform(0.0, 100.0, (20, 3))
    species = np.array([0, 1, 1] * 6 + [0, 1])
    neighbours = knn(positions, K, cell=np.eye(3) * 100.0)
    assert domain.outside(quartz_domain, species, neighbours.index, neighbours.distances).all()


def test_round_trip_and_damaged_domains(quartz_domain):
    again = domain.TrainingDomain.from_dict(quartz_domain.to_dict())
    assert again == quartz_domain
    with pytest.raises(LammpsPhaseError, match="training domain is damaged"):
        domain.TrainingDomain.from_dict({"elements": ["Si"], "k": 16})
