"""One LAMMPS instance driven through its Python module: set up a crystal, relax it, run NPT/NVT, take snapshots.

Snapshots carry what the structural checks (:mod:`lammps_phase.data.checks`) need: positions sampled several
times per interval and averaged, so site displacements are time-averaged, and MSD with drift and box scaling
removed. Debian's LAMMPS has no C++ exceptions (an ERROR ends the whole process), so callers ask
:func:`lammps_has_exceptions` whether a run must go to a child process (:mod:`lammps_phase.data.isolation`) and
read the ERROR back from the log with :func:`error_line`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from lammps_phase.cell import lammps_frame
from lammps_phase.elements import density, mass
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.data.checks import (
    Reference,
    Snapshot,
    check_phase,
    coordination,
    coordination_rule,
    site_displacement,
)
from lammps_phase.data.potentials import Potential, get as get_potential, type_map_for

BAR_PER_GPA = 1.0e4

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


def lammps_float(value: float) -> str:
    """A float as LAMMPS reads it back exactly (numpy scalars would print as 'np.float64(...)')."""
    return repr(float(value))


# --------------------------------------------------------------------------------------------------
# the session


class LammpsSession:
    """One LAMMPS instance set up with a crystal and a potential (a registry name or a :class:`Potential`);
    snapshots and sampling helpers. A context manager: the instance is closed however the run ends."""

    def __init__(self, crystal: Any, potential: str | Potential, log_path: Path, extra_commands: Sequence[str] = (),
                 timestep_fs: float | None = None):
        if isinstance(potential, str):
            potential = get_potential(potential)
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
            self.commands(["box tilt large", f"region box prism 0 {lammps_float(lx)} 0 {lammps_float(ly)} 0 {lammps_float(lz)} {lammps_float(xy)} {lammps_float(xz)} {lammps_float(yz)}"])
        else:
            self.commands([f"region box block 0 {lammps_float(lx)} 0 {lammps_float(ly)} 0 {lammps_float(lz)}"])
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
            f"timestep {lammps_float(self.timestep_ps)}",
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

    def group(self, name: str, atoms: np.ndarray) -> None:
        """LAMMPS group ``name`` of the atoms a boolean mask selects, the mask in the order the session created them
        (ids 1..n). Sent 200 ids per command ("group ... id" adds to an existing group), so no command line grows
        with the system."""
        ids = np.flatnonzero(np.asarray(atoms, bool)) + 1
        for s in range(0, len(ids), 200):
            self.command(f"group {name} id " + " ".join(map(str, ids[s:s + 200])))

    def close(self) -> None:
        self.lmp.close()

    def __enter__(self) -> "LammpsSession":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

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
            self.commands([f"fix relax all box/relax {mode} {lammps_float(bar)} vmax 0.001", "minimize 0.0 1.0e-8 1000 10000",
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
            site_displacement=site_displacement(frac - np.floor(frac), input_frac, cell, unwrapped=False),
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
        self.command(f"velocity all create {lammps_float(max(temperature, 1.0))} {seed} mom yes rot yes dist gaussian")
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
            self.command(f"fix md all npt temp {lammps_float(t_start)} {lammps_float(t_end)} {lammps_float(100 * dt)} {mode} {lammps_float(bar)} {lammps_float(bar)} {lammps_float(1000 * dt)}")
        elif ensemble == "nvt":
            self.command(f"fix md all nvt temp {lammps_float(t_start)} {lammps_float(t_end)} {lammps_float(100 * dt)}")
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
            site_displacement=site_displacement(mean_frac, self.sites_fractional, cell, unwrapped=True),
            msd=msd, stage=stage, mean_fractional=mean_frac,
        )
