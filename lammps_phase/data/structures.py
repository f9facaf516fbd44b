"""Crystal library built from crystallographic data, with a structural check for every structure.

The training pipeline heats these crystals and labels every atom with the phase it started in, so a
wrong structure becomes a wrong label. Literature coordinates come in several settings and origin
choices; `build` expands them with `ase.spacegroup.crystal` and `validate` measures what came out
(stoichiometry, overlaps, Si-O bonds, coordination of every atom, density) instead of trusting it.
The data, with a citation per entry, live in `data/structures.json`.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np
from ase.data import atomic_numbers
from ase.spacegroup import crystal as ase_crystal

from lammps_phase import elements
from lammps_phase.errors import LammpsPhaseError

OVERLAP_DISTANCE = 1.2
# Closest approaches that still make sense in any SiO2 polymorph up to ~300 GPa
# (pyrite type: O-O 2.10 A, Si-Si 2.78 A; stishovite: shared-edge O-O 2.29 A, Si-Si 2.67 A).
SANE_MINIMUM_DISTANCE = {("O", "O"): 1.9, ("Si", "Si"): 2.3, ("O", "Si"): 1.4}
SIO2_BOND_WINDOW = (1.50, 1.95)
KINDS = ("sio2", "simple")


@dataclass(frozen=True, eq=False)
class Crystal:
    """A periodic crystal: rows of `cell` are the box vectors, `positions` are Cartesian (Angstrom)."""

    name: str
    cell: np.ndarray
    positions: np.ndarray
    symbols: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def fractional(self) -> np.ndarray:
        return self.positions @ np.linalg.inv(self.cell)


@dataclass
class ValidationReport:
    """What `validate` measured, and the list of problems (empty when the structure is sound)."""

    name: str
    n_atoms: int
    composition: dict[str, int]
    min_distance: float
    min_pair_distance: dict[tuple[str, str], float]
    bond_window: tuple[float, float]
    si_o_min: float | None
    si_o_mean: float | None
    si_o_max: float | None
    coordination: np.ndarray
    coordination_histogram: dict[str, dict[int, int]]
    density: float
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_bad(self) -> None:
        if self.problems:
            raise LammpsPhaseError(f"structure {self.name!r} failed validation: " + "; ".join(self.problems))


@lru_cache(maxsize=1)
def _data() -> dict:
    with resources.files("lammps_phase.data").joinpath("structures.json").open("r", encoding="utf-8") as handle:
        return json.load(handle)


def _entry(name: str) -> tuple[str, dict]:
    for kind in KINDS:
        if name in _data()[kind]:
            return kind, _data()[kind][name]
    raise LammpsPhaseError(f"unknown structure {name!r}; known structures: {', '.join(names())}")


def names(kind: str | None = None) -> list[str]:
    """Names `build` accepts: kind 'sio2', 'simple', or None for all."""
    if kind is None:
        return [name for k in KINDS for name in _data()[k]]
    if kind not in KINDS:
        raise LammpsPhaseError(f"unknown structure kind {kind!r}; use one of {', '.join(KINDS)} or None")
    return list(_data()[kind])


def entry(name: str) -> dict:
    """The data-file record of a structure (space group, cell, Wyckoff basis, references)."""
    return _entry(name)[1]


def expected_coordination(name: str, element: str | None = None) -> dict[str, set[int]]:
    """Expected coordination numbers per species; for simple crystals keyed by `element` (default element if None)."""
    kind, record = _entry(name)
    if kind == "sio2":
        return {species: set(values) for species, values in record["expected_coordination"].items()}
    return {element or record["defaults"]["element"]: {record["nearest_neighbours"]}}


def _expand(name: str, symbols: list[str], basis: list, spacegroup: dict, cellpar: list, expected: int, source: str) -> Crystal:
    atoms = ase_crystal(
        symbols, basis, spacegroup=spacegroup["number"], setting=spacegroup.get("setting", 1), cellpar=cellpar, symprec=1e-3
    )
    if len(atoms) != expected:
        raise LammpsPhaseError(
            f"structure {name!r} expanded to {len(atoms)} atoms instead of {expected}: the Wyckoff coordinates do not "
            f"match the space-group setting; fix the data file"
        )
    return Crystal(
        name=name,
        cell=np.array(atoms.cell.array, dtype=float),
        positions=np.array(atoms.positions, dtype=float),
        symbols=tuple(atoms.get_chemical_symbols()),
        source=source,
    )


def build(name: str, **params) -> Crystal:
    """Unit cell of a named structure. Simple crystals take element=, a= (and c_over_a= for hcp)."""
    kind, record = _entry(name)
    if kind == "sio2":
        if params:
            raise LammpsPhaseError(f"structure {name!r} takes no parameters (got {', '.join(params)}); use supercell() to enlarge it")
        basis = record["basis"]
        return _expand(
            name,
            [site["symbol"] for site in basis],
            [site["xyz"] for site in basis],
            record["spacegroup"],
            record["cellpar"],
            record["atoms_per_cell"],
            record["source"],
        )
    allowed = set(record["defaults"])
    unknown = set(params) - allowed
    if unknown:
        raise LammpsPhaseError(f"structure {name!r} does not take {', '.join(sorted(unknown))}; it takes {', '.join(sorted(allowed))}")
    values = {**record["defaults"], **params}
    element = values["element"]
    if element not in atomic_numbers:
        raise LammpsPhaseError(f"unknown element {element!r} for structure {name!r}; give a chemical symbol such as 'Cu'")
    a = float(values["a"])
    c_over_a = float(values.get("c_over_a", 1.0))
    if a <= 0 or c_over_a <= 0:
        raise LammpsPhaseError(f"structure {name!r} needs a > 0 and c_over_a > 0 (got a={a}, c_over_a={c_over_a})")
    gamma = 120 if name == "hcp" else 90
    cellpar = [a, a, a * c_over_a if name == "hcp" else a, 90, 90, gamma]
    source = record["source"] if element == record["defaults"]["element"] else f"{name} {element}, a = {a} A (user-supplied)"
    basis = record["basis_xyz"]
    return _expand(name, [element] * len(basis), basis, record["spacegroup"], cellpar, record["atoms_per_cell"], source)


def periodic_distances(crystal: Crystal, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs (i, j, d) with 0 < d <= cutoff over periodic images; each unordered pair appears twice.

    Brute force over the images a sphere of radius `cutoff` can reach (plane spacing 1/|b_k|), which is exact for
    any triclinic cell and fast enough for unit cells and test-sized supercells.
    """
    cell = np.asarray(crystal.cell, dtype=float)
    positions = np.asarray(crystal.positions, dtype=float)
    reciprocal = np.linalg.inv(cell).T
    reach = [int(np.ceil(cutoff * np.linalg.norm(reciprocal[k]))) for k in range(3)]
    rows, cols, dists = [], [], []
    for shift in itertools.product(*(range(-r, r + 1) for r in reach)):
        offset = np.asarray(shift, dtype=float) @ cell
        d = np.linalg.norm(positions[None, :, :] + offset - positions[:, None, :], axis=2)
        mask = (d <= cutoff) & (d > 1e-8)
        i, j = np.nonzero(mask)
        rows.append(i)
        cols.append(j)
        dists.append(d[i, j])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(dists)


