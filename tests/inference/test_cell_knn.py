"""The compiled cell-list search must find what scipy's cKDTree finds, and knn must fall back to the tree without it."""

import itertools
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from lammps_phase.data.structures import build, supercell
from lammps_phase.inference import cell_knn
from lammps_phase.inference.neighbors import knn


@pytest.fixture(autouse=True)
def default_backend(monkeypatch):
    monkeypatch.delenv(cell_knn.BACKEND_ENV, raising=False)


@pytest.fixture
def compiled():
    if not cell_knn.available():
        compiler = shlex.split(os.environ.get("CC", "").strip() or "cc")[0]
        if shutil.which(compiler) is None:
            pytest.skip(f"no C compiler ({compiler}): the compiled neighbour search cannot be built here")
        pytest.fail(f"a C compiler exists ({compiler}) but the compiled search did not build: {cell_knn.failure()}")


def compare_with_tree(points, queries, kp1, bound=np.inf, threads=2):
    """Distances equal; index sets equal in every row without a tie at its last neighbour."""
    dist, idx = cell_knn.query(points, queries, kp1, bound, threads)
    assert dist.shape == idx.shape == (len(queries), kp1) and dist.dtype == np.float64 and idx.dtype == np.int64
    t_dist, t_idx = cKDTree(points).query(queries, kp1 + 1, distance_upper_bound=bound)
    missing = ~np.isfinite(t_dist[:, :kp1])
    assert np.array_equal(~np.isfinite(dist), missing)
    assert np.all(idx[missing] == len(points))
    np.testing.assert_allclose(dist[~missing], t_dist[:, :kp1][~missing], rtol=1e-12, atol=1e-12)
    assert np.all(np.diff(np.where(np.isfinite(dist), dist, 1e300), axis=1) >= 0)
    clear = ~np.isclose(t_dist[:, kp1 - 1], t_dist[:, kp1], rtol=1e-12, atol=0)
    for row in np.flatnonzero(clear):
        assert set(idx[row]) == set(t_idx[row, :kp1])
    return dist, idx


def quartz(length, noise, seed=0):
    crystal = supercell(build("alpha_quartz"), length)
    rng = np.random.default_rng(seed)
    return crystal.positions + rng.normal(scale=noise, size=crystal.positions.shape), crystal.cell


@pytest.mark.parametrize("bound", [np.inf, 2.5, 1.0])
def test_random_points_match_the_tree(compiled, bound):
    rng = np.random.default_rng(1)
    points = rng.uniform(-3.0, 17.0, size=(3000, 3))
    queries = np.concatenate([points[:500], rng.uniform(-6.0, 20.0, size=(200, 3))])  # some outside the points' box
    compare_with_tree(points, queries, 17, bound)


@pytest.mark.parametrize("noise", [0.05, 0.3])
def test_noisy_alpha_quartz_matches_the_tree(compiled, noise):
    points, _ = quartz(25.0, noise)
    compare_with_tree(points, points, 17)
    compare_with_tree(points, points[::7], 33, bound=4.5, threads=1)


def test_perfect_lattice_ties_are_ordered_by_index(compiled):
    # spacing 1.5: coordinates, differences and squared distances are exact, so equal distances are exact ties
    grid = np.array(list(itertools.product(range(9), repeat=3)), dtype=np.float64) * 1.5
    dist, idx = compare_with_tree(grid, grid, 19)  # 1 + 6 faces + 12 edges: every row ends exactly on a shell
    actual = np.linalg.norm(grid[idx] - grid[:, None, :], axis=-1)
    np.testing.assert_allclose(actual, dist, rtol=0, atol=1e-12)
    same = dist[:, 1:] == dist[:, :-1]
    assert same.any() and np.all(idx[:, 1:][same] > idx[:, :-1][same])  # the documented tie rule
    for threads in (1, 3):  # and it does not depend on the threads
        again = cell_knn.query(grid, grid, 19, threads=threads)
        assert np.array_equal(again[1], idx)


def test_sparse_cluster_fills_missing_neighbours_like_the_tree(compiled):
    rng = np.random.default_rng(2)
    cluster = rng.normal(scale=1.0, size=(12, 3))
    far = rng.normal(scale=1.0, size=(5, 3)) + 40.0  # a second, distant cluster: beyond the bound
    points = np.concatenate([cluster, far])
    dist, idx = compare_with_tree(points, points, 17, bound=6.0)
    assert np.isinf(dist[:12, 12:]).all() and (idx[:12, 12:] == len(points)).all()
    assert np.isinf(dist[12:, 5:]).all()
    dist, _ = compare_with_tree(points, points, 17)  # no bound: the far cluster is found by the shell search
    assert np.isfinite(dist).all()
    one, one_idx = cell_knn.query(points[:1], points[:1], 3)
    assert one[0, 0] == 0.0 and np.isinf(one[0, 1:]).all() and (one_idx[0] == [0, 1, 1]).all()


