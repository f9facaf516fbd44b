"""knn must agree with a brute-force search over explicit periodic images in every box LAMMPS can have."""

import itertools

import numpy as np
import pytest

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.data.structures import build, supercell
from lammps_phase.inference.neighbors import (
    INDEX_DTYPE,
    NeighborCache,
    NeighborList,
    knn,
    wrap_positions,
)
from lammps_phase.cell import lammps_box_to_cell


def brute_force_distances(positions, k, cell, pbc, query=None, radius=None):
    """Sorted k nearest image distances from all images within enough shells (checked, not assumed)."""
    positions = np.asarray(positions, dtype=np.float64)
    query = np.arange(len(positions)) if query is None else np.asarray(query)
    if cell is None or not any(pbc):
        shifts = np.zeros((1, 3))
    else:
        cell = np.asarray(cell, dtype=np.float64)
        volume = abs(np.linalg.det(cell))
        spacing = volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
        n_atoms_per_volume = len(positions) / volume
        if radius is None:
            radius = 1.6 * (3.0 * k / (4.0 * np.pi * n_atoms_per_volume)) ** (1.0 / 3.0) + 0.5
        # fractional differences between atoms reach 1.1 when atoms sit up to 0.05 outside the box
        layers = [int(np.ceil(radius / h + 1.1)) if p else 0 for h, p in zip(spacing, pbc)]
        grid = itertools.product(*[range(-n, n + 1) for n in layers])
        shifts = np.array(list(grid), dtype=np.float64) @ cell
    images = positions[None, :, :] + shifts[:, None, :]  # (S, N, 3)
    rows = []
    for i in query:
        delta = (images - positions[i]).reshape(-1, 3)
        d = np.sqrt(np.partition(np.einsum("sc,sc->s", delta, delta), k)[: k + 1])
        d = np.sort(d)[1:]  # drop the atom itself at zero shift (the smallest entry)
        if cell is not None and any(pbc):
            assert d[k - 1] < radius, "brute-force shells too thin for this test"
        rows.append(d[:k])
    return np.array(rows)


def check_consistent(nl: NeighborList, positions, cell, pbc, query=None):
    """Vectors = r_j + integer cell shift - r_i, norms = distances, ascending, no image twice, no self."""
    positions = np.asarray(positions, dtype=np.float64)
    query = np.arange(len(positions)) if query is None else np.asarray(query)
    m, k = nl.index.shape
    assert nl.index.dtype == INDEX_DTYPE and nl.vectors.dtype == np.float32 and nl.distances.dtype == np.float32
    assert nl.vectors.shape == (m, k, 3) and nl.distances.shape == (m, k) and nl.k == k
    norms = np.linalg.norm(nl.vectors.astype(np.float64), axis=-1)
    np.testing.assert_allclose(norms, nl.distances, rtol=1e-6, atol=1e-6)
    assert np.all(np.diff(nl.distances, axis=1) >= 0)
    raw = positions[nl.index] - positions[query][:, None, :]
    residual = nl.vectors.astype(np.float64) - raw
    if cell is None:
        shift = np.zeros_like(residual)
        np.testing.assert_allclose(residual, 0.0, atol=1e-4)
    else:
        shift = residual @ np.linalg.inv(np.asarray(cell, dtype=np.float64))
        np.testing.assert_allclose(shift, np.rint(shift), atol=1e-5)
        shift = np.rint(shift)
        for dim in range(3):
            if not pbc[dim]:
                assert np.all(shift[..., dim] == 0)
    is_self = (nl.index == query[:, None]) & np.all(shift == 0, axis=-1)
    assert not is_self.any()
    for row in range(m):
        keys = {(int(j), *map(int, s)) for j, s in zip(nl.index[row], shift[row])}
        assert len(keys) == k, "the same image appears twice in a row"


