"""Is a snapshot still its phase? The records of a checked run and every structural check on them.

A phase that has already transformed must never be labelled as the phase it started as, so every snapshot is
compared with its relaxed crystal: coordination, density, time-averaged displacement from the lattice sites and
cell shape (:func:`check_phase`), or proven to be a liquid (:func:`check_liquid`) or a glass
(:func:`check_amorphous`). Slabs, clusters and voids are judged on their interior (:func:`check_surface`).
Pure numpy/ase: nothing here starts LAMMPS.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.data import quartz_order
from lammps_phase.data.geometry import INTERIOR_DEPTH, surface_depth

#: Si–O bond cutoff (Å): between the longest octahedral bond (≈1.9 Å under pressure) and the next O shell.
SIO2_BOND_CUTOFF = 2.1


# --------------------------------------------------------------------------------------------------
# records of a checked run


@dataclass
class PhaseCheck:
    """Whether a snapshot still shows its phase, with the numbers behind the decision."""

    holds: bool
    reason: str
    coordination_histogram: dict[int, int]
    ideal_coordination_fraction: float
    density_ratio: float
    displaced_fraction: float
    msd: float
    shape_strain: float = 0.0  # largest volume-free strain of the cell against the reference cell
    tilt: float | None = None  # quartz only: the tetrahedra's coherent tilt (quartz_order), ≈ 1 α, ≈ 0 β


@dataclass
class Reference:
    """A crystal relaxed at 0 K and its target pressure: lattice sites and ideal coordination."""

    phase: str
    potential: str
    pressure_gpa: float
    positions: np.ndarray  # (N, 3) Å, LAMMPS frame
    cell: np.ndarray  # (3, 3) rows = box vectors
    origin: np.ndarray
    species: tuple[str, ...]
    energy_per_atom: float  # eV
    density: float  # g/cm³
    center: str  # species whose coordination is counted
    neighbor: str
    bond_cutoff: float  # Å
    ideal_coordination: np.ndarray  # per centre atom, from the input (unrelaxed) crystal
    relaxed_pressure_gpa: float  # what the 0 K relaxation reached (box/relax can stall short of the target)
    relaxation_check: PhaseCheck | None = None  # relaxed vs input structure

    @property
    def sites_fractional(self) -> np.ndarray:
        return self.positions @ np.linalg.inv(self.cell)


@dataclass
class Snapshot:
    """One configuration of a run, in the LAMMPS frame (cell rows are box vectors, origin = boxlo)."""

    positions: np.ndarray
    cell: np.ndarray
    origin: np.ndarray
    species: tuple[str, ...]
    step: int
    time_ps: float
    temperature: float  # K, instantaneous
    target_temperature: float
    pressure_gpa: float
    density: float
    potential_energy_per_atom: float
    site_displacement: np.ndarray  # Å per atom: time-averaged position − lattice site (drift and box scaling removed)
    msd: float  # Å², instantaneous unwrapped displacement from the start, drift and box scaling removed
    stage: str = "heat"  # heat, melt, quench, hold
    check: PhaseCheck | None = None
    #: per-atom label codes into ``PhaseRun.labels`` (−1: no label) when the atoms of one snapshot belong to
    #: different classes (interfaces); None when every atom carries the run's label
    atom_labels: np.ndarray | None = None
    #: (N, 3) fractional positions averaged over the snapshot's window (unwrapped); None when not recorded
    mean_fractional: np.ndarray | None = None
    #: Å per atom, interface runs: the time-averaged distance to the nearest site of the crystal side's lattice
    #: (:func:`lattice_site_distance`, what the labels' registry thresholds); None elsewhere
    lattice_distance: np.ndarray | None = None


@dataclass
class PhaseRun:
    """A run of one phase in one potential at one pressure: its reference and its checked snapshots."""

    phase: str
    potential: str
    pressure_gpa: float
    label: str  # the phase label the kept snapshots carry (phase name, "melt" or "amorphous")
    reference: Reference
    snapshots: list[Snapshot] = field(default_factory=list)
    #: class names that ``Snapshot.atom_labels`` codes refer to (code 0 is ``label``)
    labels: list[str] = field(default_factory=list)

    @property
    def kept(self) -> list[Snapshot]:
        """Snapshots that pass their check, up to the first failure (a lost phase does not come back).

        None for a heating run whose 0 K relaxation already left the input phase.
        """
        relaxed = self.reference.relaxation_check
        heated = any(snap.stage == "heat" for snap in self.snapshots)
        if heated and relaxed is not None and not relaxed.holds:
            return []
        kept = []
        for snap in self.snapshots:
            if snap.check is None or not snap.check.holds:
                if snap.stage in ("heat",):
                    break
                continue
            kept.append(snap)
        return kept

    @property
    def rejected(self) -> list[Snapshot]:
        kept_ids = {id(s) for s in self.kept}
        return [s for s in self.snapshots if id(s) not in kept_ids]


# --------------------------------------------------------------------------------------------------
# structure analysis


def _atoms(positions: np.ndarray, cell: np.ndarray, species: Sequence[str]):
    from ase import Atoms

    return Atoms(symbols=list(species), positions=positions, cell=cell, pbc=True)


def coordination(positions: np.ndarray, cell: np.ndarray, species: Sequence[str], center: str, neighbor: str,
                 cutoff: float) -> np.ndarray:
    """Number of ``neighbor`` atoms within ``cutoff`` of each ``center`` atom (periodic, any cell shape)."""
    from ase.neighborlist import neighbor_list

    species_arr = np.asarray(species)
    first, second = neighbor_list("ij", _atoms(positions, cell, species), cutoff)
    counts = np.bincount(first[species_arr[second] == neighbor], minlength=len(species_arr))
    return counts[species_arr == center]


def min_distance(positions: np.ndarray, cell: np.ndarray, species: Sequence[str], a: str, b: str,
                 search: float = 3.0) -> float:
    """Shortest a–b distance (Å), periodic; ``inf`` if none within ``search``."""
    from ase.neighborlist import neighbor_list

    species_arr = np.asarray(species)
    first, second, dist = neighbor_list("ijd", _atoms(positions, cell, species), search)
    mask = (species_arr[first] == a) & (species_arr[second] == b)
    return float(dist[mask].min()) if mask.any() else math.inf


def coordination_rule(positions: np.ndarray, cell: np.ndarray, species: Sequence[str]) -> tuple[str, str, float]:
    """Which coordination defines the phase: Si–O within 2.1 Å for silica, else the first shell of the element."""
    present = set(species)
    if {"Si", "O"} <= present:
        return "Si", "O", SIO2_BOND_CUTOFF
    if len(present) != 1:
        raise LammpsPhaseError(f"no coordination rule for species {sorted(present)}; expected SiO2 or one element")
    from ase.neighborlist import neighbor_list

    (element,) = present
    dist = neighbor_list("d", _atoms(positions, cell, species), 6.0)
    if dist.size == 0:
        raise LammpsPhaseError("no neighbours within 6 Å; is the cell in Å?")
    first = dist.min()
    beyond = dist[dist > first * 1.08]
    second = beyond.min() if beyond.size else first * 1.5
    return element, element, 0.5 * (first + second)


def site_displacement(fractional: np.ndarray, sites_fractional: np.ndarray, cell: np.ndarray,
                      unwrapped: bool) -> np.ndarray:
    """Per-atom displacement (Å) from the lattice sites, measured in the current cell after removing drift."""
    delta = fractional - sites_fractional
    if not unwrapped:
        delta -= np.round(delta)
    delta -= delta.mean(axis=0)
    return np.linalg.norm(delta @ cell, axis=1)


def _anchor_fit(frac: np.ndarray, sites: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """Displacement (fractional) of every site that carries the lattice along with the anchor atoms.

    A least-squares affine fit of the anchors' displacements against their site coordinates, measured from the
    anchors' centre (periodic), so a crystal strained differently from its cell — half a box next to a glass —
    is followed, and sites on the far side continue from the nearer edge of the anchored region.
    """
    if not anchor.any():
        return np.zeros(3)
    moved = frac[anchor] - sites[anchor]
    moved -= np.round(moved)
    if int(anchor.sum()) < 12:  # too few anchors to fit a strain: the drift alone
        return moved.mean(axis=0)
    angle = 2.0 * np.pi * sites[anchor]
    centre = np.arctan2(np.sin(angle).mean(axis=0), np.cos(angle).mean(axis=0)) / (2.0 * np.pi)
    relative = sites - centre
    relative -= np.round(relative)
    design = np.hstack([relative, np.ones((len(sites), 1))])
    coef, *_ = np.linalg.lstsq(design[anchor], moved, rcond=None)
    return design @ coef


def lattice_site_distance(fractional: np.ndarray, sites_fractional: np.ndarray, cell: np.ndarray,
                          species: Sequence[str], anchor: np.ndarray) -> np.ndarray:
    """Distance (Å) from every atom to the nearest lattice site of its species, the lattice being the reference
    crystal's sites carried along with the ``anchor`` atoms (:func:`_anchor_fit`) and searched over the 27
    neighbouring images (any cell shape). What :func:`lattice_registry` thresholds, and what tells a crystal atom
    (its thermal spread: ≈ 0.3 Å median for BKS α-quartz at 300 K) from one near a site by chance (≈ r² up to
    the cutoff)."""
    frac = np.asarray(fractional, float)
    sites = np.asarray(sites_fractional, float)
    anchor = np.asarray(anchor, bool)
    species = np.asarray(species)
    cell = np.asarray(cell, float)
    if frac.shape != sites.shape or len(species) != len(frac) or anchor.shape != (len(frac),):
        raise LammpsPhaseError("the lattice needs one lattice site, one species and one anchor flag per atom")
    sites = sites + _anchor_fit(frac, sites, anchor)
    from scipy.spatial import cKDTree

    images = np.array(list(itertools.product((-1.0, 0.0, 1.0), repeat=3)))
    wrapped = np.mod(frac, 1.0) @ cell
    distance = np.zeros(len(frac))
    for element in np.unique(species):
        mask = species == element
        lattice = (np.mod(sites[mask], 1.0)[None, :, :] + images[:, None, :]).reshape(-1, 3) @ cell
        distance[mask] = cKDTree(lattice).query(wrapped[mask])[0]
    return distance


def lattice_registry(fractional: np.ndarray, sites_fractional: np.ndarray, cell: np.ndarray,
                     species: Sequence[str], anchor: np.ndarray, *, site_cutoff: float = 0.9,
                     radius: float = 3.5, groups: np.ndarray | None = None,
                     distance: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(registry, on_lattice) per atom: whether it sits within ``site_cutoff`` Å of *any* lattice site of its
    species, and the fraction of atoms within ``radius`` Å (itself included) that do. With ``groups`` (one
    integer per atom) only neighbours of the atom's own group count: at an interface, the crystal atoms across
    it would otherwise lend a disordered atom their order.

    Why: the melted half of an interface run can keep crystal layers next to the crystal, or regrow on it; those
    atoms started on the melted side yet sit on the extended lattice, and a label taken from the side they
    started on calls crystal "glass". The lattice is the reference crystal's sites in the current cell, carried
    along with the ``anchor`` atoms (known to keep their own sites): their drift and their own strain, which
    next to a glass differs from the cell's along the interface normal (:func:`_anchor_fit`). Any cell shape
    (the sites are searched over the 27 neighbouring images). ``site_cutoff``: 0.9 Å keeps a crystal next to a
    glass on its lattice although it bends and twins a little there (0.6 Å dropped a quarter of a quartz half
    more than 3 Å from a glass), while a disordered atom lands that near a site of its species by chance
    (≈ 10–25 %, O more often than Si) too rarely for its neighbours to reach a registry of 0.5.
    ``distance``: :func:`lattice_site_distance` of these atoms when the caller already has it.
    """
    frac = np.asarray(fractional, float)
    species = np.asarray(species)
    cell = np.asarray(cell, float)
    if distance is None:
        distance = lattice_site_distance(frac, sites_fractional, cell, species, anchor)
    on_lattice = np.asarray(distance) < site_cutoff
    from ase.neighborlist import neighbor_list

    wrapped = np.mod(frac, 1.0) @ cell
    first, second = neighbor_list("ij", _atoms(wrapped, cell, species), radius)
    if groups is not None:
        groups = np.asarray(groups)
        same = groups[first] == groups[second]
        first, second = first[same], second[same]
    count = 1.0 + np.bincount(first, minlength=len(frac))
    hits = on_lattice + np.bincount(first, weights=on_lattice[second].astype(float), minlength=len(frac))
    return hits / count, on_lattice