def _min_image_distance(crystal: Crystal) -> float:
    """Smallest distance between two atoms, or between an atom and its own image (bounded by the shortest cell vector)."""
    _, _, d = periodic_distances(crystal, 3.5)
    if not len(d):
        _, _, d = periodic_distances(crystal, float(np.linalg.norm(crystal.cell, axis=1).min()) + 1e-6)
    return float(d.min())


def density(crystal: Crystal) -> float:
    """Mass density in g/cm^3."""
    return elements.density(crystal.cell, crystal.symbols)


def nearest_neighbours(crystal: Crystal, tolerance: float = 0.05) -> tuple[np.ndarray, float]:
    """Per-atom count of neighbours within (1 + tolerance) x the shortest distance, and that distance."""
    d_nn = _min_image_distance(crystal)
    i, _, d = periodic_distances(crystal, d_nn * (1.0 + tolerance))
    return np.bincount(i, minlength=len(crystal)), d_nn


def validate(
    crystal: Crystal,
    bond_window: tuple[float, float] = SIO2_BOND_WINDOW,
    expected_coordination: dict[str, set[int]] | None = None,
) -> ValidationReport:
    """Measure a structure and list what is wrong with it.

    Coordination counts neighbours of another species within `bond_window` (Si-O bonds in SiO2); in a
    one-element crystal it counts same-element neighbours. `expected_coordination=None` uses the data
    file's expectation when `crystal.name` is an SiO2 entry; pass {} to skip the check.
    """
    symbols = np.array(crystal.symbols, dtype=str)
    species = sorted(str(s) for s in set(crystal.symbols))
    composition = {s: int((symbols == s).sum()) for s in species}
    problems: list[str] = []

    if expected_coordination is None and crystal.name in _data()["sio2"]:
        expected_coordination = globals()["expected_coordination"](crystal.name)
    expected_coordination = expected_coordination or {}

    if set(species) == {"O", "Si"} and composition["O"] != 2 * composition["Si"]:
        problems.append(f"stoichiometry Si{composition['Si']}O{composition['O']} is not SiO2")

    cutoff = max(bond_window[1], max(SANE_MINIMUM_DISTANCE.values())) + 0.5
    i, j, d = periodic_distances(crystal, cutoff)
    min_distance = float(d.min()) if len(d) else _min_image_distance(crystal)
    if min_distance < OVERLAP_DISTANCE:
        problems.append(f"atoms overlap: closest pair {min_distance:.3f} A < {OVERLAP_DISTANCE} A")
    min_pair: dict[tuple[str, str], float] = {}
    for first, second in itertools.combinations_with_replacement(species, 2):
        pair = ((symbols[i] == first) & (symbols[j] == second)) | ((symbols[i] == second) & (symbols[j] == first))
        if pair.any():
            min_pair[(first, second)] = float(d[pair].min())
    for key, limit in SANE_MINIMUM_DISTANCE.items():
        if key in min_pair and min_pair[key] < limit:
            problems.append(f"{key[0]}-{key[1]} distance {min_pair[key]:.3f} A is shorter than {limit} A")

    in_window = (d >= bond_window[0]) & (d <= bond_window[1])
    partner = (symbols[i] != symbols[j]) if len(species) > 1 else np.ones_like(in_window)
    bonded = in_window & partner
    coordination = np.bincount(i[bonded], minlength=len(crystal))
    histogram = {
        s: {int(c): int(n) for c, n in zip(*np.unique(coordination[symbols == s], return_counts=True))} for s in species
    }
    for s, allowed in expected_coordination.items():
        wrong = int(np.sum(~np.isin(coordination[symbols == s], sorted(allowed))))
        if s not in composition:
            problems.append(f"expected species {s} is missing")
        elif wrong:
            problems.append(f"{wrong} of {composition[s]} {s} atoms have coordination outside {sorted(allowed)}: {histogram[s]}")

    si_o = d[bonded & (symbols[i] == "Si") & (symbols[j] == "O")]
    if set(species) == {"O", "Si"} and not len(si_o):
        problems.append(f"no Si-O bond within {bond_window} A")

    return ValidationReport(
        name=crystal.name,
        n_atoms=len(crystal),
        composition=composition,
        min_distance=min_distance,
        min_pair_distance=min_pair,
        bond_window=tuple(bond_window),
        si_o_min=float(si_o.min()) if len(si_o) else None,
        si_o_mean=float(si_o.mean()) if len(si_o) else None,
        si_o_max=float(si_o.max()) if len(si_o) else None,
        coordination=coordination,
        coordination_histogram=histogram,
        density=density(crystal),
        problems=problems,
    )