def check_exact(positions, k, cell, pbc, query=None, origin=(0.0, 0.0, 0.0), radius=None):
    nl = knn(positions, k, cell=cell, pbc=pbc, origin=origin, query=query)
    check_consistent(nl, positions, cell, pbc, query)
    expected = brute_force_distances(positions, k, cell, pbc, query, radius)
    np.testing.assert_allclose(nl.distances, expected, rtol=1e-5, atol=1e-5)
    return nl


def random_in_cell(rng, n, cell, origin=(0.0, 0.0, 0.0), margin=0.0):
    frac = rng.uniform(-margin, 1.0 + margin, size=(n, 3))
    return np.asarray(origin) + frac @ cell


def fcc(n_cells, a, rng, noise):
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    grid = np.array(list(itertools.product(range(n_cells), repeat=3)))
    frac = (grid[:, None, :] + basis[None, :, :]).reshape(-1, 3)
    return frac * a + rng.normal(scale=noise, size=frac.shape), np.eye(3) * n_cells * a


def test_wrap_moves_atoms_by_whole_cell_vectors_into_the_box():
    rng = np.random.default_rng(0)
    cell, origin = lammps_box_to_cell((1, -2, 0), (6, 3, 4), xy=2.0, xz=-1.0, yz=1.5)
    pos = random_in_cell(rng, 200, cell, origin, margin=0.6)
    pos[0] = origin + cell[0]  # exactly on the upper x face
    wrapped = wrap_positions(pos, cell, origin, pbc=(True, True, False))
    to_frac = np.linalg.inv(cell)
    before, after = (pos - origin) @ to_frac, (wrapped - origin) @ to_frac
    assert np.all((after[:, :2] >= 0) & (after[:, :2] < 1))
    np.testing.assert_allclose(after[0], [0, 0, 0], atol=1e-12)
    shift = (pos - wrapped) @ to_frac
    np.testing.assert_allclose(shift, np.rint(shift), atol=1e-9)
    np.testing.assert_allclose(shift[:, 2], 0.0, atol=1e-12)  # z is not periodic: untouched
    inside = np.all((before[:, :2] >= 0) & (before[:, :2] < 1), axis=1)
    np.testing.assert_array_equal(wrapped[inside], pos[inside])


# ------------------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("k", [1, 12, 24])
def test_random_orthogonal_box(k):
    rng = np.random.default_rng(k)
    cell = np.diag([14.0, 11.0, 12.5])
    check_exact(random_in_cell(rng, 300, cell), k, cell, (True, True, True))


def test_float32_positions_and_offset_origin():
    rng = np.random.default_rng(1)
    cell, origin = lammps_box_to_cell((-20.0, 5.0, 100.0), (-8.0, 17.0, 113.0))
    pos = random_in_cell(rng, 250, cell, origin).astype(np.float32)
    check_exact(pos, 16, cell, (True, True, True), origin=origin)


def test_noisy_fcc_crystal_has_twelve_nearest_neighbours():
    rng = np.random.default_rng(2)
    a = 3.6
    pos, cell = fcc(4, a, rng, noise=0.02)
    nl = check_exact(pos, 18, cell, (True, True, True))
    nearest = a / np.sqrt(2)
    assert np.all(np.abs(nl.distances[:, :12] - nearest) < 0.15)
    assert np.all(np.abs(nl.distances[:, 12:] - a) < 0.15)


def test_perfect_fcc_with_exact_ties_matches_brute_force():
    pos, cell = fcc(3, 4.05, np.random.default_rng(0), noise=0.0)
    nl = check_exact(pos, 12, cell, (True, True, True))
    np.testing.assert_allclose(nl.distances, 4.05 / np.sqrt(2), rtol=1e-6)


@pytest.mark.parametrize("n_atoms,k", [(1, 12), (2, 16), (3, 20), (4, 12)])
def test_small_periodic_box_uses_images_of_the_same_atoms(n_atoms, k):
    rng = np.random.default_rng(n_atoms)
    cell, _ = lammps_box_to_cell((0, 0, 0), (2.5, 3.0, 2.8), xy=0.9, xz=-0.7, yz=0.4)
    pos = random_in_cell(rng, n_atoms, cell)
    nl = check_exact(pos, k, cell, (True, True, True))
    assert nl.index.shape == (n_atoms, k)
    counts = np.array([np.bincount(row, minlength=n_atoms) for row in nl.index])
    assert counts.max() > 1  # k exceeds the atoms of one image