def shape_strain(cell: np.ndarray, reference_cell: np.ndarray) -> float:
    """Largest principal strain of ``cell`` against ``reference_cell`` once the volume change is removed.

    Rotation-invariant (Green–Lagrange strain of the deformation gradient). A structure can keep its
    coordination and its fractional coordinates yet turn into another lattice by shearing or stretching
    the box (seen: Tersoff stishovite at 70 GPa); this catches it.
    """
    deformation = np.linalg.solve(np.asarray(reference_cell, float), np.asarray(cell, float))  # cell = ref @ F
    right = deformation @ deformation.T
    right /= np.linalg.det(right) ** (1.0 / 3.0)
    return float(np.max(np.abs(np.linalg.eigvalsh(0.5 * (right - np.eye(3))))))


def check_phase(snapshot: Snapshot, reference: Reference, *, min_ideal_fraction: float = 0.9,
                density_tolerance: float = 0.10, displacement_cutoff: float = 1.0,
                max_displaced_fraction: float = 0.05, max_shape_strain: float = 0.05,
                atoms: np.ndarray | None = None) -> PhaseCheck:
    """Does the snapshot still show the reference crystal?

    ``atoms`` (boolean mask) restricts the judgement to part of the sample (a slab's interior, one side of an
    interface); coordination is still counted with every atom as a possible neighbour.

    Fails if fewer than ``min_ideal_fraction`` of the centre atoms keep the coordination they had in
    the input crystal, if the density differs from the relaxed crystal's by more than
    ``density_tolerance`` (relative), or if more than ``max_displaced_fraction`` of the atoms sit more
    than ``displacement_cutoff`` Å from their lattice site (time-averaged when the run recorded it),
    or if the cell shape (volume change removed) strains by more than ``max_shape_strain``.
    """
    species = np.asarray(snapshot.species)
    if len(species) != len(reference.species) or np.any(species != np.asarray(reference.species)):
        raise LammpsPhaseError("snapshot and reference hold different atoms; compare a snapshot with its own run's reference")
    counts = coordination(snapshot.positions, snapshot.cell, snapshot.species, reference.center, reference.neighbor,
                          reference.bond_cutoff)
    ideal = reference.ideal_coordination
    if atoms is not None:
        judged = np.asarray(atoms, bool)[species == reference.center]
        counts, ideal = counts[judged], ideal[judged]
    histogram = {int(k): int(v) for k, v in zip(*np.unique(counts, return_counts=True))}
    ideal_fraction = float(np.mean(counts == ideal)) if len(counts) else 0.0
    density_ratio = snapshot.density / reference.density
    if snapshot.site_displacement is not None and len(snapshot.site_displacement) == len(species):
        displacement = snapshot.site_displacement
    else:
        frac = (snapshot.positions - snapshot.origin) @ np.linalg.inv(snapshot.cell)
        displacement = site_displacement(frac, reference.sites_fractional, snapshot.cell, unwrapped=False)
    if atoms is not None:
        displacement = displacement[np.asarray(atoms, bool)]
    displaced = float(np.mean(displacement > displacement_cutoff)) if len(displacement) else 0.0
    strain = shape_strain(snapshot.cell, reference.cell)

    reasons = []
    if ideal_fraction < min_ideal_fraction:
        ideal = np.unique(reference.ideal_coordination)
        reasons.append(f"{reference.center} coordination {'/'.join(map(str, ideal))} for only {ideal_fraction:.0%} "
                       f"of {reference.center} (histogram {histogram})")
    if abs(density_ratio - 1.0) > density_tolerance:
        reasons.append(f"density {snapshot.density:.3f} g/cm³ is {density_ratio - 1:+.1%} from the reference "
                       f"crystal's {reference.density:.3f}")
    if displaced > max_displaced_fraction:
        reasons.append(f"{displaced:.0%} of atoms are > {displacement_cutoff} Å from their lattice site")
    if strain > max_shape_strain:
        reasons.append(f"cell shape strained by {strain:.1%} (volume change removed)")
    return PhaseCheck(holds=not reasons, reason="; ".join(reasons), coordination_histogram=histogram,
                      ideal_coordination_fraction=ideal_fraction, density_ratio=density_ratio,
                      displaced_fraction=displaced, msd=snapshot.msd, shape_strain=strain)


