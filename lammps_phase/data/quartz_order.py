"""Is a quartz box α or β? The coherent tilt of its tetrahedra away from the β-quartz sites.

Coordination, density and lattice sites cannot tell the two quartzes apart: α-quartz is β-quartz with its
tetrahedra tilted one way (or the other, its Dauphiné twin), about 0.4 Å of O displacement. A heating run
started as β-quartz in a potential whose α→β transition lies higher tilts into α within a picosecond (Vashishta
1990 below ≈ 2500 K) and would pass every other check while carrying a false label.

Every atom of a quartz box sits near a site of the β structure. In α-quartz all atoms of one sublattice are
displaced the same way; in hot β-quartz each atom leaves its site its own way. So the displacement averaged
over the translation-equivalent atoms of a box (the 18 sublattices of the orthogonal β cell) keeps the tilt
and averages the thermal motion away:

    Q = √⟨|U_s|²⟩ over the O sublattices s,   U_s = mean over the atoms i of s of (r_i − β site_i)

reported as tilt = Q / Q(ideal α-quartz): ≈ 1 for α-quartz (0.7–1.2 across potentials and up to a few
hundred K below the transition), and near the noise floor √(⟨|u|²⟩ / atoms per sublattice) / Q(α) — 0.2–0.5
in a 324-atom box — for β-quartz. Two twin domains in one box cancel, so this is a measure for small bulk
boxes that are a whole number of orthogonal quartz cells (what the heating runs build).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.spatial import cKDTree

from lammps_phase.errors import LammpsPhaseError

#: the classes the tilt decides between, and the tilt each must keep (a band between them is left to noise)
MIN_ALPHA_TILT = 0.5
MAX_BETA_TILT = 0.6


@functools.lru_cache(maxsize=1)
def _beta_cell() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(orthogonal cell, fractional sites, species) of β-quartz: the 18-atom reference cell."""
    from lammps_phase.data import structures

    base = structures.supercell(structures.build("beta_quartz"), 0.1)
    return base.cell, base.positions @ np.linalg.inv(base.cell), np.array(base.symbols)


def _sites(repeats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fractional sites, species, sublattice) of the β cell repeated ``repeats`` times."""
    _, frac, species = _beta_cell()
    images = np.stack(np.meshgrid(*(np.arange(n) for n in repeats), indexing="ij"), axis=-1).reshape(-1, 3)
    sites = (frac[None, :, :] + images[:, None, :]) / repeats
    return sites.reshape(-1, 3), np.tile(species, len(images)), np.tile(np.arange(len(frac)), len(images))


def _nearest_sites(frac: np.ndarray, species: np.ndarray, sites: np.ndarray, site_species: np.ndarray,
                   lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distance Å, displacement Å, site index) of every atom from its nearest β site of its own element.

    ``frac`` may hold several trial frames stacked along the first axis (shape (T, N, 3)).
    """
    shape = frac.shape
    distance, nearest = np.empty(shape[:-1]), np.empty(shape[:-1], dtype=int)
    offset = np.empty(shape)
    for element in np.unique(species):
        mine, theirs = np.flatnonzero(species == element), np.flatnonzero(site_species == element)
        tree = cKDTree(np.mod(sites[theirs], 1.0) * lengths, boxsize=lengths)
        d, j = tree.query(np.mod(frac[..., mine, :], 1.0) * lengths)
        step = frac[..., mine, :] - sites[theirs][j]
        offset[..., mine, :] = (step - np.round(step)) * lengths
        distance[..., mine], nearest[..., mine] = d, theirs[j]
    return distance, offset, nearest


