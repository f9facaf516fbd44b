"""The training-domain envelope: in-distribution atoms pass, swapped elements, compression and isolation do not."""

import dataclasses
import os
import shlex
import shutil
import warnings
from pathlib import Path

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


# ------------------------------------------------------------------------- compiled screen == numpy path

@pytest.fixture
def compiled(monkeypatch):
    from lammps_phase.inference import cell_knn

    monkeypatch.delenv(cell_knn.BACKEND_ENV, raising=False)
    if domain._screen_library() is None:
        compiler = shlex.split(os.environ.get("CC", "").strip() or "cc")[0]
        if shutil.which(compiler) is None:
            pytest.skip(f"no C compiler ({compiler}): the compiled screen cannot be built here")
        pytest.fail(f"a C compiler exists ({compiler}) but the compiled screen did not build: {domain._SCREEN.failure}")


def numpy_outside(monkeypatch, *args):
    from lammps_phase.inference import cell_knn

    with monkeypatch.context() as m:
        m.setenv(cell_knn.BACKEND_ENV, "tree")
        m.setattr(domain, "_screen_library", None)  # the forced numpy path must not touch the compiled one
        return domain.outside(*args)


def same_flags(monkeypatch, train, species, index, distances, compiled_runs=True):
    """The compiled screen (1 and 2 threads, or None when it must decline) and outside() equal the numpy path."""
    expected = numpy_outside(monkeypatch, train, species, index, distances)
    species64 = np.asarray(species, dtype=np.int64)
    for threads in (1, 2):
        fast = domain._screen(train, species64, index, distances, threads)
        if compiled_runs:
            assert fast is not None and fast.dtype == bool and np.array_equal(fast, expected)
        else:
            assert fast is None
    assert np.array_equal(domain.outside(train, species, index, distances), expected)
    return expected


@pytest.mark.parametrize("case", ["thermal", "swapped", "compressed", "expanded"])
def test_compiled_screen_matches_numpy_on_quartz(compiled, monkeypatch, quartz_domain, case):
    kwargs = {"thermal": dict(amplitude=0.06), "swapped": dict(swap=True), "compressed": dict(scale=0.75),
              "expanded": dict(scale=1.35)}[case]
    species, index, distances = quartz(seed=9, **kwargs)
    flags = same_flags(monkeypatch, quartz_domain, species, index, distances)
    assert flags.mean() < 0.01 if case == "thermal" else flags.mean() >= 0.9
    # every dtype pairing of the C screen: float32/float64 distances, int32/int64 indices
    for dist_type, index_type in [(np.float64, np.int64), (np.float64, np.int32), (np.float32, np.int64)]:
        same_flags(monkeypatch, quartz_domain, species, index.astype(index_type), distances.astype(dist_type))


def test_compiled_screen_matches_numpy_in_a_huge_box(compiled, monkeypatch, quartz_domain):
    rng = np.random.default_rng(3)
    neighbours = knn(rng.uniform(0.0, 100.0, (20, 3)), K, cell=np.eye(3) * 100.0)
    species = np.array([0, 1, 1] * 6 + [0, 1])
    assert same_flags(monkeypatch, quartz_domain, species, neighbours.index, neighbours.distances).all()


def test_compiled_screen_matches_numpy_on_random_species_and_mild_noise(compiled, monkeypatch, quartz_domain):
    rng = np.random.default_rng(11)
    species, index, distances = quartz(seed=5, amplitude=0.06)
    for fraction in (0.02, 0.2, 0.5):  # a few to many atoms of the wrong element: partly flagged
        mixed = np.where(rng.random(len(species)) < fraction, rng.integers(0, 2, len(species)), species)
        flags = same_flags(monkeypatch, quartz_domain, mixed, index, distances)
        assert 0 < flags.sum() < len(flags)
    # noise in the distances alone, rows kept ascending: flags at the edges of every range
    noisy = np.sort(distances * rng.uniform(0.9, 1.1, distances.shape).astype(np.float32), axis=1)
    flags = same_flags(monkeypatch, quartz_domain, species, index, noisy)
    assert 0 < flags.sum() < len(flags)


def test_compiled_screen_matches_numpy_with_k_below_ranks(compiled, monkeypatch, quartz_domain):
    species, index, distances = quartz(seed=7, amplitude=0.05)
    small = domain.measure([quartz(seed, 0.05)[:1] + tuple(a[:, :4] for a in quartz(seed, 0.05)[1:])
                            for seed in (0, 1)], ELEMENTS, 4)
    assert small.k == 4 < domain.RANKS and "Si-O#4" in small.required
    same_flags(monkeypatch, small, species, index[:, :4], distances[:, :4])
    same_flags(monkeypatch, small, species, index, distances)  # more columns than the domain's k: the first k
    same_flags(monkeypatch, small, 1 - species, index[:, :4], distances[:, :4])
    # the 16-neighbour domain on 4-neighbour rows: ranks 5, 6 required but missing, k-th distance too short
    assert same_flags(monkeypatch, quartz_domain, species, index[:, :4], distances[:, :4]).all()