def check_quartz_tilt(check: PhaseCheck, snapshot: Snapshot, phase: str) -> PhaseCheck:
    """``check`` with the α/β decision added for a bulk α- or β-quartz box (any other phase: unchanged).

    Coordination, density and lattice sites are the same for both quartzes; only the tilt of the tetrahedra
    tells them apart (:mod:`lammps_phase.data.quartz_order`). β-quartz below its potential's transition
    temperature tilts into α at once and would otherwise be kept as "β-quartz".
    """
    if phase not in ("alpha_quartz", "beta_quartz"):
        return check
    value = quartz_order.tilt(snapshot.positions, snapshot.species, snapshot.cell, snapshot.origin)
    reason = ""
    if phase == "alpha_quartz" and value < quartz_order.MIN_ALPHA_TILT:
        reason = f"tetrahedra tilt {value:.2f} < {quartz_order.MIN_ALPHA_TILT}: untilted, β-quartz rather than α"
    elif phase == "beta_quartz" and value > quartz_order.MAX_BETA_TILT:
        reason = f"tetrahedra tilt {value:.2f} > {quartz_order.MAX_BETA_TILT}: tilted into α-quartz"
    return dataclasses.replace(check, tilt=value, holds=check.holds and not reason,
                               reason="; ".join(r for r in (check.reason, reason) if r))