def knn_both(monkeypatch, *args, **kwargs):
    """knn by the compiled search (which writes the rows in C) and by the tree (numpy), and the passes each made."""
    from lammps_phase.inference import neighbors

    passes = []
    for name in ("_compiled_pass", "_tree_pass"):
        def counted(*a, _pass=getattr(neighbors, name), _name=name, **kw):
            passes.append(_name)
            return _pass(*a, **kw)
        monkeypatch.setattr(neighbors, name, counted)
    fast = knn(*args, **kwargs)
    with monkeypatch.context() as m:
        m.setenv(cell_knn.BACKEND_ENV, "tree")
        m.setattr(cell_knn, "CellSearch", None)  # the forced tree path must not touch the compiled one
        tree = knn(*args, **kwargs)
    return fast, tree, passes


def assert_identical(fast, tree, ties=False):
    """Bit for bit; with ``ties``, images at exactly the same distance (an atom's own images at +a and -a in a
    small box) may come in either order (cKDTree's order of ties is its own), so they are compared as sets
    (which needs no tie across the k-th column: there the two backends may keep different images)."""
    assert fast.index.dtype == tree.index.dtype and fast.vectors.dtype == tree.vectors.dtype
    assert np.array_equal(fast.distances, tree.distances)
    if not ties:
        assert np.array_equal(fast.index, tree.index) and np.array_equal(fast.vectors, tree.vectors)
        return
    for row in range(len(fast.index)):
        for d in np.unique(fast.distances[row]):
            cols = np.flatnonzero(fast.distances[row] == d)
            key = lambda nl: sorted(zip(nl.index[row, cols].tolist(), map(tuple, nl.vectors[row, cols].tolist())))
            assert key(fast) == key(tree)


@pytest.mark.parametrize("orthogonal", [True, False])
def test_knn_is_identical_with_either_backend_on_noisy_quartz(compiled, monkeypatch, orthogonal):
    crystal = supercell(build("alpha_quartz"), 15.0, orthogonal=orthogonal)
    assert orthogonal or crystal.cell[1, 0] != 0  # hexagonal: a triclinic LAMMPS box
    rng = np.random.default_rng(3)
    points = crystal.positions + rng.normal(scale=0.1, size=crystal.positions.shape)
    points[:20] -= crystal.cell[0] * 1.3  # some atoms outside the box: wrapped first
    fast, tree, passes = knn_both(monkeypatch, points, 16, crystal.cell, workers=2)
    assert passes == ["_compiled_pass", "_tree_pass"]
    assert_identical(fast, tree)
    assert np.all(np.diff(fast.distances, axis=1) >= 0) and fast.distances[:, 0].min() > 0  # the atom itself dropped


def test_knn_is_identical_with_either_backend_when_the_shell_widens(compiled, monkeypatch):
    # a blob mid-box and two atoms near a corner of a small triclinic box: the mean density underestimates the
    # corner atoms' reach, so their rows fail the first shell and are searched again with a wider one
    rng = np.random.default_rng(5)
    cell = np.array([[8.1, 0.0, 0.0], [0.8, 7.9, 0.0], [-0.6, 0.5, 8.3]])
    blob = np.array([0.5, 0.5, 0.5]) @ cell + rng.normal(scale=0.4, size=(30, 3))
    points = np.concatenate([blob, rng.uniform(0.0, 0.05, size=(2, 3)) @ cell])
    fast, tree, passes = knn_both(monkeypatch, points, 16, cell, workers=2)
    assert passes.count("_compiled_pass") > 1 and passes.count("_tree_pass") > 1  # rows were searched again
    assert_identical(fast, tree)
    small, small_tree, _ = knn_both(monkeypatch, points[-5:], 21, cell / 2)  # 5 atoms, k = 21: many images each
    assert_identical(small, small_tree, ties=True)
    beyond = knn(points[-5:], 22, cell / 2).distances
    assert not np.any(beyond[:, 20] == beyond[:, 21])  # k chosen so that no tie straddles the k-th column
    assert np.array([np.bincount(row, minlength=5) for row in small.index]).min() >= 2


