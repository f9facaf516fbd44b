"""Training runs beyond periodic bulk: free-surface slabs, uniaxially strained crystals, crystal | disorder interfaces.

A shock user looks at free surfaces, at the elastic precursor and at mixed regions; a model that only saw
periodic bulk labels them confidently wrong. Each run here starts like a bulk run (a crystal relaxed at its
pressure, :mod:`lammps_phase.data.heating`), then changes one thing and checks every snapshot before it is kept:

* **slab** — a vacuum gap opened along one axis of the relaxed cell (NVT at the relaxed lateral cell). The
  phase check runs on the interior (atoms deeper than ``interior_depth``); surface atoms carry the phase's label
  (they belong to it: a user asks "which phase is this surface of?"), unless more than ``max_surface_displaced``
  of them left their sites, which ends the run. Glass slabs are cut from a checked glass.
* **strained** — the box compressed along one axis, lateral sides fixed (uniaxial strain, as in a shock
  precursor), linearly from 0 to ``strain`` during the stage; kept while coordination and (affinely mapped) sites
  hold, the sites judged on each frame itself and more tightly than in a heating run (:data:`STRAINED_SITE_CUTOFF`).
* **interface** — the upper half of the cell (along ``axis``) is melted while the lower half is held, then
  either kept hot (crystal | melt) or quenched to a glass (crystal | glass). Atoms carry their own labels: crystal
  atoms still on their sites → the crystal's class; liquid-side atoms → melt / amorphous; crystal atoms that left
  their sites → no label (−1, ignored in training).
* **sphere** — a cluster cut from the crystal (in vacuum) or a void in it; the interior and the surface layer
  are judged like a slab's.
* **bicrystal** — two crystals stacked along ``axis`` (two interfaces), each side judged by its own coordination.

The geometry of these samples is :mod:`lammps_phase.data.geometry`; their checks are in
:mod:`lammps_phase.data.checks`.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.data import quartz_order
from lammps_phase.data.checks import (
    PhaseCheck,
    PhaseRun,
    Reference,
    Snapshot,
    check_amorphous,
    check_liquid,
    check_phase,
    check_slab,
    check_surface,
    lattice_registry,
    lattice_site_distance,
    site_displacement,
)
from lammps_phase.data.geometry import (
    axis_index,
    bicrystal,
    bicrystal_planes,
    cut_sphere,
    interface_distance,
    interface_side,
    sphere_depth,
)
from lammps_phase.data.heating import checked_recorder, glass_stages
from lammps_phase.data.isolation import dispatch, run_supercell
from lammps_phase.data.md_session import LammpsSession, lammps_float

# ------------------------------------------------------------------------------------------------ slabs


def _open_gap(session: LammpsSession, axis: str, vacuum: float) -> None:
    """Widen the box along ``axis`` by ``vacuum`` Å without moving atoms: two free surfaces appear.

    The lattice sites stay where they are in space, so their fractional coordinates are re-expressed in the
    new box (otherwise every site would seem to move by the gap's share of its coordinate)."""
    old_cell, _ = session.box()
    session.command(f"change_box all {axis} delta 0 {lammps_float(vacuum)} units box")
    new_cell, _ = session.box()
    session.sites_fractional = session.sites_fractional @ old_cell @ np.linalg.inv(new_cell)


def _slab_impl(crystal, potential, pressure_gpa, kind, axis, vacuum, t_start, t_end, ps, seed, snapshot_every_ps,
               log_path, extra_commands, glass: dict[str, Any] | None = None, timestep_fs=None,
               stop_after_failures=2) -> PhaseRun:
    with LammpsSession(crystal, potential, log_path, extra_commands, timestep_fs) as session:
        reference = session.relax(pressure_gpa)
        if kind == "glass":
            bulk = glass_stages(session, reference, pressure_gpa, seed=seed, snapshot_every_ps=snapshot_every_ps,
                                **(glass or {}))
            if not bulk.snapshots or bulk.snapshots[-1].check is None or not bulk.snapshots[-1].check.holds:
                reason = bulk.snapshots[-1].check.reason if bulk.snapshots and bulk.snapshots[-1].check else "no hold"
                raise LammpsPhaseError(f"the glass to cut a slab from failed its check: {reason}")
            label = "amorphous"
        else:
            label = session.phase
        run = PhaseRun(session.phase, session.potential.name, pressure_gpa, label, reference)
        _open_gap(session, axis, vacuum)
        if kind == "glass":
            session.msd_origin = session.positions()[1]
        else:
            # the cut surface relaxes at 0 K first; its relaxed atoms are the sites the surface is judged by
            session.commands(["min_style cg", "minimize 0.0 1.0e-8 1000 10000"])
            session.sites_fractional = session.positions()[1]
            session.start_md(t_start, seed)
        if kind == "glass":
            max_msd = (glass or {}).get("max_glass_msd", math.inf)
            record = checked_recorder(run, lambda snap: check_amorphous(snap, reference, max_msd=max_msd),
                                      stop_after_failures)
        else:
            record = checked_recorder(run, lambda snap: check_slab(snap, reference, axis), stop_after_failures)

        session.npt(t_start, t_end, 0.0, ps, snapshot_every_ps, "heat" if kind != "glass" else "hold",
                    on_snapshot=record, ensemble="nvt")
        return run


def slab_run(crystal: Any, potential: str, pressure_gpa: float = 0.0, *, kind: str = "crystal", axis: str = "z",
             vacuum: float = 20.0, t_start: float = 300.0, t_end: float = 1000.0, ps: float = 4.0, seed: int = 1,
             snapshot_every_ps: float = 0.5, glass: dict[str, Any] | None = None,
             supercell_min_length: float | None = 20.0, log_path: str | Path | None = None,
             extra_commands: Sequence[str] = (), timestep_fs: float | None = None, isolate: bool | None = None,
             ranks: int = 1) -> PhaseRun:
    """A slab of the crystal (or of a glass made from it: ``kind="glass"`` with ``glass`` = the melt-quench
    settings of :func:`heating.melt_quench`) with free surfaces normal to cell row ``axis``, heated from
    ``t_start`` to ``t_end`` over ``ps``; snapshots checked by :func:`check_slab` (glass: check_amorphous)."""
    axis_index(axis)
    if kind not in ("crystal", "glass"):
        raise LammpsPhaseError(f"slabs are made of crystals or glass, not {kind!r} (a liquid with a free surface evaporates)")
    return dispatch("slab", dict(crystal=crystal, potential=potential, pressure_gpa=pressure_gpa, kind=kind, axis=axis,
                                 vacuum=vacuum, t_start=t_start, t_end=t_end, ps=ps, seed=seed,
                                 snapshot_every_ps=snapshot_every_ps, glass=glass,
                                 supercell_min_length=supercell_min_length, extra_commands=list(extra_commands),
                                 timestep_fs=timestep_fs),
                    log_path=log_path, isolate=isolate, ranks=ranks)


# ------------------------------------------------------------------------------------------------ strain

#: Å a strained crystal's atoms may sit from their affinely mapped sites before the frame counts as given way, judged
#: on the frame's own (instantaneous) positions: those are what a training sample holds. A heating run allows 1 Å of
#: time-averaged displacement, but a crystal that collapses under uniaxial strain can pass that: Tersoff α-quartz
#: compressed to 11 % along x (session 15) lost two thirds of its pressure (6.3 → 2.7 GPa) and its tetrahedra tilt
#: (1.0 → 0.33), and every model read it as glass, with 0 % of atoms 1 Å off their sites averaged over the 0.5 ps
#: before the frame (the collapse came late in it) and 56 % 0.75 Å off at the frame itself (22–56 % in four such
#: frames). Intact frames have at most 2 % 0.75 Å off: none in α-cristobalite strained 17.5 %, whose tetrahedra rotate
#: off the affine sites (12 % of its atoms are 0.5 Å off: a tighter cutoff would refuse it), 2 % in α-quartz at 530 K.
STRAINED_SITE_CUTOFF = 0.75
#: what a strained run's check judges, recorded with its cached runs (a run judged otherwise is remade)
STRAINED_CHECK = {"site_cutoff": STRAINED_SITE_CUTOFF, "positions": "instantaneous"}


def check_strained(snapshot: Snapshot, reference: Reference) -> PhaseCheck:
    """Is a uniaxially strained snapshot still the reference crystal? Density and cell shape change by design and are
    not judged; coordination and the sites (in fractional coordinates, so the imposed strain is mapped out) are, the
    sites at this instant (:data:`STRAINED_SITE_CUTOFF`)."""
    instant = dataclasses.replace(snapshot, site_displacement=None)
    return check_phase(instant, reference, density_tolerance=math.inf, max_shape_strain=math.inf,
                       displacement_cutoff=STRAINED_SITE_CUTOFF)


def _strained_impl(crystal, potential, pressure_gpa, axis, strain, t_start, t_end, ps, seed, snapshot_every_ps,
                   log_path, extra_commands, timestep_fs=None, stop_after_failures=2) -> PhaseRun:
    with LammpsSession(crystal, potential, log_path, extra_commands, timestep_fs) as session:
        reference = session.relax(pressure_gpa)
        run = PhaseRun(session.phase, session.potential.name, pressure_gpa, session.phase, reference)
        session.start_md(t_start, seed)
        record = checked_recorder(run, lambda snap: check_strained(snap, reference), stop_after_failures)

        deform = f"strain all deform 1 {axis} scale {lammps_float(1.0 - strain)} remap x"
        session.npt(t_start, t_end, pressure_gpa, ps, snapshot_every_ps, "heat", on_snapshot=record, ensemble="nvt",
                    extra_fixes=[deform])
        return run


def strained_run(crystal: Any, potential: str, pressure_gpa: float = 0.0, *, axis: str = "x", strain: float = 0.2,
                 t_start: float = 300.0, t_end: float = 300.0, ps: float = 5.0, seed: int = 1,
                 snapshot_every_ps: float = 0.5, supercell_min_length: float | None = 20.0,
                 log_path: str | Path | None = None, extra_commands: Sequence[str] = (),
                 timestep_fs: float | None = None, isolate: bool | None = None, ranks: int = 1) -> PhaseRun:
    """Uniaxial strain: the relaxed crystal compressed along ``axis`` from 0 to ``strain`` (fraction of its
    length) over ``ps`` with the lateral sides fixed, at ``t_start``→``t_end`` K; kept while the crystal holds."""
    axis_index(axis)
    if not 0.0 < strain < 0.5:
        raise LammpsPhaseError(f"strain must be a compression between 0 and 0.5, not {strain}")
    return dispatch("strained", dict(crystal=crystal, potential=potential, pressure_gpa=pressure_gpa, axis=axis,
                                     strain=strain, t_start=t_start, t_end=t_end, ps=ps, seed=seed,
                                     snapshot_every_ps=snapshot_every_ps, supercell_min_length=supercell_min_length,
                                     extra_commands=list(extra_commands), timestep_fs=timestep_fs),
                    log_path=log_path, isolate=isolate, ranks=ranks)


# ------------------------------------------------------------------------------------------------ interfaces

#: a melted-side atom is crystal only while it sits as close to the lattice as the crystal half's own atoms do: within
#: their 90th percentile of time-averaged site distance, never tighter than MIN_LATTICE_SPREAD Å. Beyond it an atom of
#: the 0.9 Å registry band may be either (session 18: such atoms are 7.5-9.3 % of the labels within 3 Å of a BKS
#: quartz | glass interface and the models read them right only half the time), so it carries no label.
CRYSTAL_SPREAD_PERCENTILE = 90.0
#: the floor: a disordered O lands within 0.4 Å of an O site by chance ≈ 1.4 % of the time (4/3·π·0.4³ Å³ at
#: 0.053 O/Å³), Si less; stiff crystals (coesite, Vashishta quartz) have a p90 of only 0.16-0.18 Å, and without
#: the floor a third of their regrown layers would lose their labels.
MIN_LATTICE_SPREAD = 0.4
#: how interface runs label their atoms, recorded with the cached runs (runs labelled otherwise are remade)
INTERFACE_LABELS = {"melted_crystal_within": f"max(p{CRYSTAL_SPREAD_PERCENTILE:g}, {MIN_LATTICE_SPREAD:g} A)",
                    "crystal_sites": "drift of the crystal half removed"}


def lattice_spread(crystal_distance: np.ndarray) -> float:
    """How far (Å) from the lattice an atom may sit and still count as crystal: the crystal's own spread
    (:data:`CRYSTAL_SPREAD_PERCENTILE`), floored at :data:`MIN_LATTICE_SPREAD`."""
    if len(crystal_distance) == 0:
        return MIN_LATTICE_SPREAD
    return max(float(np.percentile(crystal_distance, CRYSTAL_SPREAD_PERCENTILE)), MIN_LATTICE_SPREAD)


def _interface_labels(snap: Snapshot, reference: Reference, upper: np.ndarray, partner: str, *,
                      site_cutoff: float = 1.0, min_msd: float = 5.0, max_glass_msd: float = 1.5,
                      msd_per_atom: np.ndarray | None = None, crystal_registry: float = 0.6,
                      partner_registry: float = 0.5) -> tuple[np.ndarray, PhaseCheck, np.ndarray]:
    """Per-atom codes (0 crystal, 1 partner, −1 none), the check of the disordered side, and each atom's
    time-averaged distance to the crystal's lattice (what the registry thresholds; how sure a code is).

    An atom's code follows what it is, not the side it started on (:func:`lattice_registry`, time-averaged
    positions; neighbours counted on the atom's own side). A melted-side atom is crystal when it sits on the
    extended lattice among neighbours of which at least ``crystal_registry`` do too (layers next to the crystal
    can stay ordered or regrow); off the lattice, or on it by chance among disordered neighbours (registry <
    ``partner_registry``), it is the partner. A crystal-side atom is crystal while it keeps its own site
    (< ``site_cutoff`` Å) among neighbours of which at least ``partner_registry`` are on the lattice. The few
    between carry no label: no class is true for them, and a loss on them would teach a guess. Nor does a melted-side
    atom on the lattice that sits farther from it than the crystal half's own atoms do (:func:`lattice_spread`)."""
    if msd_per_atom is not None:  # the liquid side's own mobility, not the whole box's
        snap = Snapshot(**{**snap.__dict__, "msd": float(msd_per_atom[upper].mean())})
    if partner == "melt":
        check = check_liquid(snap, reference, min_msd=min_msd, atoms=upper)
    else:
        check = check_amorphous(snap, reference, max_msd=max_glass_msd, atoms=upper)
    fractional = snap.mean_fractional
    if fractional is None:
        fractional = (snap.positions - snap.origin) @ np.linalg.inv(snap.cell)
    # each crystal-side atom's distance from its site once the crystal half's own drift is removed: the recorded
    # displacement removes the whole box's mean, which the wandering disordered half shifts (seed-1 quartz | glass
    # ⊥ z: 41 % of the crystal half "> 1 Å from its site" that way, 3.5 % against its own drift)
    own = np.zeros(len(snap.species))
    own[~upper] = site_displacement(fractional[~upper], reference.sites_fractional[~upper], snap.cell, unwrapped=False)
    on_site = ~upper & (own < site_cutoff)  # crystal-side atoms on their own sites
    distance = lattice_site_distance(fractional, reference.sites_fractional, snap.cell, snap.species, on_site)
    registry, on_lattice = lattice_registry(fractional, reference.sites_fractional, snap.cell, snap.species,
                                            anchor=on_site, groups=upper, distance=distance)
    codes = np.full(len(snap.species), -1, np.int8)
    if check.holds:
        codes[upper & (~on_lattice | (registry < partner_registry))] = 1
    codes[upper & on_lattice & (registry >= crystal_registry)] = 0
    codes[on_site & on_lattice & (registry >= partner_registry)] = 0
    codes[upper & (codes == 0) & (distance > lattice_spread(distance[~upper & (codes == 0)]))] = -1
    crystal = check_phase(Snapshot(**{**snap.__dict__, "site_displacement": own}), reference, atoms=~upper,
                          density_tolerance=math.inf, max_shape_strain=math.inf, max_displaced_fraction=0.25)
    if not crystal.holds:
        codes[:] = np.where(codes == 1, 1, -1)
        check.holds = False
        check.reason = "; ".join(r for r in (check.reason, "crystal side: " + crystal.reason) if r)
    return codes, check, distance.astype(np.float32)


def _interface_impl(crystal, potential, pressure_gpa, axis, partner, t_crystal, melt_temperature, melt_ps,
                    quench_rate_k_per_ps, hold_ps, seed, snapshot_every_ps, log_path, extra_commands,
                    min_msd=5.0, max_glass_msd=1.5, timestep_fs=None) -> PhaseRun:
    with LammpsSession(crystal, potential, log_path, extra_commands, timestep_fs) as session:
        reference = session.relax(pressure_gpa)
        run = PhaseRun(session.phase, session.potential.name, pressure_gpa, session.phase, reference,
                       labels=[session.phase, partner])
        x, _ = session.positions()
        cell, origin = session.box()
        upper = interface_side(x, cell, origin, axis)
        session.group("upper", upper)
        session.command("group lower subtract all upper")
        dt = session.timestep_ps
        # melt the upper half while the lower half is held on its sites (a wall the liquid cannot take)
        session.commands([f"velocity upper create {lammps_float(melt_temperature)} {seed} mom yes dist gaussian",
                          "velocity lower set 0 0 0", "fix hold lower setforce 0 0 0", "reset_timestep 0"])
        session.step = 0
        start = session.positions()[1]
        # at the crystal's volume the half superheats (6500 K for 4 ps leaves BKS quartz ordered): scramble it
        # hotter first, then bring it to the melt temperature
        session.npt(1.5 * melt_temperature, 1.5 * melt_temperature, pressure_gpa, melt_ps / 2, melt_ps, "melt",
                    ensemble="none", extra_fixes=[f"scramble upper nvt temp {lammps_float(1.5 * melt_temperature)} "
                                                  f"{lammps_float(1.5 * melt_temperature)} {lammps_float(100 * dt)}"])
        session.command(f"fix hot upper nvt temp {lammps_float(melt_temperature)} {lammps_float(melt_temperature)} {lammps_float(100 * dt)}")
        session.npt(melt_temperature, melt_temperature, pressure_gpa, melt_ps / 2, melt_ps, "melt", ensemble="none")
        if partner == "amorphous":
            ramp = (melt_temperature - t_crystal) / quench_rate_k_per_ps
            session.command("unfix hot")
            session.command(f"fix hot upper nvt temp {lammps_float(melt_temperature)} {lammps_float(t_crystal)} {lammps_float(100 * dt)}")
            session.npt(melt_temperature, t_crystal, pressure_gpa, ramp, ramp, "quench", ensemble="none")
            session.command("unfix hot")
        session.commands(["unfix hold", f"velocity lower create {lammps_float(t_crystal)} {seed + 1} mom yes dist gaussian"])
        if partner == "melt":  # the upper half stays hot (fix hot), the crystal side is held at t_crystal
            moved = session.positions()[1] - start
            msd_ref = np.sum((moved @ cell) ** 2, axis=1)  # per atom during the melt stage
            session.command(f"fix cold lower nvt temp {lammps_float(t_crystal)} {lammps_float(t_crystal)} {lammps_float(100 * dt)}")
        else:
            session.command(f"fix cold all nvt temp {lammps_float(t_crystal)} {lammps_float(t_crystal)} {lammps_float(100 * dt)}")
            session.msd_origin = session.positions()[1]
            msd_ref = None

        def record(snap: Snapshot) -> bool:
            codes, check, distance = _interface_labels(snap, reference, upper, partner, min_msd=min_msd,
                                                       max_glass_msd=max_glass_msd, msd_per_atom=msd_ref)
            snap.atom_labels, snap.check, snap.lattice_distance = codes, check, distance
            run.snapshots.append(snap)
            return True

        session.npt(t_crystal, t_crystal, pressure_gpa, hold_ps, snapshot_every_ps, "hold", on_snapshot=record,
                    ensemble="none")
        return run


def interface_run(crystal: Any, potential: str, pressure_gpa: float = 0.0, *, axis: str = "x",
                  partner: str = "amorphous", t_crystal: float = 300.0, melt_temperature: float = 6500.0,
                  melt_ps: float = 4.0, quench_rate_k_per_ps: float = 1000.0, hold_ps: float = 2.0, seed: int = 1,
                  snapshot_every_ps: float = 0.5, supercell_min_length: float | None = 20.0,
                  log_path: str | Path | None = None, extra_commands: Sequence[str] = (), min_msd: float = 5.0,
                  max_glass_msd: float = 1.5, timestep_fs: float | None = None, isolate: bool | None = None,
                  ranks: int = 1) -> PhaseRun:
    """A crystal | melt (``partner="melt"``) or crystal | glass (``partner="amorphous"``) box, interfaces normal to
    ``axis``; snapshots carry per-atom label codes into ``run.labels`` = [crystal, partner]."""
    axis_index(axis)
    if partner not in ("melt", "amorphous"):
        raise LammpsPhaseError(f"interface partner must be 'melt' or 'amorphous', not {partner!r}")
    return dispatch("interface", dict(crystal=crystal, potential=potential, pressure_gpa=pressure_gpa, axis=axis,
                                      partner=partner, t_crystal=t_crystal, melt_temperature=melt_temperature,
                                      melt_ps=melt_ps, quench_rate_k_per_ps=quench_rate_k_per_ps, hold_ps=hold_ps,
                                      seed=seed, snapshot_every_ps=snapshot_every_ps,
                                      supercell_min_length=supercell_min_length, extra_commands=list(extra_commands),
                                      min_msd=min_msd, max_glass_msd=max_glass_msd, timestep_fs=timestep_fs),
                    log_path=log_path, isolate=isolate, ranks=ranks)


# ------------------------------------------------------------------------------------------------ clusters, voids

#: quartz voids label their atoms shell by shell by the tetrahedra's tilt (a void's box is whole quartz cells, so the
#: tilt can be read there; a cluster's or a slab's box is not); recorded with their cached runs
QUARTZ_TILT_PHASES = ("alpha_quartz", "beta_quartz")
VOID_LABELS = {"quartz_tilt_shells": list(quartz_order.TILT_SHELLS)}


def _sphere_impl(crystal, potential, pressure_gpa, geometry, t_start, t_end, ps, seed, snapshot_every_ps,
                 log_path, extra_commands, timestep_fs=None, stop_after_failures=2) -> PhaseRun:
    with LammpsSession(crystal, potential, log_path, extra_commands, timestep_fs) as session:
        # a cluster has no box to relax (vacuum all round); a void relaxes its periodic box at pressure
        reference = session.relax(pressure_gpa if geometry == "void" else 0.0, box=geometry == "void")
        # the cut surface reconnects on relaxation, so "relaxed = input" cannot hold there; every snapshot's
        # check_surface judges the interior and the surface layer instead
        reference.relaxation_check = None
        run = PhaseRun(session.phase, session.potential.name, pressure_gpa, session.phase, reference)
        session.start_md(t_start, seed)
        by_shell = geometry == "void" and session.phase in QUARTZ_TILT_PHASES

        def judge(snap: Snapshot) -> PhaseCheck:
            depth = sphere_depth(snap.positions, snap.cell, snap.origin, geometry)
            if by_shell:  # which quartz each shell below the void is (quartz_order.shell_codes)
                snap.atom_labels = quartz_order.shell_codes(snap.positions, snap.species, snap.cell, snap.origin,
                                                            depth, session.phase)
            return check_surface(snap, reference, depth)

        if by_shell:
            run.labels = [session.phase]
        record = checked_recorder(run, judge, stop_after_failures)

        session.npt(t_start, t_end, pressure_gpa, ps, snapshot_every_ps, "heat", on_snapshot=record,
                    ensemble="nvt" if geometry == "cluster" else "npt")
        return run


def sphere_run(crystal: Any, potential: str, pressure_gpa: float = 0.0, *, geometry: str = "cluster",
               radius: float = 12.0, vacuum: float = 20.0, t_start: float = 300.0, t_end: float = 1000.0,
               ps: float = 3.0, seed: int = 1, snapshot_every_ps: float = 0.5, supercell_min_length: float | None = 30.0,
               log_path: str | Path | None = None, extra_commands: Sequence[str] = (),
               timestep_fs: float | None = None, isolate: bool | None = None, ranks: int = 1) -> PhaseRun:
    """A cluster of radius ``radius`` cut from the crystal (NVT in vacuum), or a void of that radius in it (NPT at
    ``pressure_gpa``), relaxed at 0 K and heated ``t_start``→``t_end``; snapshots checked by :func:`check_surface`."""
    base = run_supercell(crystal, supercell_min_length)
    cut = cut_sphere(base, radius, geometry, vacuum)
    return dispatch("sphere", dict(crystal=cut, potential=potential, pressure_gpa=pressure_gpa, geometry=geometry,
                                   t_start=t_start, t_end=t_end, ps=ps, seed=seed, snapshot_every_ps=snapshot_every_ps,
                                   supercell_min_length=None, extra_commands=list(extra_commands),
                                   timestep_fs=timestep_fs),
                    log_path=log_path, isolate=isolate, ranks=ranks)


# ------------------------------------------------------------------------------------------------ bicrystals


def _bicrystal_impl(crystal, potential, pressure_gpa, partner_mask, axis, interface_planes, t_start, t_end, ps, seed,
                    snapshot_every_ps, log_path, extra_commands, timestep_fs=None, site_cutoff=1.0) -> PhaseRun:
    with LammpsSession(crystal, potential, log_path, extra_commands, timestep_fs) as session:
        reference = session.relax(pressure_gpa)
        run = PhaseRun(session.phase, session.potential.name, pressure_gpa, session.phase, reference)
        mask = np.asarray(partner_mask, bool)
        # each side is judged by its own bulk coordination (the most common one of its centre atoms in the input:
        # atoms across the initial gap are under-coordinated there), on atoms > 4 Å from both interfaces
        centre = np.asarray(session.species) == reference.center
        ideal = reference.ideal_coordination.copy()
        for side in (~mask[centre], mask[centre]):
            values, counts = np.unique(ideal[side], return_counts=True)
            ideal[side] = values[np.argmax(counts)]
        reference.ideal_coordination = ideal
        planes = (interface_planes[0], interface_planes[1])
        session.start_md(t_start, seed)

        def record(snap: Snapshot) -> bool:
            inner = interface_distance(snap.positions, snap.cell, snap.origin, axis, planes) > 5.0
            checks = [check_phase(snap, reference, density_tolerance=math.inf, max_shape_strain=math.inf,
                                  min_ideal_fraction=0.85, max_displaced_fraction=0.1, atoms=side & inner)
                      for side in (~mask, mask)]
            codes = np.where(mask, 1, 0).astype(np.int8)
            codes[snap.site_displacement >= site_cutoff] = -1
            holds = all(c.holds for c in checks)
            if not holds:
                codes[:] = -1
            reason = "; ".join(f"{name}: {c.reason}" for name, c in zip(("first", "second"), checks) if c.reason)
            snap.check = PhaseCheck(holds, reason, checks[0].coordination_histogram,
                                    min(c.ideal_coordination_fraction for c in checks), 1.0,
                                    max(c.displaced_fraction for c in checks), snap.msd)
            snap.atom_labels = codes
            run.snapshots.append(snap)
            return True

        session.npt(t_start, t_end, pressure_gpa, ps, snapshot_every_ps, "hold", on_snapshot=record)
        return run


def bicrystal_run(crystal: Any, partner: Any, potential: str, pressure_gpa: float = 0.0, *, axis: str = "x",
                  length: float = 16.0, lateral: float = 14.0, t_start: float = 300.0, t_end: float = 300.0,
                  ps: float = 2.0, seed: int = 1, snapshot_every_ps: float = 0.5, log_path: str | Path | None = None,
                  extra_commands: Sequence[str] = (), timestep_fs: float | None = None, isolate: bool | None = None,
                  ranks: int = 1) -> PhaseRun:
    """Crystal | crystal (:func:`bicrystal`), relaxed at ``pressure_gpa`` and held (NPT); per-atom codes 0 (first
    crystal, on its sites), 1 (second), −1 (left its site at the interface); ``run.labels`` = both names."""
    both, mask = bicrystal(crystal, partner, axis, length, lateral)
    run = dispatch("bicrystal", dict(crystal=both, potential=potential, pressure_gpa=pressure_gpa, partner_mask=mask,
                                     axis=axis, interface_planes=bicrystal_planes(both, mask, axis),
                                     t_start=t_start, t_end=t_end, ps=ps, seed=seed,
                                     snapshot_every_ps=snapshot_every_ps, supercell_min_length=None,
                                     extra_commands=list(extra_commands), timestep_fs=timestep_fs),
                   log_path=log_path, isolate=isolate, ranks=ranks)
    run.labels = [crystal.name, partner.name]
    return run


IMPLEMENTATIONS = {"slab": _slab_impl, "strained": _strained_impl, "interface": _interface_impl, "sphere": _sphere_impl,
                   "bicrystal": _bicrystal_impl}

__all__ = ["INTERFACE_LABELS", "QUARTZ_TILT_PHASES", "STRAINED_CHECK", "STRAINED_SITE_CUTOFF", "VOID_LABELS",
           "check_strained", "lattice_spread", "slab_run", "strained_run", "interface_run", "sphere_run",
           "bicrystal_run"]
