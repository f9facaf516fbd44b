"""`lammps-phase report DUMP`: what a labelled shock simulation did, as figures and numbers.

From a multi-frame dump with per-atom phase labels (``i_phase``/``d_phase_conf`` from the in-situ fix, or
``phase``/``phase_conf`` from ``lammps-phase classify``) this writes an x–t diagram of the majority phase, the
phase fractions over time, a slice snapshot of the last frame, and a summary: shock-front position per frame,
shock speed, particle velocity and pressure behind the front, and phase fractions on either side of it.

Frames are read one at a time and reduced to binned profiles along the shock axis, so long trajectories of
large samples never sit in memory at once; only the last frame is kept whole (for the snapshot).

Optional sidecar ``<dump>.classes.json`` (written by the deck that made the dump): either a list of class
names, or an object with any of ``classes`` (list), ``timestep_fs`` or ``timestep`` (MD timestep in fs),
``units`` (LAMMPS units, ``metal`` (default) or ``real``; sets the velocity and stress units),
``types`` (element per LAMMPS type, e.g. ``["Si", "O"]``: enables the minimum Si–O distance) and
``min_si_o_distance`` (Å, when the deck measured it itself).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lammps_phase.analysis.shock_plots import phase_colours, plot_fractions, plot_snapshot, plot_xt
from lammps_phase.analysis.shock_profiles import (
    AXES,
    OTHER,
    VELOCITY_TO_KM_S,
    GlobalGrid,
    Profile,
    behind_and_ahead,
    fit_front,
    frame_signal,
    front_positions,
    piston_direction,
    reduce_frame,
)
from lammps_phase.analysis.thermal_state import NotMeasurable, consistency, thermal_state
from lammps_phase.atomic_write import atomic_paths, check_output
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.formats import Frame, read_frames

__all__ = ["shock_report", "report_command", "load_sidecar"]


def load_sidecar(dump_path: str | os.PathLike) -> dict[str, Any]:
    """The dump's `<dump>.classes.json` (also tried without a trailing .gz) as a dict; {} when absent."""
    dump_path = Path(dump_path)
    candidates = [Path(f"{dump_path}.classes.json")]
    if dump_path.suffix == ".gz":
        candidates.append(Path(f"{dump_path.with_suffix('')}.classes.json"))
    for path in candidates:
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise LammpsPhaseError(f"{path}: not readable JSON ({err}); fix or delete the sidecar") from None
        if isinstance(data, list):
            data = {"classes": data}
        if not isinstance(data, dict):
            raise LammpsPhaseError(f"{path}: expected a list of class names or an object with 'classes'")
        _check_sidecar(data, path)
        data["_path"] = str(path)
        return data
    return {}


def _check_sidecar(data: dict, path: Path) -> None:
    """Each known sidecar key holds what the report reads from it."""

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0

    def names(value: Any) -> bool:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)

    wanted = {"classes": (names, "a list of class names"),
              "timestep_fs": (number, "a positive number (fs)"), "timestep": (number, "a positive number (fs)"),
              "units": (lambda v: isinstance(v, str), "a LAMMPS units name (metal or real)"),
              "types": (lambda v: isinstance(v, str) or names(v), 'the element of each type, e.g. ["Si", "O"]'),
              "min_si_o_distance": (number, "a positive number (Å)")}
    for key, (valid, what) in wanted.items():
        if key in data and not valid(data[key]):
            raise LammpsPhaseError(f"{path}: {key} is {json.dumps(data[key])[:60]}; it must be {what}")