def test_single_atom_simple_cubic_has_six_faces_then_twelve_edges():
    nl = check_exact(np.array([[0.3, 0.3, 0.3]]), 18, np.eye(3) * 2.0, (True, True, True))
    np.testing.assert_allclose(nl.distances[0, :6], 2.0, rtol=1e-6)
    np.testing.assert_allclose(nl.distances[0, 6:], 2.0 * np.sqrt(2), rtol=1e-6)
    assert np.all(nl.index == 0)


@pytest.mark.parametrize(
    "tilts",
    [(5.0, 0.0, 0.0), (-5.0, 4.5, -4.0), (4.9, -4.9, 4.4), (-2.0, -5.0, 5.0)],
)
def test_strongly_tilted_triclinic_box(tilts):
    rng = np.random.default_rng(int(sum(abs(t) for t in tilts) * 10))
    cell, origin = lammps_box_to_cell((0.5, -1.0, 2.0), (10.5, 9.0, 11.0), *tilts)
    pos = random_in_cell(rng, 220, cell, origin)
    check_exact(pos, 16, cell, (True, True, True), origin=origin)


def test_inhomogeneous_sample_where_the_mean_density_underestimates_the_reach():
    # A dense blob in mid-box plus sparse atoms: the sparse atoms' nearest blob atoms are periodic images
    # far beyond the shell the mean density suggests, so the search must notice and widen its shell.
    rng = np.random.default_rng(12)
    cell, origin = lammps_box_to_cell((0, 0, 0), (20.0, 19.0, 18.0), xy=-7.0, xz=6.0, yz=5.0)
    blob = origin + np.array([0.45, 0.45, 0.45]) @ cell + rng.normal(scale=1.0, size=(400, 3))
    sparse = origin + rng.uniform(0.9, 1.0, size=(6, 3)) @ cell
    pos = np.concatenate([blob, sparse])
    query = np.concatenate([np.arange(400, 406), np.arange(0, 400, 40)])
    check_exact(pos, 16, cell, (True, True, True), query=query, origin=origin, radius=14.0)
    check_exact(pos, 16, cell, (True, False, True), query=query, origin=origin, radius=14.0)
    ortho = np.diag([20.0, 19.0, 18.0])
    pos = np.concatenate([np.array([9.0, 8.5, 8.0]) + rng.normal(size=(400, 3)), rng.uniform(0.9, 1.0, (6, 3)) * 19])
    check_exact(pos, 16, ortho, (True, True, True), query=query, radius=14.0)


def test_ghost_shell_holds_every_image_within_its_width():
    # The invariant exactness rests on: every image closer than w to a point in the box is a ghost.
    from lammps_phase.inference.neighbors import _images_within_shell

    rng = np.random.default_rng(13)
    cell, origin = lammps_box_to_cell((0, 0, 0), (6.0, 5.0, 7.0), xy=3.0, xz=-3.4, yz=2.4)
    atoms = random_in_cell(rng, 40, cell, origin)
    probes = random_in_cell(rng, 400, cell, origin)
    width = 2.5
    ghosts, _ = _images_within_shell(atoms, cell, np.asarray(origin), np.array([True, True, True]), width)
    grid = np.array(list(itertools.product(range(-3, 4), repeat=3)), dtype=np.float64) @ cell
    every_image = (atoms[None, :, :] + grid[:, None, :]).reshape(-1, 3)
    for probe in probes:
        near = every_image[np.linalg.norm(every_image - probe, axis=1) <= width]
        near_ghosts = ghosts[np.linalg.norm(ghosts - probe, axis=1) <= width]
        assert len(near) == len(near_ghosts)
        np.testing.assert_allclose(np.sort(near, axis=0), np.sort(near_ghosts, axis=0), atol=1e-9)