def test_rows_that_do_not_ascend_fall_back_to_numpy(compiled, monkeypatch, quartz_domain):
    rng = np.random.default_rng(2)
    species, index, distances = quartz(seed=9, swap=False, amplitude=0.06)
    rows = rng.choice(len(index), 10, replace=False)
    order = np.tile(np.arange(K), (len(index), 1))
    order[rows] = np.array([rng.permutation(K) for _ in rows])
    index, distances = np.take_along_axis(index, order, 1), np.take_along_axis(distances, order, 1)
    flags = same_flags(monkeypatch, quartz_domain, species, index, distances, compiled_runs=False)
    kept = np.setdiff1d(np.arange(len(index)), rows)  # (the shuffled rows' k-th column is no longer their k-th)
    original = domain.outside(quartz_domain, species, *quartz(seed=9, amplitude=0.06)[1:])
    assert np.array_equal(flags[kept], original[kept])
    nan = quartz(seed=9, amplitude=0.06)[2].copy()
    nan[3, 5] = np.nan  # NaN: never "ascending"; numpy's sort and isfinite decide
    same_flags(monkeypatch, quartz_domain, species, quartz(seed=9, amplitude=0.06)[1], nan, compiled_runs=False)


def test_compiled_screen_matches_numpy_for_an_element_never_at_a_centre(compiled, monkeypatch, quartz_domain):
    species, index, distances = quartz(seed=4, amplitude=0.05)
    no_oxygen_centre = dataclasses.replace(quartz_domain, kth={"Si": quartz_domain.kth["Si"]})
    flags = same_flags(monkeypatch, no_oxygen_centre, species, index, distances)
    assert np.array_equal(flags, species == 1)
    # a third element, never seen at all: its atoms flagged, its neighbours flagged where an unseen rank appears
    three = domain.measure([quartz(0, 0.05)], ELEMENTS + ["Ge"], K)
    assert "Ge" not in three.kth
    mixed = np.where(np.random.default_rng(1).random(len(species)) < 0.05, 2, species)
    flags = same_flags(monkeypatch, three, mixed, index, distances)
    assert flags[mixed == 2].all() and 0 < flags[mixed != 2].sum() < (mixed != 2).sum()


def test_compiled_screen_matches_numpy_with_the_checkpoint_domain(compiled, monkeypatch):
    from lammps_phase.inference.classify import Classifier

    path = Path(__file__).resolve().parents[2] / "checkpoints" / "sio2.pt"
    if not path.is_file():
        pytest.skip(f"no checkpoint {path}")
    train = Classifier.load(path, device="cpu", threads=1, fast=False).domain
    assert train is not None
    crystal = structures.supercell(structures.build("alpha_quartz"), min_length=25.0)
    positions = np.asarray(crystal.positions) + np.random.default_rng(0).normal(0.0, 0.05, (len(crystal.positions), 3))
    species = np.array([train.elements.index(s) for s in crystal.symbols])
    neighbours = knn(positions, train.k, cell=np.asarray(crystal.cell), workers=2)
    flags = same_flags(monkeypatch, train, species, neighbours.index, neighbours.distances)
    assert flags.mean() < 0.01
    same_flags(monkeypatch, train, 1 - species, neighbours.index, neighbours.distances)


def test_without_a_compiler_the_screen_warns_once_and_uses_numpy(monkeypatch, tmp_path, quartz_domain):
    from lammps_phase.inference import cell_knn

    species, index, distances = quartz(seed=9, swap=True)
    expected = numpy_outside(monkeypatch, quartz_domain, species, index, distances)
    monkeypatch.delenv(cell_knn.BACKEND_ENV, raising=False)
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv(cell_knn.NATIVE_CACHE_ENV, str(tmp_path / "native"))
    monkeypatch.setattr(cell_knn._SEARCH, "failure", None)
    monkeypatch.setattr(domain._SCREEN, "failure", None)
    with pytest.warns(RuntimeWarning, match="training-domain screen is unavailable"):
        assert np.array_equal(domain.outside(quartz_domain, species, index, distances), expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        assert np.array_equal(domain.outside(quartz_domain, species, index, distances), expected)
    assert not list((tmp_path / "native").glob("*.so"))
