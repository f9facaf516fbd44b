"""Bulk training-data runs in LAMMPS: relax a crystal, heat it at constant pressure, melt it, quench it to a glass.

Every snapshot is checked against its relaxed crystal (:mod:`lammps_phase.data.checks`), so a phase that has
already transformed is never labelled as the phase it started as. Each public function hands its run to
:func:`lammps_phase.data.isolation.dispatch`, which executes it in this process or in a child process that may die
on a LAMMPS ERROR; the run itself drives a :class:`~lammps_phase.data.md_session.LammpsSession`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.data.checks import (PhaseCheck, PhaseRun, Reference, Snapshot, check_amorphous, check_liquid,
                                      check_phase, check_quartz_tilt)
from lammps_phase.data.isolation import dispatch
from lammps_phase.data.md_session import LammpsSession
from lammps_phase.data.potentials import Potential


# --------------------------------------------------------------------------------------------------
# the runs in this process (what the public functions below dispatch)


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
    with LammpsSession(crystal, potential, log_path, extra_commands, timestep_fs) as session:
        return session.relax(pressure_gpa)


def _heating_impl(crystal, potential, pressure_gpa, t_start, t_end, ps, seed, snapshot_every_ps,
                  log_path, extra_commands, stop_after_failures, timestep_fs=None) -> PhaseRun:
    with LammpsSession(crystal, potential, log_path, extra_commands, timestep_fs) as session:
        reference = session.relax(pressure_gpa)
        run = PhaseRun(session.phase, session.potential.name, pressure_gpa, session.phase, reference)
        session.start_md(t_start, seed)
        record = checked_recorder(
            run, lambda snap: check_quartz_tilt(check_phase(snap, reference), snap, session.phase), stop_after_failures)
        session.npt(t_start, t_end, pressure_gpa, ps, snapshot_every_ps, "heat", on_snapshot=record)
        return run


def _melt_impl(session: LammpsSession, reference: Reference, pressure_gpa, temperature, ps, seed, snapshot_every_ps,
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
    with LammpsSession(crystal, potential, log_path, extra_commands, timestep_fs) as session:
        reference = session.relax(pressure_gpa)
        run = PhaseRun(session.phase, session.potential.name, pressure_gpa, "melt", reference)
        run.snapshots = _melt_impl(session, reference, pressure_gpa, temperature, ps, seed, snapshot_every_ps, min_msd)
        return run


def _melt_quench_impl(crystal, potential, pressure_gpa, melt_temperature, melt_ps, quench_rate_k_per_ps,
                      hold_temperatures, hold_ps, seed, snapshot_every_ps, log_path,
                      extra_commands, min_msd, timestep_fs=None, max_glass_msd=math.inf) -> PhaseRun:
    with LammpsSession(crystal, potential, log_path, extra_commands, timestep_fs) as session:
        reference = session.relax(pressure_gpa)
        return glass_stages(session, reference, pressure_gpa, melt_temperature, melt_ps, quench_rate_k_per_ps,
                            hold_temperatures, hold_ps, seed, snapshot_every_ps, min_msd, max_glass_msd)


def glass_stages(session: LammpsSession, reference: Reference, pressure_gpa, melt_temperature, melt_ps,
                 quench_rate_k_per_ps, hold_temperatures, hold_ps, seed, snapshot_every_ps, min_msd,
                 max_glass_msd=math.inf) -> PhaseRun:
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
    with LammpsSession(crystal, potential, log_path, extra_commands, timestep_fs) as session:
        n = len(session.species)
        if per_atom:
            session.commands(["compute atom_pe all pe/atom", "run 0"])
            return np.ctypeslib.as_array(session.lmp.gather("c_atom_pe", 1, 1)).reshape(n).copy()
        session.command("run 0")
        forces = np.ctypeslib.as_array(session.lmp.gather_atoms("f", 1, 3)).reshape(n, 3).copy()
        return session.lmp.get_thermo("pe"), forces


IMPLEMENTATIONS = {
    "relax": _relax_impl,
    "heating": _heating_impl,
    "melt": _melt_run_impl,
    "melt_quench": _melt_quench_impl,
    "energy_forces": _energy_forces_impl,
}


# --------------------------------------------------------------------------------------------------
# the public runs: in this process or in a child process (lammps_phase.data.isolation)


def relax(crystal: Any, potential: str | Potential, pressure_gpa: float = 0.0, *,
          supercell_min_length: float | None = None, log_path: str | Path | None = None,
          extra_commands: Sequence[str] = (), timestep_fs: float | None = None, isolate: bool | None = None,
          ranks: int = 1) -> Reference:
    """Box relaxation at 0 K and ``pressure_gpa`` (``fix box/relax`` aniso, or tri for tilted cells).

    ``reference.relaxation_check`` says whether the relaxed crystal still is the input phase.
    """
    return dispatch("relax", dict(crystal=crystal, potential=potential, pressure_gpa=pressure_gpa,
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
    return dispatch("heating", dict(crystal=crystal, potential=potential, pressure_gpa=pressure_gpa,
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
    return dispatch("melt", dict(crystal=crystal, potential=potential, pressure_gpa=pressure_gpa,
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
    return dispatch("melt_quench", dict(crystal=crystal, potential=potential, pressure_gpa=pressure_gpa,
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
    return dispatch("energy_forces", dict(crystal=crystal, potential=potential, extra_commands=list(extra_commands), timestep_fs=timestep_fs),
                    log_path=log_path, isolate=isolate, ranks=ranks)


def atom_energies(crystal: Any, potential: str | Potential, *, log_path: str | Path | None = None,
                  extra_commands: Sequence[str] = (), isolate: bool | None = None, ranks: int = 1) -> np.ndarray:
    """Per-atom potential energies (eV; LAMMPS ``compute pe/atom``: pair energies split half and half)."""
    return dispatch("energy_forces", dict(crystal=crystal, potential=potential, extra_commands=list(extra_commands),
                                          per_atom=True), log_path=log_path, isolate=isolate, ranks=ranks)


# --------------------------------------------------------------------------------------------------
# what became of the runs


def heating_summary(runs: Iterable[PhaseRun]) -> str:
    """Per run: the temperatures and pressures kept and rejected, with the reasons (the heating report's text)."""
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