def shock_report(
    dump_path: str | os.PathLike,
    outdir: str | os.PathLike,
    classes: list[str] | None = None,
    axis: str = "x",
    bin_width: float = 2.0,
    timestep_fs: float | None = None,
    piston: str = "auto",
    smoothing: float = 6.0,
) -> dict:
    """Write xt_diagram.png, phase_fractions.png, snapshot.png, summary.txt and summary.json; return the summary.

    Shock front. Atoms are binned along `axis` (bin_width Å) and profiles are smoothed over `smoothing` Å.
    With velocities dumped, the front is where the mean axial velocity crosses halfway between the unshocked
    velocity (far half of the first frame) and the velocity next to the piston; without velocities, where the
    number density rises half way to the density next to the piston, and at least 1.1x the unshocked density
    (far half of the first frame); density is smoothed over 2x `smoothing` (counting noise, lattice planes).
    Profiles are scanned from the far end, and a crossing counts only if the profile over two smoothing
    windows behind it is above the threshold on average, so a short fast patch or a dense fluctuation ahead
    of the front is not taken for it. A frame has no front when the jump is not significant (5x the
    bin-to-bin scatter of the unshocked reference) or when the shocked state reaches the far end.

    Direction: piston='low' (front moves towards +axis), 'high', or 'auto': the end that becomes >= 5 % denser
    than the other in some frame is the piston end (low if neither does).

    Shock speed: least-squares line through the front positions against time over frames with a front
    (km/s when the timestep is known, else Å/step). Particle velocity, pressure and phase fractions behind and
    ahead are taken in the last frame with a front, leaving `smoothing` Å on either side of it; pressure is
    -(s1+s2+s3)/(3V) summed over the region of a `compute stress/atom` (stress x volume), i.e. per-atom volumes
    are bin volume / atoms in the bin. `compute stress/atom` includes a kinetic term m·v·v; behind a shock the
    bulk flow adds ρ·u_p² to the axial component (≈ 17 GPa at 4.3 g/cm³ and 2 km/s), so the deck should pass it a
    temperature compute that removes the flow (e.g. `compute tp all temp/profile 1 0 0 x 100` then
    `compute stress all stress/atom tp`); the report uses the stresses as dumped.
    """
    if axis not in AXES:
        raise LammpsPhaseError(f"shock axis {axis!r} is not one of x, y, z")
    if not bin_width > 0:
        raise LammpsPhaseError(f"bin_width must be positive (Å), got {bin_width}")
    if piston not in ("auto", "low", "high"):
        raise LammpsPhaseError(f"piston must be 'auto', 'low' or 'high', got {piston!r}")
    dump_path = Path(dump_path)
    outdir = Path(outdir)
    sidecar = load_sidecar(dump_path)
    units = str(sidecar.get("units", "metal"))
    if units not in VELOCITY_TO_KM_S:
        raise LammpsPhaseError(
            f"{sidecar.get('_path')}: units {units!r} are not supported by the report; use metal or real units"
        )
    if timestep_fs is None:
        step = sidecar.get("timestep_fs", sidecar.get("timestep"))
        timestep_fs = float(step) if step is not None else None
    a = AXES.index(axis)

    profiles: list[Profile] = []
    last: Frame | None = None
    origin = 0.0
    min_si_o: list[tuple[int, float]] = []
    for frame in read_frames(dump_path):
        if last is None:
            origin = float(np.asarray(frame.boxlo, float)[a])
        profiles.append(reduce_frame(frame, a, origin, bin_width, f"{dump_path}: timestep {frame.timestep}"))
        distance = None if "min_si_o_distance" in sidecar else _min_si_o_distance(frame, sidecar)
        if distance is not None:
            min_si_o.append((int(frame.timestep), distance))
        last = frame
    if last is None:
        raise LammpsPhaseError(f"{dump_path} contains no frames")

    kinds = max(p.counts.shape[1] for p in profiles)
    names = _class_names(classes, sidecar, kinds - 1, dump_path)
    grid = GlobalGrid(profiles, kinds)
    times, time_unit = _times(grid.timesteps, timestep_fs)

    window = max(1, int(round(smoothing / bin_width)))
    direction = piston_direction(profiles, origin, bin_width, window, piston)
    # Bin counts carry counting noise and lattice-plane ripple, so density is smoothed over twice the length.
    signals = [frame_signal(p, origin, bin_width, direction, window, 2 * window) for p in profiles]
    if signals[0] is None:
        raise LammpsPhaseError(
            f"{dump_path}: the first frame spans fewer than 6 bins of {bin_width} Å along {axis}; "
            "use a smaller --bin-width or check the shock axis"
        )
    method = "velocity" if signals[0].velocity is not None else "density"
    fronts = front_positions(signals, method, window, direction)
    fit = fit_front(times, fronts, direction, time_unit, tolerance=2.0 * bin_width)

    summary: dict[str, Any] = {
        "dump": str(dump_path),
        "frames": len(profiles),
        "axis": axis,
        "piston_end": "low" if direction > 0 else "high",
        "front_method": method,
        "bin_width_angstrom": bin_width,
        "smoothing_angstrom": smoothing,
        "classes": names,
        "units": units,
        "timestep_fs": timestep_fs,
        "time_unit": time_unit,
        **fit,
    }
    summary.update(behind_and_ahead(profiles, signals, fronts, names, direction, bin_width, smoothing, units))
    summary.update(_thermal_summary(dump_path, sidecar, a, origin, bin_width, direction, fronts, times, units,
                                    smoothing, time_unit, summary))
    if "min_si_o_distance" in sidecar:
        summary["min_si_o_distance_angstrom"] = float(sidecar["min_si_o_distance"])
    elif min_si_o:
        step, value = min(min_si_o, key=lambda item: item[1])
        summary["min_si_o_distance_angstrom"] = value
        summary["min_si_o_distance_timestep"] = step
    fractions = grid.fractions()
    summary["per_frame"] = [
        {
            "timestep": int(step),
            "time": float(t),
            "front_position_angstrom": None if f is None else float(f),
            "fractions": {name: float(fr) for name, fr in zip([OTHER] + names, row)},
        }
        for step, t, f, row in zip(grid.timesteps, times, fronts, fractions)
    ]

    outputs = report_outputs(outdir)
    _check_outdir(outdir, list(outputs.values()), [dump_path, sidecar.get("_path")], create=True)
    summary["outputs"] = {key: str(path) for key, path in outputs.items()}
    colours = phase_colours(len(names))
    summary = _jsonable(summary)
    # all five files appear together, or (on any failure) none and the earlier ones stay
    with atomic_paths(list(outputs.values())) as (xt, fractions_png, snapshot, summary_txt, summary_json):
        plot_xt(xt, grid, origin, bin_width, times, time_unit, fronts, names, colours, axis)
        plot_fractions(fractions_png, times, time_unit, fractions, names, colours)
        plot_snapshot(snapshot, last, a, names, colours, fronts[-1])
        summary_txt.write_text(_summary_text(summary), encoding="utf-8")
        summary_json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _thermal_summary(dump_path: Path, sidecar: dict, axis: int, origin: float, width: float, direction: int,
                     fronts: list[float | None], times: np.ndarray, units: str, margin: float, time_unit: str,
                     summary: dict[str, Any]) -> dict[str, Any]:
    """Temperature, MSD since the front and diffusion behind it (`thermal_state`), and whether the labels agree."""
    found = [f for f, front in enumerate(fronts) if front is not None]
    if not found:
        return {}
    try:
        state = thermal_state(dump_path, sidecar, axis, origin, width, direction, fronts, times, found[-1], units,
                              margin, time_unit)
    except NotMeasurable as why:
        return {"thermal_state": f"not measured: {why}"}
    out = dict(state.summary)
    out["labels_vs_diffusion"] = consistency({**summary, **out})
    out["thermal_profile"] = {
        "bin_centres_angstrom": state.bin_centres,
        "temperature_K": state.temperature,
        "msd_since_front_angstrom2": state.msd_since_front,
        f"time_since_front_{time_unit}": state.time_since_front,
    }
    return out


