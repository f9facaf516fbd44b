"""Training-data runs in LAMMPS: relax a crystal, heat it at constant pressure, melt it, quench it.

Every snapshot is checked against its relaxed crystal (coordination, density, time-averaged
displacement from the lattice sites), so a phase that has already transformed is never labelled
as the phase it started as.

Runs go through LAMMPS's Python module. Debian's LAMMPS has no C++ exceptions: an ERROR ends the
whole process. So in a serial caller each run is executed in a child process
(``python -m lammps_phase.data.heating``, optionally under ``mpirun -np ranks``) and an ERROR comes back
as :class:`LammpsPhaseError` quoting the ERROR line of the run's log. A caller that is itself an
MPI job (``mpirun -np 2 python script.py``) runs in-process on all ranks; gathers are collective, so
every rank gets the same snapshots, and only rank 0 writes files.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import pickle
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from lammps_phase import runtime
from lammps_phase.elements import density, mass
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.cell import lammps_frame
from lammps_phase.data.potentials import Potential, get as get_potential, type_map_for

BAR_PER_GPA = 1.0e4
#: Si–O bond cutoff (Å): between the longest octahedral bond (≈1.9 Å under pressure) and the next O shell.
SIO2_BOND_CUTOFF = 2.1


# --------------------------------------------------------------------------------------------------
# data


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
# structure analysis (pure numpy/ase; no LAMMPS)


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


def _site_displacement(fractional: np.ndarray, sites_fractional: np.ndarray, cell: np.ndarray,
                       unwrapped: bool) -> np.ndarray:
    """Per-atom displacement (Å) from the lattice sites, measured in the current cell after removing drift."""
    delta = fractional - sites_fractional
    if not unwrapped:
        delta -= np.round(delta)
    delta -= delta.mean(axis=0)
    return np.linalg.norm(delta @ cell, axis=1)


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
        displacement = _site_displacement(frac, reference.sites_fractional, snapshot.cell, unwrapped=False)
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
# LAMMPS plumbing




_HAS_EXCEPTIONS: bool | None = None


def lammps_has_exceptions() -> bool:
    """Whether this LAMMPS library turns ERRORs into exceptions (queried without starting LAMMPS or MPI)."""
    global _HAS_EXCEPTIONS
    if _HAS_EXCEPTIONS is None:
        import lammps  # noqa: F401  (fails early and clearly if the module is missing)

        lib_name = ctypes.util.find_library("lammps") or "liblammps.so"
        lib = ctypes.CDLL(lib_name, mode=ctypes.RTLD_GLOBAL)
        _HAS_EXCEPTIONS = bool(lib.lammps_config_has_exceptions())
    return _HAS_EXCEPTIONS


def error_line(log_path: str | Path) -> str | None:
    """The first ERROR line of a LAMMPS log, if any."""
    try:
        with open(log_path, errors="replace") as fh:
            for line in fh:
                if line.startswith("ERROR"):
                    return line.strip()
    except OSError:
        return None
    return None


def _num(value: float) -> str:
    """A float as LAMMPS reads it back exactly (numpy scalars would print as 'np.float64(...)')."""
    return repr(float(value))


class _Session:
    """One LAMMPS instance set up with a crystal and a potential; snapshots and sampling helpers."""

    def __init__(self, crystal: Any, potential: Potential, log_path: Path, extra_commands: Sequence[str] = (),
                 timestep_fs: float | None = None):
        from lammps import lammps

        self.log_path = Path(log_path)
        self.lmp = lammps(cmdargs=["-log", str(self.log_path), "-screen", "none", "-nocite"])
        self.rank = self.lmp.extract_setting("world_rank")
        self.potential = potential
        self.species = tuple(str(s) for s in crystal.symbols)
        self.phase = str(getattr(crystal, "name", "crystal"))
        cell, positions = lammps_frame(np.asarray(crystal.cell), np.asarray(crystal.positions))
        self.input_cell, self.input_positions = cell, positions
        self.type_map = type_map_for(potential, self.species)
        self.masses = np.array([mass(s) for s in self.species])
        self.step = 0
        self.timestep_ps = (timestep_fs or potential.timestep_fs) / 1000.0

        self.commands(potential.init_commands() + ["boundary p p p"])
        (lx, _, _), (xy, ly, _), (xz, yz, lz) = cell
        if abs(xy) + abs(xz) + abs(yz) > 1e-9:
            self.commands(["box tilt large", f"region box prism 0 {_num(lx)} 0 {_num(ly)} 0 {_num(lz)} {_num(xy)} {_num(xz)} {_num(yz)}"])
        else:
            self.commands([f"region box block 0 {_num(lx)} 0 {_num(ly)} 0 {_num(lz)}"])
        self.triclinic = abs(xy) + abs(xz) + abs(yz) > 1e-9
        self.command(f"create_box {len(self.type_map)} box")
        n = len(self.species)
        types = [self.type_map[s] for s in self.species]
        created = self.lmp.create_atoms(n, list(range(1, n + 1)), types, positions.ravel().tolist())
        if created != n and self.lmp.get_natoms() != n:
            raise LammpsPhaseError(f"LAMMPS created {self.lmp.get_natoms()} of {n} atoms; check that the cell holds them")
        self.commands(potential.commands(self.type_map))
        self.commands([
            "neighbor 2.0 bin",
            "neigh_modify every 1 delay 0 check yes",
            f"timestep {_num(self.timestep_ps)}",
            "thermo_style custom step temp press pe vol density",
            "thermo 1000",
        ])
        self.commands(extra_commands)
        self.sites_fractional: np.ndarray | None = None
        #: unwrapped fractional coordinates that MSD is measured from (None: the lattice sites)
        self.msd_origin: np.ndarray | None = None

    # -- commands
    def command(self, line: str) -> None:
        try:
            self.lmp.command(line)
        except Exception as exc:  # only reached when LAMMPS was built with exceptions
            message = error_line(self.log_path) or str(exc)
            raise LammpsPhaseError(f"LAMMPS stopped at {line!r}: {message} (log: {self.log_path})") from exc

    def commands(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.command(line)

    def close(self) -> None:
        self.lmp.close()

    # -- state
    def box(self) -> tuple[np.ndarray, np.ndarray]:
        boxlo, boxhi, xy, yz, xz, _, _ = self.lmp.extract_box()
        lo, hi = np.array(boxlo), np.array(boxhi)
        lx, ly, lz = hi - lo
        return np.array([[lx, 0, 0], [xy, ly, 0], [xz, yz, lz]]), lo

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Wrapped positions and unwrapped fractional coordinates, ordered by atom id (all ranks)."""
        n = len(self.species)
        x = np.ctypeslib.as_array(self.lmp.gather_atoms("x", 1, 3)).reshape(n, 3).copy()
        image = np.ctypeslib.as_array(self.lmp.gather_atoms("image", 0, 3)).reshape(n, 3)
        cell, origin = self.box()
        frac = (x - origin) @ np.linalg.inv(cell)
        return x, frac + image

    def density(self) -> float:
        cell, _ = self.box()
        return density(cell, self.species)

    def energy_per_atom(self) -> float:
        return self.lmp.get_thermo("pe") / len(self.species)

    # -- stages
    def relax(self, pressure_gpa: float, cycles: int = 3, box: bool = True) -> Reference:
        """0 K minimisation of atoms and box at ``pressure_gpa`` (``box=False``: atoms only, e.g. a cluster in vacuum).

        Box and atom relaxations alternate: in BKS α-quartz ``fix box/relax`` stalls ("linesearch alpha
        is zero") with ~0.8 GPa left, because volume couples to soft tetrahedral tilts; the residual
        pressure is recorded in ``Reference.relaxed_pressure_gpa``.
        """
        mode = "tri" if self.triclinic else "aniso"
        bar = pressure_gpa * BAR_PER_GPA
        self.command("min_style cg")
        for _ in range(cycles if box else 0):
            self.commands([f"fix relax all box/relax {mode} {_num(bar)} vmax 0.001", "minimize 0.0 1.0e-8 1000 10000",
                           "unfix relax", "minimize 0.0 1.0e-8 1000 10000"])
            if abs(self.lmp.get_thermo("press") - bar) < 0.05 * BAR_PER_GPA:
                break
        if not box:
            self.command("minimize 0.0 1.0e-8 1000 10000")
        self.command("run 0")
        x, frac = self.positions()
        cell, origin = self.box()
        self.sites_fractional = frac
        center, neighbor, cutoff = coordination_rule(self.input_positions, self.input_cell, self.species)
        ideal = coordination(self.input_positions, self.input_cell, self.species, center, neighbor, cutoff)
        reference = Reference(
            phase=self.phase, potential=self.potential.name, pressure_gpa=pressure_gpa, positions=x - origin,
            cell=cell, origin=np.zeros(3), species=self.species, energy_per_atom=self.energy_per_atom(),
            density=density(cell, self.species), center=center, neighbor=neighbor, bond_cutoff=cutoff,
            ideal_coordination=ideal, relaxed_pressure_gpa=self.lmp.get_thermo("press") / BAR_PER_GPA,
        )
        # the relaxed crystal against the input one (box scaling removed): did relaxation already transform it?
        input_frac = self.input_positions @ np.linalg.inv(self.input_cell)
        relaxed = Snapshot(
            positions=x, cell=cell, origin=origin, species=self.species, step=0, time_ps=0.0, temperature=0.0,
            target_temperature=0.0, pressure_gpa=self.lmp.get_thermo("press") / BAR_PER_GPA, density=reference.density,
            potential_energy_per_atom=reference.energy_per_atom,
            site_displacement=_site_displacement(frac - np.floor(frac), input_frac, cell, unwrapped=False),
            msd=0.0, stage="relax",
        )
        input_reference = Reference(**{**reference.__dict__, "density": density(self.input_cell, self.species),
                                       "cell": self.input_cell})
        # Density is left out: the input may come from another pressure (pyrite-type: 270 GPa); a collapse
        # shows in coordination, site displacement or cell shape. The shape tolerance is wider than in MD
        # (15 % vs 5 %): potentials misfit axial ratios (Tersoff stishovite: c/a +20 %, still stishovite),
        # whereas a new lattice strains the cell by 20–90 % (Tersoff rosiaite-type, Vashishta stishovite).
        reference.relaxation_check = check_phase(relaxed, input_reference, density_tolerance=math.inf,
                                                 displacement_cutoff=0.5, max_shape_strain=0.15)
        return reference

    def start_md(self, temperature: float, seed: int) -> None:
        self.command(f"velocity all create {_num(max(temperature, 1.0))} {seed} mom yes rot yes dist gaussian")
        self.command("reset_timestep 0")
        self.step = 0

    def npt(self, t_start: float, t_end: float, pressure_gpa: float, ps: float, snapshot_every_ps: float,
            stage: str, on_snapshot: Callable[[Snapshot], bool] | None = None,
            samples_per_snapshot: int = 10, ensemble: str = "npt", extra_fixes: Sequence[str] = ()) -> list[Snapshot]:
        """NPT (Nosé–Hoover) with a linear temperature ramp; a snapshot every ``snapshot_every_ps``.

        Positions are sampled ``samples_per_snapshot`` times per snapshot interval and averaged, so the
        site displacement is time-averaged. ``on_snapshot`` returning False ends the run early.
        ``ensemble="nvt"`` keeps the box (slabs with vacuum, imposed strain); ``extra_fixes`` ("ID group
        style args", e.g. a ``deform``) are on for this stage only, interpolating over the whole stage.
        """
        mode = "tri" if self.triclinic else "aniso"
        bar = pressure_gpa * BAR_PER_GPA
        dt = self.timestep_ps
        total = max(1, round(ps / dt))
        every = max(1, min(total, round(snapshot_every_ps / dt)))
        chunk = max(1, every // samples_per_snapshot)
        if ensemble == "npt":
            self.command(f"fix md all npt temp {_num(t_start)} {_num(t_end)} {_num(100 * dt)} {mode} {_num(bar)} {_num(bar)} {_num(1000 * dt)}")
        elif ensemble == "nvt":
            self.command(f"fix md all nvt temp {_num(t_start)} {_num(t_end)} {_num(100 * dt)}")
        elif ensemble != "none":  # "none": the caller's own fixes integrate
            raise LammpsPhaseError(f"ensemble must be 'npt', 'nvt' or 'none', not {ensemble!r}")
        for fix in extra_fixes:
            self.command(f"fix {fix}")
        first, last = self.step, self.step + total
        snapshots: list[Snapshot] = []
        window: list[np.ndarray] = []
        done = 0
        while done < total:
            n = min(chunk, total - done)
            pre = "yes" if done == 0 else "no"
            self.command(f"run {n} start {first} stop {last} pre {pre} post no")
            done += n
            self.step += n
            _, frac = self.positions()
            window.append(frac)
            if done % every == 0 or done == total:
                target = t_start + (t_end - t_start) * done / total
                snapshots.append(self._snapshot(np.mean(window, axis=0), frac, target, stage))
                window = []
                if on_snapshot is not None and not on_snapshot(snapshots[-1]):
                    break
        for fix in extra_fixes:
            self.command(f"unfix {fix.split()[0]}")
        if ensemble != "none":
            self.command("unfix md")
        return snapshots

    def _snapshot(self, mean_frac: np.ndarray, frac: np.ndarray, target: float, stage: str) -> Snapshot:
        assert self.sites_fractional is not None
        cell, origin = self.box()
        wrapped = np.mod(frac, 1.0)
        drift = frac - (self.sites_fractional if self.msd_origin is None else self.msd_origin)
        drift -= drift.mean(axis=0)
        msd = float(np.mean(np.sum((drift @ cell) ** 2, axis=1)))
        return Snapshot(
            positions=origin + wrapped @ cell, cell=cell, origin=origin, species=self.species, step=self.step,
            time_ps=self.step * self.timestep_ps, temperature=self.lmp.get_thermo("temp"), target_temperature=target,
            pressure_gpa=self.lmp.get_thermo("press") / BAR_PER_GPA, density=density(cell, self.species),
            potential_energy_per_atom=self.energy_per_atom(),
            site_displacement=_site_displacement(mean_frac, self.sites_fractional, cell, unwrapped=True),
            msd=msd, stage=stage,
        )


# --------------------------------------------------------------------------------------------------
# the runs (in-process implementations; the public functions dispatch them)


def _resolve(potential: str | Potential) -> Potential:
    return get_potential(potential) if isinstance(potential, str) else potential


@dataclass(frozen=True)
class CrystalData:
    """The part of a crystal a run needs, in a form that pickles into a child process."""

    name: str
    cell: np.ndarray
    positions: np.ndarray
    symbols: tuple[str, ...]

    @classmethod
    def of(cls, crystal: Any) -> "CrystalData":
        symbols = tuple(str(s) for s in crystal.symbols)
        positions = np.asarray(crystal.positions, dtype=float)
        if positions.shape != (len(symbols), 3):
            raise LammpsPhaseError(f"crystal has {len(symbols)} symbols but positions of shape {positions.shape}")
        return cls(str(getattr(crystal, "name", "crystal")), np.asarray(crystal.cell, dtype=float), positions, symbols)


def _supercell(crystal: Any, min_length: float | None) -> Any:
    if not min_length:
        return crystal
    from lammps_phase.data.structures import supercell

    try:
        return supercell(crystal, min_length, orthogonal=True)
    except LammpsPhaseError:  # no near-orthogonal choice of cell: LAMMPS takes the triclinic box
        return supercell(crystal, min_length, orthogonal=False)


def checked_recorder(run: PhaseRun, check: Callable[[Snapshot], PhaseCheck],
                     stop_after_failures: int | None) -> Callable[[Snapshot], bool]:
    """The ``on_snapshot`` callback of a checked run: judge each snapshot, record it in ``run``, and end the run
    after ``stop_after_failures`` failing snapshots in a row (a lost phase does not come back)."""
    failures = 0

    def record(snap: Snapshot) -> bool:
        nonlocal failures
        snap.check = check(snap)
        failures = 0 if snap.check.holds else failures + 1
        run.snapshots.append(snap)
        return not (stop_after_failures and failures >= stop_after_failures)

    return record


def _relax_impl(crystal, potential, pressure_gpa, log_path, extra_commands, timestep_fs=None) -> Reference:
    session = _Session(crystal, _resolve(potential), log_path, extra_commands, timestep_fs)
    try:
        return session.relax(pressure_gpa)
    finally:
        session.close()


def _heating_impl(crystal, potential, pressure_gpa, t_start, t_end, ps, seed, snapshot_every_ps,
                  log_path, extra_commands, stop_after_failures, timestep_fs=None) -> PhaseRun:
    session = _Session(crystal, _resolve(potential), log_path, extra_commands, timestep_fs)
    try:
        reference = session.relax(pressure_gpa)
        run = PhaseRun(session.phase, session.potential.name, pressure_gpa, session.phase, reference)
        session.start_md(t_start, seed)
        record = checked_recorder(run, lambda snap: check_phase(snap, reference), stop_after_failures)
        session.npt(t_start, t_end, pressure_gpa, ps, snapshot_every_ps, "heat", on_snapshot=record)
        return run
    finally:
        session.close()


def _melt_impl(session: _Session, reference: Reference, pressure_gpa, temperature, ps, seed, snapshot_every_ps,
               min_msd) -> list[Snapshot]:
    session.start_md(temperature, seed)
    snaps = session.npt(temperature, temperature, pressure_gpa, ps, snapshot_every_ps, "melt")
    for snap in snaps:
        snap.check = check_liquid(snap, reference, min_msd=min_msd)
    if not snaps[-1].check.holds:
        raise LammpsPhaseError(
            f"{session.phase} in {session.potential.name} at {temperature} K, {pressure_gpa} GPa is not liquid after "
            f"{ps} ps: {snaps[-1].check.reason}; raise the temperature or run longer (superheated crystals survive "
            "several ps)"
        )
    return snaps


def _melt_run_impl(crystal, potential, pressure_gpa, temperature, ps, seed, snapshot_every_ps,
                   log_path, extra_commands, min_msd, timestep_fs=None) -> PhaseRun:
    session = _Session(crystal, _resolve(potential), log_path, extra_commands, timestep_fs)
    try:
        reference = session.relax(pressure_gpa)
        run = PhaseRun(session.phase, session.potential.name, pressure_gpa, "melt", reference)
        run.snapshots = _melt_impl(session, reference, pressure_gpa, temperature, ps, seed, snapshot_every_ps, min_msd)
        return run
    finally:
        session.close()


def _melt_quench_impl(crystal, potential, pressure_gpa, melt_temperature, melt_ps, quench_rate_k_per_ps,
                      hold_temperatures, hold_ps, seed, snapshot_every_ps, log_path,
                      extra_commands, min_msd, timestep_fs=None, max_glass_msd=math.inf) -> PhaseRun:
    session = _Session(crystal, _resolve(potential), log_path, extra_commands, timestep_fs)
    try:
        reference = session.relax(pressure_gpa)
        return glass_stages(session, reference, pressure_gpa, melt_temperature, melt_ps, quench_rate_k_per_ps,
                            hold_temperatures, hold_ps, seed, snapshot_every_ps, min_msd, max_glass_msd)
    finally:
        session.close()


def glass_stages(session: _Session, reference: Reference, pressure_gpa, melt_temperature, melt_ps, quench_rate_k_per_ps,
                 hold_temperatures, hold_ps, seed, snapshot_every_ps, min_msd, max_glass_msd=math.inf) -> PhaseRun:
    """Melt (proven liquid), quench and hold in an open session; holds are checked with check_amorphous.

    Each hold measures MSD from its own start, so ``max_glass_msd`` tells a solid glass from a liquid."""
    run = PhaseRun(session.phase, session.potential.name, pressure_gpa, "amorphous", reference)
    melt = _melt_impl(session, reference, pressure_gpa, melt_temperature, melt_ps, seed, snapshot_every_ps, min_msd)
    for snap in melt:  # the liquid is not glass: keep it in the record, never as "amorphous"
        snap.check = PhaseCheck(False, "liquid (melt stage)", snap.check.coordination_histogram,
                                snap.check.ideal_coordination_fraction, snap.check.density_ratio,
                                snap.check.displaced_fraction, snap.msd)
    run.snapshots.extend(melt)
    temperature = melt_temperature
    for hold in sorted(hold_temperatures, reverse=True):
        ramp_ps = abs(temperature - hold) / quench_rate_k_per_ps
        if ramp_ps > 0:
            quench = session.npt(temperature, hold, pressure_gpa, ramp_ps, max(ramp_ps / 2, snapshot_every_ps),
                                 "quench")
            for snap in quench:
                snap.check = PhaseCheck(False, "quench ramp (not equilibrated)", {}, 0.0,
                                        snap.density / reference.density, 0.0, snap.msd)
            run.snapshots.extend(quench)
        session.msd_origin = session.positions()[1]
        for snap in session.npt(hold, hold, pressure_gpa, hold_ps, snapshot_every_ps, "hold"):
            snap.check = check_amorphous(snap, reference, max_msd=max_glass_msd)
            run.snapshots.append(snap)
        session.msd_origin = None
        temperature = hold
    return run


def _energy_forces_impl(crystal, potential, log_path, extra_commands, timestep_fs=None,
                        per_atom=False) -> tuple[float, np.ndarray] | np.ndarray:
    session = _Session(crystal, _resolve(potential), log_path, extra_commands, timestep_fs)
    try:
        n = len(session.species)
        if per_atom:
            session.commands(["compute atom_pe all pe/atom", "run 0"])
            return np.ctypeslib.as_array(session.lmp.gather("c_atom_pe", 1, 1)).reshape(n).copy()
        session.command("run 0")
        forces = np.ctypeslib.as_array(session.lmp.gather_atoms("f", 1, 3)).reshape(n, 3).copy()
        return session.lmp.get_thermo("pe"), forces
    finally:
        session.close()


_IMPLEMENTATIONS = {
    "relax": _relax_impl,
    "heating": _heating_impl,
    "melt": _melt_run_impl,
    "melt_quench": _melt_quench_impl,
    "energy_forces": _energy_forces_impl,
}


def implementation(kind: str) -> Callable[..., Any]:
    """The in-process function of a run kind: bulk runs here, surfaces/strain/interfaces in variants."""
    if kind in _IMPLEMENTATIONS:
        return _IMPLEMENTATIONS[kind]
    from lammps_phase.data import variants

    if kind not in variants.IMPLEMENTATIONS:
        raise LammpsPhaseError(f"unknown run kind {kind!r}")
    return variants.IMPLEMENTATIONS[kind]


# --------------------------------------------------------------------------------------------------
# dispatch: in-process or in a child process that may die on a LAMMPS ERROR


def _dispatch(kind: str, kwargs: dict[str, Any], *, log_path: str | Path | None, isolate: bool | None,
              ranks: int) -> Any:
    if isolate is None:
        isolate = not lammps_has_exceptions() and runtime.world_size() == 1
    kwargs = dict(kwargs)
    kwargs["crystal"] = CrystalData.of(_supercell(kwargs["crystal"], kwargs.pop("supercell_min_length", None)))
    potential = kwargs.get("potential")
    if isolate and isinstance(potential, Potential):
        kwargs["potential"] = potential.name  # registry entries travel by name
    scratch = Path(tempfile.mkdtemp(prefix="lammps_phase_"))
    try:
        log = Path(log_path) if log_path else scratch / "log.lammps"
        log.parent.mkdir(parents=True, exist_ok=True)
        kwargs = {**kwargs, "log_path": log}
        if not isolate:
            return implementation(kind)(**kwargs)
        job, result = scratch / "job.pkl", scratch / "result.pkl"
        with open(job, "wb") as fh:
            pickle.dump({"kind": kind, "kwargs": kwargs, "result": str(result)}, fh)
        command = [sys.executable, "-m", "lammps_phase.data.heating", str(job)]
        if ranks > 1:
            mpirun = shutil.which("mpirun")
            if mpirun is None:
                raise LammpsPhaseError("ranks > 1 needs mpirun on PATH; install openmpi-bin or use ranks=1")
            command = [mpirun, "--allow-run-as-root", "--oversubscribe", "-np", str(ranks), *command]
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0 or not result.exists():
            line = error_line(log)
            if line is None:
                output = (proc.stderr or proc.stdout or "").strip().splitlines()
                errors = [ln.strip() for ln in output if "Error" in ln or "ERROR" in ln]
                line = errors[-1] if errors else (" | ".join(output[-3:]) or f"exit status {proc.returncode}")
            where = f" (log: {log})" if log_path else ""
            phase = getattr(kwargs.get("crystal"), "name", "crystal")
            raise LammpsPhaseError(f"LAMMPS {kind} run of {phase} failed: {line}{where}")
        with open(result, "rb") as fh:
            payload = pickle.load(fh)
        if "error" in payload:
            raise LammpsPhaseError(payload["error"])
        return payload["result"]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def relax(crystal: Any, potential: str | Potential, pressure_gpa: float = 0.0, *,
          supercell_min_length: float | None = None, log_path: str | Path | None = None,
          extra_commands: Sequence[str] = (), timestep_fs: float | None = None, isolate: bool | None = None,
          ranks: int = 1) -> Reference:
    """Box relaxation at 0 K and ``pressure_gpa`` (``fix box/relax`` aniso, or tri for tilted cells).

    ``reference.relaxation_check`` says whether the relaxed crystal still is the input phase.
    """
    return _dispatch("relax", dict(crystal=crystal, potential=potential, pressure_gpa=pressure_gpa,
                                   supercell_min_length=supercell_min_length, extra_commands=list(extra_commands), timestep_fs=timestep_fs),
                     log_path=log_path, isolate=isolate, ranks=ranks)


def heating_run(crystal: Any, potential: str | Potential, pressure_gpa: float = 0.0, t_start: float = 300.0,
                t_end: float = 1500.0, ps: float = 10.0, seed: int = 1, snapshot_every_ps: float = 0.5, *,
                supercell_min_length: float | None = 20.0, log_path: str | Path | None = None,
                extra_commands: Sequence[str] = (), stop_after_failures: int | None = 2,
                timestep_fs: float | None = None, isolate: bool | None = None, ranks: int = 1) -> PhaseRun:
    """Relax, then heat from ``t_start`` to ``t_end`` K over ``ps`` at ``pressure_gpa`` (Nosé–Hoover NPT).

    Every snapshot carries ``check`` (:func:`check_phase` against the relaxed crystal); the run stops
    after ``stop_after_failures`` failing snapshots in a row. ``PhaseRun.kept`` are the training frames.
    """
    return _dispatch("heating", dict(crystal=crystal, potential=potential, pressure_gpa=pressure_gpa,
                                     t_start=t_start, t_end=t_end, ps=ps, seed=seed,
                                     snapshot_every_ps=snapshot_every_ps, supercell_min_length=supercell_min_length,
                                     extra_commands=list(extra_commands), timestep_fs=timestep_fs, stop_after_failures=stop_after_failures),
                     log_path=log_path, isolate=isolate, ranks=ranks)


def melt_run(crystal: Any, potential: str | Potential, pressure_gpa: float = 0.0, temperature: float = 6500.0,
             ps: float = 6.0, seed: int = 1, snapshot_every_ps: float = 0.5, *,
             supercell_min_length: float | None = 20.0, log_path: str | Path | None = None,
             extra_commands: Sequence[str] = (), min_msd: float = 5.0, timestep_fs: float | None = None,
             isolate: bool | None = None, ranks: int = 1) -> PhaseRun:
    """Melt the crystal at ``temperature`` and hold it; raise unless the end state is a proven liquid.

    Snapshots whose :func:`check_liquid` holds (MSD > ``min_msd`` Å², lattice sites lost) are the melt frames.
    """
    return _dispatch("melt", dict(crystal=crystal, potential=potential, pressure_gpa=pressure_gpa,
                                  temperature=temperature, ps=ps, seed=seed, snapshot_every_ps=snapshot_every_ps,
                                  supercell_min_length=supercell_min_length, extra_commands=list(extra_commands), timestep_fs=timestep_fs,
                                  min_msd=min_msd),
                     log_path=log_path, isolate=isolate, ranks=ranks)


def melt_quench(crystal: Any, potential: str | Potential, pressure_gpa: float = 0.0, melt_temperature: float = 6500.0,
                melt_ps: float = 6.0, quench_rate_k_per_ps: float = 1000.0,
                hold_temperatures: Sequence[float] = (300.0,), hold_ps: float = 2.0, seed: int = 1,
                snapshot_every_ps: float = 0.5, *, supercell_min_length: float | None = 20.0,
                log_path: str | Path | None = None, extra_commands: Sequence[str] = (), min_msd: float = 5.0,
                timestep_fs: float | None = None, isolate: bool | None = None, ranks: int = 1,
                max_glass_msd: float = math.inf) -> PhaseRun:
    """Glass: melt (proven liquid), quench at ``quench_rate_k_per_ps`` to each hold temperature (highest first) and hold.

    Hold snapshots are checked with :func:`check_amorphous` (with ``max_glass_msd`` Å² in a hold: a solid);
    melt and quench frames are recorded but rejected.
    """
    return _dispatch("melt_quench", dict(crystal=crystal, potential=potential, pressure_gpa=pressure_gpa,
                                         melt_temperature=melt_temperature, melt_ps=melt_ps,
                                         quench_rate_k_per_ps=quench_rate_k_per_ps,
                                         hold_temperatures=list(hold_temperatures), hold_ps=hold_ps, seed=seed,
                                         snapshot_every_ps=snapshot_every_ps,
                                         supercell_min_length=supercell_min_length,
                                         extra_commands=list(extra_commands), timestep_fs=timestep_fs, min_msd=min_msd,
                                         max_glass_msd=max_glass_msd),
                     log_path=log_path, isolate=isolate, ranks=ranks)


def energy_and_forces(crystal: Any, potential: str | Potential, *, log_path: str | Path | None = None,
                      extra_commands: Sequence[str] = (), timestep_fs: float | None = None, isolate: bool | None = None,
                      ranks: int = 1) -> tuple[float, np.ndarray]:
    """Potential energy (eV) and forces (N, 3; eV/Å, LAMMPS frame, atom order) of the crystal as given."""
    return _dispatch("energy_forces", dict(crystal=crystal, potential=potential, extra_commands=list(extra_commands), timestep_fs=timestep_fs),
                     log_path=log_path, isolate=isolate, ranks=ranks)


def atom_energies(crystal: Any, potential: str | Potential, *, log_path: str | Path | None = None,
                  extra_commands: Sequence[str] = (), isolate: bool | None = None, ranks: int = 1) -> np.ndarray:
    """Per-atom potential energies (eV; LAMMPS ``compute pe/atom``: pair energies split half and half)."""
    return _dispatch("energy_forces", dict(crystal=crystal, potential=potential, extra_commands=list(extra_commands),
                                           per_atom=True), log_path=log_path, isolate=isolate, ranks=ranks)


def run_report(runs: Iterable[PhaseRun]) -> str:
    """Per run: the temperatures and pressures kept and rejected, with the reasons."""
    lines = []
    for run in runs:
        head = f"{run.phase} [{run.label}] in {run.potential} at {run.pressure_gpa:g} GPa"
        relax_check = run.reference.relaxation_check
        if relax_check is not None and not relax_check.holds:
            head += f" — relaxation already transformed it: {relax_check.reason}"
        lines.append(head)
        kept = run.kept
        if kept:
            temps = [s.temperature for s in kept]
            press = [s.pressure_gpa for s in kept]
            lines.append(f"  kept {len(kept)}: T {min(temps):.0f}–{max(temps):.0f} K, "
                         f"P {min(press):.2f}–{max(press):.2f} GPa")
        else:
            lines.append("  kept 0")
        for snap in run.rejected:
            reason = snap.check.reason if snap.check else "unchecked"
            lines.append(f"  rejected {snap.stage} step {snap.step}: T {snap.temperature:.0f} K, "
                         f"P {snap.pressure_gpa:.2f} GPa — {reason}")
    return "\n".join(lines)


def _worker(job_path: str) -> None:
    with open(job_path, "rb") as fh:
        job = pickle.load(fh)
    try:
        payload = {"result": implementation(job["kind"])(**job["kwargs"])}
    except LammpsPhaseError as exc:  # our own verdicts (e.g. "not liquid") travel back as such
        payload = {"error": str(exc)}
    if runtime.world_rank() == 0:
        with open(job["result"], "wb") as fh:
            pickle.dump(payload, fh)


if __name__ == "__main__":
    # run from the imported module, so results pickle as lammps_phase.data.heating.* rather than __main__.*
    from lammps_phase.data.heating import _worker as _module_worker

    _module_worker(sys.argv[1])