def _orthogonal_transforms(cell: np.ndarray, search: int, max_shear_deg: float) -> list[tuple[float, int, np.ndarray]]:
    """Integer matrices P (rows = new vectors in units of the old) whose P @ cell is (nearly) orthogonal.

    Returned as (worst angle deviation in degrees, |det P|, P), best first: exactly orthogonal before nearly,
    then fewest atoms, then most orthogonal.
    """
    candidates = np.array([v for v in itertools.product(range(-search, search + 1), repeat=3) if any(v)])
    vectors = candidates @ cell
    unit = vectors / np.linalg.norm(vectors, axis=1)[:, None]
    cos = unit @ unit.T
    limit = np.sin(np.radians(max_shear_deg)) + 1e-12
    near_right = np.abs(cos) <= limit
    found = []
    for first in range(len(candidates)):
        for second in np.nonzero(near_right[first])[0]:
            if second <= first:
                continue
            for third in np.nonzero(near_right[first] & near_right[second])[0]:
                if third <= second:
                    continue
                matrix = candidates[[first, second, third]]
                det = int(round(np.linalg.det(matrix)))
                if det == 0:
                    continue
                if det < 0:
                    matrix = matrix[[1, 0, 2]]
                worst = max(abs(cos[first, second]), abs(cos[first, third]), abs(cos[second, third]))
                found.append((float(np.degrees(np.arcsin(min(worst, 1.0)))), abs(det), matrix))
    found.sort(key=lambda item: (item[0] > 1e-6, item[1], round(item[0], 6), -np.trace(np.abs(item[2]))))
    return found