def _site_offsets(positions: np.ndarray, species, cell: np.ndarray, origin: np.ndarray, missing_atoms: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offset Å from the nearest β site, that site's sublattice, the O sublattices) of every atom, the origin
    shift fitted; the box's mean offset removed. ``missing_atoms``: the box may miss atoms (a void cut into it,
    up to half of them), never hold extra ones."""
    cell = np.asarray(cell, float)
    if not np.allclose(cell, np.diag(np.diag(cell)), atol=1e-6):
        raise LammpsPhaseError("the quartz tilt needs an orthogonal box (the heating runs' quartz boxes are)")
    base_cell, base_frac, base_species = _beta_cell()
    lengths = np.diag(cell)
    repeats = np.maximum(np.rint(lengths / np.diag(base_cell)).astype(int), 1)
    sites, site_species, sublattice = _sites(repeats)
    species = np.asarray(species)
    elements = sorted(set(site_species))
    missing = [int(np.sum(site_species == e)) - int(np.sum(species == e)) for e in elements]
    allowed = len(sites) // 2 if missing_atoms else 0
    if len(sites) != len(positions) + sum(missing) or min(missing) < 0 or sum(missing) > allowed:
        raise LammpsPhaseError(f"a {lengths.round(2)} Å box of {len(positions)} atoms is not a whole number of quartz "
                               f"cells ({len(sites)} sites): the α/β tilt is defined for bulk boxes of the library's "
                               f"orthogonal quartz cell; build the crystal from structure = \"alpha_quartz\" or "
                               f"\"beta_quartz\"")
    frac = (np.asarray(positions, float) - origin) @ np.linalg.inv(cell)
    # the origin shift that puts the atoms on the β sites: a coarse grid over one β cell, then two refinements
    step = 1.0 / repeats / 8.0
    shift = np.zeros(3)
    for _ in range(3):
        grid = np.stack(np.meshgrid(*([np.arange(-4, 4)] * 3), indexing="ij"), axis=-1).reshape(-1, 3) * step + shift
        distance = _nearest_sites(frac[None, :, :] + grid[:, None, :], species, sites, site_species, lengths)[0]
        shift = grid[int(np.argmin(np.median(distance, axis=1)))]
        step = step / 4.0
    _, offset, nearest = _nearest_sites(frac + shift, species, sites, site_species, lengths)
    offset -= offset.mean(axis=0)
    return offset, sublattice[nearest], np.flatnonzero(base_species == "O")


def coherent_displacement(positions: np.ndarray, species, cell: np.ndarray, origin: np.ndarray) -> float:
    """Q (Å): the rms over O sublattices of the mean displacement from the β-quartz sites (module docstring)."""
    offset, sublattice, oxygen = _site_offsets(positions, species, cell, origin)
    coherent = np.array([offset[sublattice == s].mean(axis=0) for s in oxygen])
    return float(np.sqrt(np.mean(np.sum(coherent**2, axis=1))))


def tilt_by_group(positions: np.ndarray, species, cell: np.ndarray, origin: np.ndarray,
                  groups: list[np.ndarray]) -> list[tuple[float, float]]:
    """(tilt, noise floor) of each group of atoms (boolean masks) in one quartz box, e.g. shells by depth below a
    void: where next to a free surface does the quartz lose its tilt? The floor is what a group of that size
    reads with no coherent tilt at all: the atoms' scatter about their sublattice's mean, / √(atoms per
    sublattice), in units of ideal α. A group's tilt says α only well above its floor. The box may miss atoms
    (a void)."""
    offset, sublattice, oxygen = _site_offsets(positions, species, cell, origin, missing_atoms=True)
    scale = ideal_alpha_displacement()
    out = []
    for group in groups:
        members = [offset[np.asarray(group, bool) & (sublattice == s)] for s in oxygen]
        if min(len(m) for m in members) < 2:
            out.append((float("nan"), float("nan")))
            continue
        coherent = np.array([m.mean(axis=0) for m in members])
        spread = np.mean([np.sum((m - c) ** 2, axis=1).mean() for m, c in zip(members, coherent)])
        per_sublattice = np.mean([len(m) for m in members])
        out.append((float(np.sqrt(np.mean(np.sum(coherent**2, axis=1)))) / scale,
                    float(np.sqrt(spread / per_sublattice)) / scale))
    return out


def local_tilt(positions: np.ndarray, species, cell: np.ndarray, origin: np.ndarray, radius: float = 7.0
               ) -> np.ndarray:
    """Tilt of each atom's neighbourhood: the coherent displacement of every O sublattice averaged over the atoms
    within ``radius`` Å (the atom included), rms over the sublattices, in units of ideal α.

    Why: a shell's tilt (:func:`tilt_by_group`) is one number for hundreds of atoms; this one says where inside it
    the quartz keeps its tilt, so a model's β read can be set against the tilt right there (benchmarks/void_tilt.py).
    Its floor is that of a group of the sphere's size: at 7 Å about nine atoms per sublattice. The box may miss
    atoms (a void)."""
    from scipy import sparse

    offset, sublattice, oxygen = _site_offsets(positions, species, cell, origin, missing_atoms=True)
    lengths = np.diag(np.asarray(cell, float))
    tree = cKDTree(np.mod(np.asarray(positions, float) - origin, lengths), boxsize=lengths)
    pairs = tree.query_pairs(radius, output_type="ndarray")
    n = len(offset)
    rows = np.concatenate([pairs[:, 0], pairs[:, 1], np.arange(n)])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0], np.arange(n)])
    near = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    total = np.zeros(n)
    for s in oxygen:
        member = (sublattice == s).astype(float)
        mean = (near @ (offset * member[:, None])) / np.maximum(near @ member, 1.0)[:, None]
        total += np.sum(mean**2, axis=1)
    return np.sqrt(total / len(oxygen)) / ideal_alpha_displacement()


#: depth shells (Å below a void's surface) whose tilt :func:`shell_codes` judges one by one: the outermost layers,
#: the shell where hot quartz next to a void loses its tilt (0.44–0.51 from 550 K, session 18), and the rest
TILT_SHELLS = (4.0, 10.0)


def depth_shells(depth: np.ndarray) -> list[np.ndarray]:
    """Masks of the atoms in each depth shell below a void: 0–4 Å, then :data:`TILT_SHELLS` onwards."""
    depth = np.asarray(depth, float)
    edges = (0.0, *TILT_SHELLS, np.inf)
    return [(depth >= lo) & (depth < hi) for lo, hi in zip(edges[:-1], edges[1:])]


def shell_codes(positions: np.ndarray, species, cell: np.ndarray, origin: np.ndarray, depth: np.ndarray,
                phase: str) -> np.ndarray:
    """Per-atom label codes of a quartz box with a void: 0 where the atom's depth shell (:data:`TILT_SHELLS`) keeps
    ``phase``'s tilt (α ≥ :data:`MIN_ALPHA_TILT`, β ≤ :data:`MAX_BETA_TILT`), −1 where it does not.

    Why: a box's tilt is an average. Hot α-quartz next to a void keeps a box tilt above the α limit while the
    shell below the void has lost half of it; the phase label would stand there on no check."""
    shells = depth_shells(depth)
    codes = np.zeros(len(shells[0]), np.int8)
    for shell, (value, _) in zip(shells, tilt_by_group(positions, species, cell, origin, shells)):
        lost = value < MIN_ALPHA_TILT if phase == "alpha_quartz" else value > MAX_BETA_TILT
        if not np.isfinite(value) or lost:  # a shell too small to measure is not backed either
            codes[shell] = -1
    return codes


@functools.lru_cache(maxsize=1)
def ideal_alpha_displacement() -> float:
    """Q of ideal α-quartz (Levien 1980, 300 K) set in the β cell's box: the scale of 'fully tilted'."""
    from lammps_phase.data import structures

    alpha = structures.supercell(structures.build("alpha_quartz"), 0.1)
    base_cell = _beta_cell()[0]
    frac = alpha.positions @ np.linalg.inv(alpha.cell)
    return coherent_displacement(frac @ base_cell, alpha.symbols, base_cell, np.zeros(3))


def tilt(positions: np.ndarray, species, cell: np.ndarray, origin: np.ndarray) -> float:
    """Tilt of a quartz box: ≈ 1 α-quartz, ≈ 0 (up to the noise of a small box) β-quartz."""
    return coherent_displacement(positions, species, cell, origin) / ideal_alpha_displacement()