def test_small_orthogonal_box_where_minimum_image_is_not_enough():
    # 20 atoms, k = 16: many rows need a second image of some atom; the fast path must hand them on.
    rng = np.random.default_rng(3)
    cell = np.diag([4.0, 5.0, 4.5])
    check_exact(random_in_cell(rng, 20, cell), 16, cell, (True, True, True))


def test_atoms_slightly_outside_the_box():
    rng = np.random.default_rng(4)
    cell, origin = lammps_box_to_cell((0, 0, 0), (9.0, 8.0, 10.0), xy=2.5, xz=-1.5, yz=1.0)
    pos = random_in_cell(rng, 200, cell, origin, margin=0.05)
    assert np.any((pos - origin) @ np.linalg.inv(cell) < 0) and np.any((pos - origin) @ np.linalg.inv(cell) >= 1)
    check_exact(pos, 14, cell, (True, True, True), origin=origin)
    ortho = np.diag([9.0, 8.0, 10.0])
    check_exact(random_in_cell(rng, 200, ortho, margin=0.05), 14, ortho, (True, True, True))


@pytest.mark.parametrize("pbc", [(True, True, False), (False, True, True), (True, False, False)])
def test_mixed_periodicity(pbc):
    rng = np.random.default_rng(5)
    cell, origin = lammps_box_to_cell((0, 0, 0), (8.0, 9.0, 20.0), xy=2.0, xz=1.0, yz=-3.0)
    pos = random_in_cell(rng, 150, cell, origin)
    pos[:, 2] *= 0.4  # a slab: vacuum above it along z
    check_exact(pos, 16, cell, pbc)


def test_fully_non_periodic_cluster_without_cell():
    rng = np.random.default_rng(6)
    pos = rng.normal(scale=4.0, size=(120, 3))
    nl = check_exact(pos, 16, None, (False, False, False))
    diff = pos[nl.index] - pos[:, None, :]
    np.testing.assert_allclose(nl.vectors, diff, atol=1e-5)


def test_query_subset_matches_full_rows():
    rng = np.random.default_rng(7)
    cell, origin = lammps_box_to_cell((0, 0, 0), (10.0, 10.0, 10.0), xy=3.0)
    pos = random_in_cell(rng, 200, cell, origin)
    query = np.array([5, 199, 0, 5, 77])
    full = knn(pos, 16, cell=cell)
    part = check_exact(pos, 16, cell, (True, True, True), query=query)
    np.testing.assert_allclose(part.distances, full.distances[query], rtol=1e-6)
    owned = np.arange(40)  # MPI local mode: owned atoms query, owned + ghost atoms are candidates
    local = check_exact(pos, 12, None, (False, False, False), query=owned)
    with_cell = knn(pos, 12, cell=cell, pbc=False, query=owned)  # a cell without periodicity changes nothing
    np.testing.assert_array_equal(with_cell.distances, local.distances)
    assert knn(pos, 4, cell=cell, query=np.array([], dtype=np.int64)).index.shape == (0, 4)


def test_coincident_atoms_are_neighbours_at_zero_distance():
    rng = np.random.default_rng(8)
    cell = np.eye(3) * 6.0
    pos = random_in_cell(rng, 30, cell)
    pos[1] = pos[0]
    nl = check_exact(pos, 8, cell, (True, True, True))
    assert nl.index[0, 0] == 1 and nl.distances[0, 0] == 0.0
    assert nl.index[1, 0] == 0


# ------------------------------------------------------------------------------------- errors


def test_nan_positions_name_count_and_first_atom():
    pos = np.random.default_rng(9).uniform(0, 5, size=(10, 3))
    pos[3, 1] = np.nan
    pos[7, 0] = np.inf
    with pytest.raises(LammpsPhaseError, match=r"2 atoms.*atom index 3"):
        knn(pos, 4, cell=np.eye(3) * 5)