def _align_to_axes(matrix: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Order the rows of P so the new vectors point mostly along x, y, z (a LAMMPS box keeps a along x)."""
    vectors = matrix @ cell
    best = max(itertools.permutations(range(3)), key=lambda perm: sum(abs(vectors[perm[k], k]) / np.linalg.norm(vectors[perm[k]]) for k in range(3)))
    ordered = matrix[list(best)]
    if np.linalg.det(ordered) < 0:
        ordered = ordered.copy()
        ordered[2] *= -1
    return ordered


def _repeat(crystal: Crystal, transform: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Atoms of the supercell new_cell = transform @ cell, as fractional coordinates in [0, 1)."""
    transform = np.asarray(transform, dtype=int)
    corners = np.array(list(itertools.product([0, 1], repeat=3))) @ transform
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    lattice = np.array(list(itertools.product(*(range(lo[k] - 1, hi[k] + 2) for k in range(3)))), dtype=float)
    inverse = np.linalg.inv(transform.astype(float))
    frac_old = crystal.fractional
    frac = ((frac_old[None, :, :] + lattice[:, None, :]) @ inverse).reshape(-1, 3)
    species = np.tile(np.array(crystal.symbols), len(lattice))
    eps = 1e-8
    inside = np.all((frac >= -eps) & (frac < 1.0 - eps), axis=1)
    frac = np.mod(frac[inside], 1.0)
    frac[frac > 1.0 - eps] = 0.0
    expected = len(crystal) * abs(int(round(np.linalg.det(transform))))
    if len(frac) != expected:
        raise LammpsPhaseError(f"supercell of {crystal.name!r} produced {len(frac)} atoms instead of {expected}; the unit cell has overlapping or misplaced atoms")
    return frac, transform @ crystal.cell, tuple(species[inside])


def supercell(
    crystal: Crystal,
    min_length: float | tuple[float, float, float],
    orthogonal: bool = True,
    search: int = 2,
    max_shear_deg: float = 1.0,
) -> Crystal:
    """Smallest repetition whose box is at least `min_length` along each axis.

    With orthogonal=True the box is made orthogonal (LAMMPS-friendly) by an integer change of cell found
    by a search over vectors with components in [-search, search] (hexagonal a, b -> a, a + 2b). Cells
    that admit only a nearly orthogonal choice (coesite: 90.5 deg) are accepted up to `max_shear_deg`,
    and the residual shear is removed by placing the fractional coordinates in the orthogonal box with
    the same edge lengths (a strain below ~1 %, which keeps every bond and coordination).
    """
    lengths = np.broadcast_to(np.asarray(min_length, dtype=float), (3,))
    if np.any(lengths <= 0):
        raise LammpsPhaseError(f"min_length must be positive, got {min_length}")
    cell = np.asarray(crystal.cell, dtype=float)
    if orthogonal:
        options = _orthogonal_transforms(cell, search, max_shear_deg)
        if not options:
            raise LammpsPhaseError(
                f"no orthogonal supercell of {crystal.name!r} within integer search range {search} and {max_shear_deg} deg of shear; "
                f"raise search/max_shear_deg or use orthogonal=False (triclinic box)"
            )
        base = _align_to_axes(options[0][2], cell)
    else:
        base = np.eye(3, dtype=int)
    base_lengths = np.linalg.norm(base @ cell, axis=1)
    repeats = np.maximum(1, np.ceil(lengths / base_lengths - 1e-9)).astype(int)
    transform = np.diag(repeats) @ base
    frac, new_cell, symbols = _repeat(crystal, transform)
    if orthogonal:
        new_cell = np.diag(np.linalg.norm(new_cell, axis=1))
    return Crystal(name=crystal.name, cell=new_cell, positions=frac @ new_cell, symbols=symbols, source=crystal.source)
