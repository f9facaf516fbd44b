"""Which SiO2 potential holds which polymorph, at which pressure and temperature — measured.

For each potential and polymorph: 0 K box relaxation at 0 GPa (and at a high pressure for the
6-fold phases), a 2 ps NPT hold at 300 K, and an NPT ramp 300 → T_max; each snapshot is checked
with lammps_phase.data.checks.check_phase (Si coordination within 2.1 Å, density, time-averaged
displacement from the lattice). Then α-quartz is melted with BKS with and without the short-range
correction and the shortest Si–O distance is reported.

    . .venv/bin/activate
    nohup python benchmarks/potential_survey.py --ranks 2 --json cache/potential_survey.json \
        > cache/potential_survey.log 2>&1 &

Prints markdown tables (docs/potentials.md holds a copy).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.data.checks import min_distance
from lammps_phase.data.heating import heating_run, melt_run, relax
from lammps_phase.data.structures import build, entry, expected_coordination, names

POTENTIALS = ["bks_dsf", "tersoff_munetoh", "vashishta_1990", "vashishta_1997"]
HIGH_PRESSURE_GPA = 30.0


def pressures_for(phase: str) -> list[float]:
    """0 GPa for every phase; the 6-fold phases also at 30 GPa and at their own pressure (if the entry has one)."""
    if 6 not in expected_coordination(phase).get("Si", set()):
        return [0.0]
    own = entry(phase).get("pressure_gpa")
    return sorted({0.0, HIGH_PRESSURE_GPA, *([float(own)] if own else [])})


def start_temperature(phase: str, args) -> float:
    """β-quartz, β-cristobalite and β-tridymite exist only hot: at 300 K they fall into their α forms."""
    return args.beta_start if phase.startswith("beta_") else 300.0


def _summary_of_run(run) -> dict:
    snaps = run.snapshots
    kept = run.kept
    first_bad = next((s for s in snaps if not s.check.holds), None)
    return {
        "kept": len(kept),
        "of": len(snaps),
        "t_max_kept": max((s.temperature for s in kept), default=None),
        "density": float(np.mean([s.density for s in kept])) if kept else None,
        "pressure_gpa": float(np.mean([s.pressure_gpa for s in kept])) if kept else None,
        "lost_at": None if first_bad is None else round(first_bad.temperature),
        "reason": "" if first_bad is None else first_bad.check.reason,
    }


def survey_phase(potential: str, phase: str, pressure: float, args) -> dict:
    crystal = build(phase)
    row: dict = {"potential": potential, "phase": phase, "pressure_gpa": pressure}
    start = time.time()
    try:
        reference = relax(crystal, potential, pressure, supercell_min_length=args.min_length, ranks=args.ranks)
        check = reference.relaxation_check
        row.update(atoms=len(reference.species), relaxed_holds=check.holds, relaxed_density=reference.density,
                   energy_per_atom=reference.energy_per_atom, relax_reason=check.reason,
                   relaxed_histogram=check.coordination_histogram)
        if check.holds:
            t_low = start_temperature(phase, args)
            row["t_start"] = t_low
            hold = heating_run(crystal, potential, pressure, t_low, t_low, ps=args.hold_ps, seed=11,
                               snapshot_every_ps=0.5, supercell_min_length=args.min_length, ranks=args.ranks)
            row["hold"] = _summary_of_run(hold)
            if row["hold"]["kept"] == row["hold"]["of"]:
                ramp = heating_run(crystal, potential, pressure, t_low, args.t_max, ps=args.ramp_ps, seed=12,
                                   snapshot_every_ps=0.5, supercell_min_length=args.min_length, ranks=args.ranks)
                row["ramp"] = _summary_of_run(ramp)
    except LammpsPhaseError as exc:
        row["error"] = str(exc)
    row["seconds"] = round(time.time() - start, 1)
    return row


def melt_test(potential: str, args) -> dict:
    """Melt α-quartz at high T; the shortest Si–O distance over all snapshots tells whether ions fused."""
    start = time.time()
    row: dict = {"potential": potential, "temperature": args.melt_t}
    try:
        run = melt_run(build("alpha_quartz"), potential, 0.0, args.melt_t, ps=args.melt_ps, seed=5,
                       snapshot_every_ps=0.05, supercell_min_length=args.min_length, ranks=args.ranks)
        last = run.snapshots[-1]
        row.update(
            liquid=last.check.holds, msd=last.msd, density=last.density,
            min_si_o=min(min_distance(s.positions, s.cell, s.species, "Si", "O") for s in run.snapshots),
            min_o_o=min(min_distance(s.positions, s.cell, s.species, "O", "O") for s in run.snapshots),
        )
    except LammpsPhaseError as exc:
        row["error"] = str(exc)
    row["seconds"] = round(time.time() - start, 1)
    return row


def _fmt(value, spec: str) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def markdown(rows: list[dict], melts: list[dict]) -> str:
    quartz_energy = {r["potential"]: r.get("energy_per_atom") for r in rows
                     if r["phase"] == "alpha_quartz" and r["pressure_gpa"] == 0.0}
    out = ["| potential | phase | P (GPa) | N | relaxed 0 K: holds, ρ (g/cm³), E−E(α-qz) (eV/atom) | "
           "hold 2 ps at T₀: kept, ρ | ramp to T_max: kept up to (K) | why lost |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r and "relaxed_holds" not in r:
            out.append(f"| {r['potential']} | {r['phase']} | {r['pressure_gpa']:g} | – | error | | | {r['error'][:120]} |")
            continue
        rel_e = (r["energy_per_atom"] - quartz_energy[r["potential"]]) if quartz_energy.get(r["potential"]) else None
        relaxed = (f"{'✓' if r['relaxed_holds'] else '✗'} {_fmt(r['relaxed_density'], '.2f')}"
                   + (f", {_fmt(rel_e, '+.3f')}" if r["pressure_gpa"] == 0.0 else ""))
        hold, ramp = r.get("hold"), r.get("ramp")
        hold_s = "–" if hold is None else (f"{hold['kept']}/{hold['of']}, {_fmt(hold['density'], '.2f')}"
                                          + (f" (T₀ {r['t_start']:.0f} K)" if r.get("t_start", 300.0) != 300.0 else ""))
        ramp_s = "–" if ramp is None else (f"{_fmt(ramp['t_max_kept'], '.0f')}" + (" (all)" if ramp["lost_at"] is None else ""))
        why = r.get("relax_reason") or (hold or {}).get("reason") or (ramp or {}).get("reason") or r.get("error", "")
        out.append(f"| {r['potential']} | {r['phase']} | {r['pressure_gpa']:g} | {r['atoms']} | {relaxed} | {hold_s} | "
                   f"{ramp_s} | {why[:140]} |")
    out += ["", "| potential | T (K) | liquid | MSD (Å²) | min Si–O (Å) | min O–O (Å) | outcome |", "|---|---|---|---|---|---|---|"]
    for m in melts:
        out.append(f"| {m['potential']} | {m['temperature']:g} | {m.get('liquid', '–')} | {_fmt(m.get('msd'), '.1f')} | "
                   f"{_fmt(m.get('min_si_o'), '.3f')} | {_fmt(m.get('min_o_o'), '.3f')} | {m.get('error', 'ok')[:160]} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--potentials", nargs="*", default=POTENTIALS)
    parser.add_argument("--phases", nargs="*", default=names("sio2"))
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--min-length", type=float, default=12.0, help="supercell edge (Å)")
    parser.add_argument("--hold-ps", type=float, default=2.0)
    parser.add_argument("--ramp-ps", type=float, default=4.0)
    parser.add_argument("--t-max", type=float, default=1800.0)
    parser.add_argument("--beta-start", type=float, default=300.0,
                        help="hold/ramp start temperature (K) for the β (high-temperature) phases")
    parser.add_argument("--melt-t", type=float, default=6500.0)
    parser.add_argument("--melt-ps", type=float, default=4.0)
    parser.add_argument("--no-melt", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--tables-from", type=Path, nargs="*", default=None,
                        help="print the tables of earlier --json outputs (merged, later files win) and exit")
    args = parser.parse_args()

    if args.tables_from:
        merged: dict = {}
        melt_rows: list[dict] = []
        for path in args.tables_from:
            data = json.loads(path.read_text())
            for row in data["rows"]:
                merged[(row["potential"], row["phase"], row["pressure_gpa"], row.get("t_start", 300.0))] = row
            melt_rows += data["melts"]
        order = {p: i for i, p in enumerate(POTENTIALS)}
        phase_order = {p: i for i, p in enumerate(names("sio2"))}
        rows = sorted(merged.values(), key=lambda r: (order.get(r["potential"], 99), phase_order.get(r["phase"], 99),
                                                      r["pressure_gpa"], r.get("t_start", 300.0)))
        print(markdown(rows, melt_rows))
        return

    rows, melts = [], []
    for potential in args.potentials:
        for phase in args.phases:
            for pressure in pressures_for(phase):
                row = survey_phase(potential, phase, pressure, args)
                rows.append(row)
                print(json.dumps(row, default=float), flush=True)
    if not args.no_melt:
        for potential in ("bks_dsf", "bks_dsf_uncorrected"):
            melts.append(melt_test(potential, args))
            print(json.dumps(melts[-1], default=float), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "melts": melts, "args": vars(args)}, default=str, indent=1))
    print(markdown(rows, melts))


if __name__ == "__main__":
    main()