def test_singular_cell_is_rejected():
    pos = np.zeros((5, 3))
    flat = np.array([[5.0, 0, 0], [0, 5.0, 0], [2.0, 3.0, 0.0]])
    with pytest.raises(LammpsPhaseError, match="singular"):
        knn(pos, 2, cell=flat)
    with pytest.raises(LammpsPhaseError, match="singular"):
        wrap_positions(pos, np.zeros((3, 3)))


def test_bad_k_and_missing_cell_and_bad_query():
    pos = np.random.default_rng(10).uniform(0, 5, size=(10, 3))
    for bad_k in (0, -3, 2.5):
        with pytest.raises(LammpsPhaseError, match="k must be"):
            knn(pos, bad_k, cell=np.eye(3) * 5)
    with pytest.raises(LammpsPhaseError, match="no cell"):
        knn(pos, 3)
    with pytest.raises(LammpsPhaseError, match=r"\[0, 10\)"):
        knn(pos, 3, cell=np.eye(3) * 5, query=[0, 10])


def test_too_few_atoms_without_periodicity_says_how_many_are_needed():
    pos = np.random.default_rng(11).uniform(0, 5, size=(10, 3))
    with pytest.raises(LammpsPhaseError, match=r"only 10 atoms.*k \+ 1 = 17"):
        knn(pos, 16, pbc=False)
    assert knn(pos, 9, pbc=False).index.shape == (10, 9)


# ------------------------------------------------------------------------------------ neighbour reuse

K = 12


@pytest.fixture(scope="module")
def jittered_quartz():
    """A jittered α-quartz supercell in its own hexagonal (triclinic) cell: 486 atoms."""
    crystal = supercell(build("alpha_quartz"), 12.0, orthogonal=False)
    pos = crystal.positions + np.random.default_rng(3).normal(scale=0.08, size=crystal.positions.shape)
    return pos, crystal.cell, list(crystal.symbols)


def same_neighbors(a, b) -> bool:
    """Same neighbour images per row (order-insensitive among equal distances), vectors to float32 precision."""
    if not np.allclose(a.distances, b.distances, atol=1e-5):
        return False
    va = np.sort(np.round(a.vectors.reshape(len(a.index), -1), 4), axis=1)
    vb = np.sort(np.round(b.vectors.reshape(len(b.index), -1), 4), axis=1)
    return np.array_equal(np.sort(a.index, axis=1), np.sort(b.index, axis=1)) and np.allclose(va, vb, atol=2e-4)


def test_neighbor_reuse_is_exact_after_small_moves_and_rebuilds_after_large(jittered_quartz):
    pos, cell, symbols = jittered_quartz
    cache = NeighborCache(K, extra=8)
    species = np.array([s == "O" for s in symbols], dtype=np.int64)
    first = cache.get(pos, cell, species=species)
    assert same_neighbors(first, knn(pos, K, cell=cell)) and cache.builds == 1

    rng = np.random.default_rng(0)
    moved = pos + rng.normal(scale=0.02, size=pos.shape)
    # LAMMPS re-wraps atoms that leave the box: emulate by shifting some atoms by whole box vectors
    wrapped = moved.copy()
    wrapped[::7] += cell[0]
    wrapped[3::11] -= cell[2] + cell[1]
    second = cache.get(wrapped, cell, species=species)
    assert cache.builds == 1 and cache.reuses == 1 and not cache.last_rebuilt
    assert same_neighbors(second, knn(wrapped, K, cell=cell))

    far = moved.copy()
    far[0] += np.array([0.9, -0.7, 0.5])  # one atom jumps ~1.3 Å: candidate lists can no longer be trusted
    third = cache.get(far, cell, species=species)
    assert cache.last_rebuilt and cache.builds == 2
    assert same_neighbors(third, knn(far, K, cell=cell))