def report_outputs(outdir: Path) -> dict[str, Path]:
    """The files `shock_report` writes into ``outdir``, in writing order."""
    return {
        "xt_diagram": outdir / "xt_diagram.png",
        "phase_fractions": outdir / "phase_fractions.png",
        "snapshot": outdir / "snapshot.png",
        "summary_txt": outdir / "summary.txt",
        "summary_json": outdir / "summary.json",
    }


def _check_outdir(outdir: Path, outputs: list[Path], inputs: list, create: bool = False) -> None:
    """The output folder is a folder (made if missing) and no output file is one of the inputs."""
    if outdir.exists():
        if not outdir.is_dir():
            raise LammpsPhaseError(f"-o {outdir} is a file: the report writes five files, give a folder "
                                   f"(e.g. -o {outdir}_report)")
        for path in outputs:
            check_output(path, inputs=inputs, option="report file")
    else:
        ancestor = next(p for p in outdir.absolute().parents if p.exists())
        if not ancestor.is_dir():
            raise LammpsPhaseError(f"-o {outdir}: {ancestor} is a file, not a folder; choose another -o folder")
    if create:
        try:
            outdir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise LammpsPhaseError(f"cannot create the report folder {outdir}: {err.strerror}") from None


def report_command(args: Any) -> int:
    """CLI entry: `lammps-phase report DUMP [--classes CKPT] [-o OUTDIR] [--axis x|y|z]`."""
    dump = Path(args.dump)
    if not dump.is_file():
        raise LammpsPhaseError(f"{dump}: no such dump file; give the path of a labelled LAMMPS dump")
    classes = None
    checkpoint_path = getattr(args, "classes", None)
    if checkpoint_path:
        from lammps_phase.inference.ensemble import lead_checkpoint

        classes = lead_checkpoint(checkpoint_path).classes
    outdir = Path(args.outdir) if getattr(args, "outdir", None) else dump.resolve().parent
    sidecar = load_sidecar(dump)
    _check_outdir(outdir, list(report_outputs(outdir).values()), [dump, sidecar.get("_path"), checkpoint_path])
    bin_width = getattr(args, "bin_width", None)
    summary = shock_report(dump, outdir, classes=classes, axis=getattr(args, "axis", "x") or "x",
                           bin_width=2.0 if bin_width is None else bin_width)
    print(_summary_text(summary), end="")
    print(f"wrote {', '.join(Path(p).name for p in summary['outputs'].values())} to {outdir}")
    return 0