def check_liquid(snapshot: Snapshot, reference: Reference, *, min_msd: float = 5.0,
                 min_displaced_fraction: float = 0.5, atoms: np.ndarray | None = None) -> PhaseCheck:
    """Is the snapshot a liquid: atoms have diffused (MSD) and lost their lattice sites?"""
    crystal = check_phase(snapshot, reference, atoms=atoms)
    reasons = []
    if snapshot.msd < min_msd:
        reasons.append(f"mean-square displacement {snapshot.msd:.2f} Å² < {min_msd} Å² (not diffusing)")
    if crystal.displaced_fraction < min_displaced_fraction:
        reasons.append(f"only {crystal.displaced_fraction:.0%} of atoms left their lattice site (still ordered)")
    crystal.holds, crystal.reason = not reasons, "; ".join(reasons)
    return crystal


def check_amorphous(snapshot: Snapshot, reference: Reference, *, min_displaced_fraction: float = 0.5,
                    min_network_fraction: float = 0.8, max_msd: float = math.inf,
                    atoms: np.ndarray | None = None) -> PhaseCheck:
    """Is the snapshot a glass: no memory of the lattice, yet the short-range order of a network?

    A network glass keeps its centre atoms in one coordination, or in two adjacent ones when it is
    densified (silica glass at 15 GPa is mostly 5-fold Si with 4- and 6-fold Si beside it). So at
    least ``min_network_fraction`` of the centre atoms must share the most common coordination c or
    its more populated neighbour c ± 1; a scattered histogram is a broken, not a glassy, network.
    A glass is a solid: with ``max_msd`` set, a snapshot whose atoms moved more than that (Å², since the
    start of its stage) is a liquid, whatever its temperature ("hot and disordered" is not "melt").
    """
    crystal = check_phase(snapshot, reference, atoms=atoms)
    reasons = []
    if crystal.displaced_fraction < min_displaced_fraction:
        reasons.append(f"only {crystal.displaced_fraction:.0%} of atoms left their lattice site (still crystalline)")
    hist = crystal.coordination_histogram
    total = sum(hist.values())
    most_common = max(hist, key=hist.get)
    partner = max((most_common - 1, most_common + 1), key=lambda c: hist.get(c, 0))
    share = (hist[most_common] + hist.get(partner, 0)) / total
    if share < min_network_fraction:
        pair = "/".join(str(c) for c in sorted((most_common, partner)))
        reasons.append(f"no network coordination (coordination {pair} for only {share:.0%} of {reference.center})")
    if snapshot.msd > max_msd:
        reasons.append(f"mean-square displacement {snapshot.msd:.2f} Å² > {max_msd} Å² in this stage (diffusing: a liquid)")
    crystal.holds, crystal.reason = not reasons, "; ".join(reasons)
    return crystal