def test_neighbor_cache_backs_off_when_reuse_keeps_failing(jittered_quartz):
    pos, cell, _ = jittered_quartz
    cache = NeighborCache(K, extra=8, backoff=3)
    rng = np.random.default_rng(1)
    frames = [pos + rng.normal(scale=0.4, size=pos.shape) for _ in range(9)]  # every call moves atoms too far
    for i, frame in enumerate(frames):
        nl = cache.get(frame, cell)
        assert same_neighbors(nl, knn(frame, K, cell=cell)), f"call {i}"
        assert nl.index.shape == (len(pos), K)
    # call 0 builds with candidates; call 1 tries reuse, fails and builds plainly, as do calls 2, 3 without trying;
    # call 4 builds with candidates again, call 5 tries and fails: now 6 plain builds (calls 5-10)
    assert cache.failed_reuses == 2 and cache.reuses == 0 and cache.builds == 9


def test_neighbor_cache_rebuilds_when_the_system_changes(jittered_quartz):
    pos, cell, symbols = jittered_quartz
    species = np.array([s == "O" for s in symbols], dtype=np.int64)
    cache = NeighborCache(K)
    cache.get(pos, cell, species=species)
    cache.get(pos, cell * 1.01, species=species)  # box deformed (NPT)
    assert cache.last_rebuilt
    swapped = species.copy()
    swapped[:2] = swapped[:2][::-1] if swapped[0] != swapped[1] else 1 - swapped[:2]
    cache.get(pos, cell * 1.01, species=swapped)  # different atoms
    assert cache.last_rebuilt and cache.builds == 3
    cache.get(pos[:-1], cell * 1.01, species=swapped[:-1])  # an atom was lost
    assert cache.builds == 4


def test_neighbor_cache_probes_the_atoms_that_moved_most_first(monkeypatch):
    """Above 2 × _REUSE_PROBE atoms the reuse test starts with the atoms that moved most: one far jump ends it
    there (rebuild, exact), while small moves still pass the probe and the full test (reuse, exact)."""
    from lammps_phase.inference import neighbors as nb

    monkeypatch.setattr(nb, "_REUSE_PROBE", 256)
    crystal = supercell(build("alpha_quartz"), 22.0)
    cell = crystal.cell
    rng = np.random.default_rng(4)
    pos = crystal.positions + rng.normal(scale=0.05, size=crystal.positions.shape)
    assert len(pos) > 2 * nb._REUSE_PROBE
    passes = []
    original = np.einsum
    monkeypatch.setattr(nb.np, "einsum", lambda spec, *a: (passes.append(len(a[0])) if spec == "ijk,ijk->ij" else None)
                        or original(spec, *a))
    cache = NeighborCache(K, extra=8)
    cache.get(pos, cell)
    small = pos + rng.normal(scale=0.01, size=pos.shape)
    passes.clear()
    assert same_neighbors(cache.get(small, cell), knn(small, K, cell=cell)) and cache.reuses == 1
    assert passes == [nb._REUSE_PROBE, len(pos)]  # probe, then the full pass
    far = small.copy()
    far[7] += np.array([1.1, -0.8, 0.6])
    passes.clear()
    assert same_neighbors(cache.get(far, cell), knn(far, K, cell=cell)) and cache.failed_reuses == 1
    assert passes == [nb._REUSE_PROBE]  # stopped at the probe


def test_neighbor_cache_pauses_double_up_to_a_limit(jittered_quartz, monkeypatch):
    """Each failed retry doubles the plain builds before the next try, but never beyond _MAX_PAUSES × backoff."""
    from lammps_phase.inference import neighbors as nb

    monkeypatch.setattr(nb, "_MAX_PAUSES", 4)
    pos, cell, _ = jittered_quartz
    cache = NeighborCache(K, extra=8, backoff=1)
    rng = np.random.default_rng(2)
    tried = []
    for call in range(40):
        before = cache.failed_reuses
        cache.get(pos + rng.normal(scale=0.4, size=pos.shape), cell)  # always too far to reuse
        if cache.failed_reuses > before:
            tried.append(call)
    # a failed try and the calls after it build plainly, 1, 2, 4, 4, ... calls in all, then one candidate build
    # precedes the next try: gaps of pause + 1
    gaps = np.diff(tried).tolist()
    assert gaps[:4] == [2, 3, 5, 5] and set(gaps[3:]) == {5}