def _class_names(classes: Sequence[str] | None, sidecar: dict, highest: int, dump_path: Path) -> list[str]:
    """Explicit names, else the sidecar's, else "phase k"; every label in the dump must have a name."""
    if classes is not None:
        names, source = [str(c) for c in classes], "the given class list"
    elif sidecar.get("classes"):
        names, source = [str(c) for c in sidecar["classes"]], sidecar["_path"]
    else:
        return [f"phase {k}" for k in range(highest)]
    if highest > len(names):
        raise LammpsPhaseError(
            f"{dump_path}: labels go up to {highest - 1} but {source} names only {len(names)} classes; "
            "pass the checkpoint that labelled the dump (--classes)"
        )
    return names


def _times(timesteps: np.ndarray, timestep_fs: float | None) -> tuple[np.ndarray, str]:
    if timestep_fs is None:
        return timesteps.astype(float), "step"
    return timesteps * timestep_fs * 1e-3, "ps"


def _min_si_o_distance(frame: Frame, sidecar: dict) -> float | None:
    """Shortest Si–O distance of a frame (Å) when the sidecar maps types to elements; None otherwise."""
    types = sidecar.get("types")
    if not types or "type" not in frame.columns:
        return None
    type_map = types.split() if isinstance(types, str) else [str(t) for t in types]
    if "Si" not in type_map or "O" not in type_map:
        return None
    from lammps_phase.inference.neighbors import knn

    try:
        species = frame.species(type_map)
    except LammpsPhaseError:
        raise LammpsPhaseError(f"{sidecar.get('_path')}: types {type_map} names {len(type_map)} atom type(s) but the "
                               f"dump has types up to {int(np.max(frame.columns['type']))}: give one element per type "
                               "in the sidecar's \"types\"") from None
    silicon = np.nonzero(species == "Si")[0]
    if silicon.size == 0 or not np.any(species == "O"):
        return None
    k = min(8, frame.natoms - 1)
    neighbours = knn(frame.positions(), k, cell=frame.cell(), pbc=frame.pbc, origin=frame.boxlo, query=silicon)
    is_oxygen = species[neighbours.index] == "O"
    if not is_oxygen.any():
        return None
    return float(neighbours.distances[is_oxygen].min())


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _summary_text(summary: dict[str, Any]) -> str:
    def num(value: float | None, fmt: str, unit: str = "") -> str:
        return "n/a" if value is None else f"{value:{fmt}}{unit}"

    def fractions(values: dict[str, float] | None) -> str:
        if not values:
            return "n/a"
        return ", ".join(f"{name} {100 * v:.1f} %" for name, v in values.items() if v > 0) or "none"

    unit = summary["time_unit"]
    lines = [
        f"shock report for {summary['dump']}",
        f"frames {summary['frames']}, shock axis {summary['axis']}, piston at the {summary['piston_end']} end, "
        f"front from the {summary['front_method']} profile (bins {summary['bin_width_angstrom']:g} Å, "
        f"smoothing {summary['smoothing_angstrom']:g} Å)",
        f"classes: {', '.join(summary['classes'])} (label -1 = other)",
        "",
        f"{'timestep':>10} {'time (' + unit + ')':>12} {'front (Å)':>10}",
    ]
    for row in summary["per_frame"]:
        lines.append(f"{row['timestep']:>10d} {row['time']:>12.4g} {num(row['front_position_angstrom'], '10.2f'):>10}")
    speed = summary.get(f"front_speed_angstrom_per_{unit}")
    lines += [
        "",
        f"shock speed            {num(summary['front_speed_km_s'], '.3f', ' km/s')}"
        f" ({num(speed, '.4g', f' Å/{unit}')}; fit over {summary['fit_frames']} frames, "
        f"rms residual {num(summary['fit_rms_residual_angstrom'], '.2f', ' Å')}"
        + (f"; frames off the line left out at t = {', '.join(f'{v:g}' for v in summary['fit_rejected_times'])} {unit}"
           if summary["fit_rejected_times"] else "") + ")",
        f"analysed frame         timestep {summary['analysis_timestep']}, front at "
        f"{num(summary['front_position_angstrom'], '.2f', ' Å')}",
        f"particle velocity      {num(summary['particle_velocity_km_s'], '.3f', ' km/s')} (behind the front)",
        f"pressure behind        {num(summary['pressure_behind_GPa'], '.2f', ' GPa')}",
        f"pressure ahead         {num(summary['pressure_ahead_GPa'], '.2f', ' GPa')}",
        f"phases behind          {fractions(summary['phase_fractions_behind'])}",
        f"phases ahead           {fractions(summary['phase_fractions_ahead'])}",
    ]
    if summary.get("mean_confidence_behind") is not None:
        lines.append(f"mean confidence        behind {summary['mean_confidence_behind']:.3f}, "
                     f"ahead {num(summary['mean_confidence_ahead'], '.3f')}")
    if "temperature_behind_K" in summary:
        rate = summary.get(f"diffusion_behind_angstrom2_per_{unit}")
        waited = summary.get(f"time_since_front_behind_{unit}")
        lines += [
            f"temperature            behind {num(summary['temperature_behind_K'], '.0f', ' K')}, ahead "
            f"{num(summary['temperature_ahead_K'], '.0f', ' K')} (velocity fluctuations per bin, flow removed)",
            f"MSD since the front    {num(summary['msd_since_front_behind_angstrom2'], '.2f', ' Å²')} behind "
            f"(passed {num(waited, '.3g', f' {unit}')} ago on average; flow removed)",
            f"diffusion behind       {num(rate, '.3g', f' Å²/{unit}')}"
            + ("" if summary.get("flow_behind") is None else f" ({summary['flow_behind']})"),
        ]
        if summary.get("labels_vs_diffusion"):
            lines.append(f"labels vs diffusion    {summary['labels_vs_diffusion']}")
    elif summary.get("thermal_state"):
        lines.append(f"temperature, MSD       {summary['thermal_state']}")
    if "min_si_o_distance_angstrom" in summary:
        at = summary.get("min_si_o_distance_timestep")
        lines.append(f"min Si–O distance      {summary['min_si_o_distance_angstrom']:.3f} Å"
                     + (f" (timestep {at})" if at is not None else ""))
    return "\n".join(lines) + "\n"