# --------------------------------------------------------------------------------------------------
# free surfaces: slabs, clusters, voids


def check_surface(snapshot: Snapshot, reference: Reference, depth: np.ndarray, *,
                  interior_depth: float = INTERIOR_DEPTH, max_surface_displaced: float = 0.25,
                  surface_cutoff: float = 1.5) -> PhaseCheck:
    """The crystal check on atoms deeper than ``interior_depth`` below a free surface (``depth`` per atom, Å),
    plus: the surface layer has not left its (relaxed-surface) sites en masse."""
    inner = depth >= interior_depth
    if inner.sum() < 0.08 * len(depth):
        raise LammpsPhaseError(f"sample too thin: only {inner.sum()} of {len(depth)} atoms deeper than "
                               f"{interior_depth} Å below a surface; raise min_length / the radius")
    check = check_phase(snapshot, reference, density_tolerance=math.inf, max_shape_strain=math.inf, atoms=inner)
    outer = snapshot.site_displacement[~inner]
    moved = float(np.mean(outer > surface_cutoff)) if len(outer) else 0.0
    if moved > max_surface_displaced:
        check.holds = False
        reason = f"{moved:.0%} of surface atoms are > {surface_cutoff} Å from their sites (surface transformed)"
        check.reason = "; ".join(r for r in (check.reason, reason) if r)
    return check


def check_slab(snapshot: Snapshot, reference: Reference, axis: str, **kwargs: Any) -> PhaseCheck:
    """:func:`check_surface` of a slab whose surfaces are normal to cell row ``axis``."""
    return check_surface(snapshot, reference, surface_depth(snapshot.positions, snapshot.cell, snapshot.origin, axis),
                         **kwargs)