def test_knn_is_identical_with_either_backend_without_periodicity_and_for_a_query_subset(compiled, monkeypatch):
    rng = np.random.default_rng(6)
    clusters = np.concatenate([rng.normal(scale=1.0, size=(150, 3)), rng.normal(scale=2.0, size=(60, 3)) + 30.0])
    fast, tree, _ = knn_both(monkeypatch, clusters, 16, None, pbc=False, workers=2)
    assert_identical(fast, tree)
    assert np.all(fast.index[:150] < 150) and np.all(fast.index[150:] >= 150)  # the clusters are far apart
    points, cell = quartz(14.0, 0.1, seed=7)
    query = rng.permutation(len(points))[:137]
    fast, tree, _ = knn_both(monkeypatch, points, 16, cell, query=query, workers=2)
    assert_identical(fast, tree)
    full = knn(points, 16, cell, workers=2)
    assert np.array_equal(fast.index, full.index[query]) and np.array_equal(fast.vectors, full.vectors[query])
    mixed, mixed_tree, _ = knn_both(monkeypatch, points, 16, cell, pbc=(True, False, True), query=query[:50])
    assert_identical(mixed, mixed_tree)


def test_compiled_neighbors_drop_the_atom_itself_or_else_the_farthest(compiled):
    # atoms 0 and 1 coincide with 2 and 3 more points at the same place: the atom can be crowded out of its k + 1
    points = np.concatenate([np.zeros((4, 3)), np.array([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0]])])
    search = cell_knn.CellSearch(points, 3, threads=2)
    index = np.full((7, 2), -1, dtype=np.int32)
    vectors = np.zeros((7, 2, 3), dtype=np.float32)
    distances = np.zeros((7, 2), dtype=np.float32)
    atom_of = np.array([0, 1, 2, 3, 4, 5, 6]) * 10
    kth = search.neighbors(np.arange(7), np.arange(7)[::-1], atom_of, 2, np.inf, 1.5, index, vectors, distances)
    # query 3: nearest 0, 1, 2 (ties by index), itself not among them: the farthest column goes
    assert index[3].tolist() == [0, 10]  # row 3 = query 3
    assert index[6].tolist() == [10, 20]  # row 6 = query 0: itself (point 0) dropped from 0, 1, 2
    assert np.array_equal(kth[:4], np.zeros(4)) and kth[4] == 1.0 and kth[5] == 2.0 and kth[6] == 3.0
    assert np.array_equal(index[:2], np.full((2, 2), -1))  # rows of queries 6, 5: k-th beyond the shell, untouched
    assert index[2].tolist() == [0, 10] and distances[2].tolist() == [1.0, 1.0]  # query 4: k-th 1.0 <= 1.5
    np.testing.assert_array_equal(vectors[2], [[-1, 0, 0], [-1, 0, 0]])
    with pytest.raises(ValueError, match="out of range"):
        search.neighbors(np.array([7]), np.array([0]), atom_of, 2, np.inf, 1.0, index, vectors, distances)


def test_without_a_compiler_knn_warns_once_and_uses_the_tree(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv(cell_knn.NATIVE_CACHE_ENV, str(tmp_path / "native"))
    monkeypatch.setattr(cell_knn._SEARCH, "failure", None)
    rng = np.random.default_rng(4)
    points = rng.uniform(0.0, 10.0, size=(200, 3))
    with pytest.warns(RuntimeWarning, match="apt-get install gcc"):
        nl = knn(points, 8, np.eye(3) * 10.0)
    assert not cell_knn.available() and not list((tmp_path / "native").glob("*.so"))
    expected = cKDTree(points, boxsize=10.0).query(points, 9)[0][:, 1:]
    np.testing.assert_allclose(nl.distances, expected, rtol=1e-6)


def test_library_lands_in_the_native_cache_beside_the_kernel_cache(compiled, monkeypatch, tmp_path):
    monkeypatch.delenv(cell_knn.NATIVE_CACHE_ENV, raising=False)
    monkeypatch.setenv("LAMMPS_PHASE_KERNEL_CACHE", str(tmp_path / "kernels"))
    assert cell_knn.cache_dir() == tmp_path / "native"
    assert cell_knn.available()
    assert [p.name for p in (tmp_path / "native").iterdir() if p.name.startswith(".")] == []  # no temporaries left
    assert len(list((tmp_path / "native").glob("cell_knn-*.so"))) == 1


def test_neighbor_tests_pass_with_the_tree_backend_too():
    """The default run of test_neighbors.py uses the compiled search (when it builds); this runs it on the tree."""
    env = dict(os.environ, **{cell_knn.BACKEND_ENV: "tree"})
    here = Path(__file__).with_name("test_neighbors.py")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(here)],
                          env=env, capture_output=True, text=True, cwd=here.parents[2])
    assert proc.returncode == 0, proc.stdout[-3000:]
