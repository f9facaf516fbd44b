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
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lammps_phase.atomic_write import atomic_paths, check_output
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.formats import Frame, read_frames

__all__ = ["shock_report", "run_report", "load_sidecar"]

AXES = "xyz"
PHASE_COLUMNS = ("i_phase", "phase")
CONFIDENCE_COLUMNS = ("d_phase_conf", "phase_conf")
OTHER = "other"
OTHER_COLOUR = "#a0a0a0"
# Velocity unit → km/s and stress-volume unit → GPa·Å³ for the LAMMPS unit styles that a shock of Å-sized
# atoms uses: metal (Å/ps, bar) and real (Å/fs, atm).
VELOCITY_TO_KM_S = {"metal": 0.1, "real": 100.0}
PRESSURE_TO_GPA = {"metal": 1.0e-4, "real": 1.01325e-4}
DENSITY_JUMP = 1.1  # a bin is shocked when its density exceeds 1.1x the unshocked density
END_CONTRAST = 1.05  # the piston end must be >= 5 % denser than the other end to be told apart
_STRESS_COLUMN = re.compile(r"^c_(\w+)\[([123])\]$")


# ----------------------------------------------------------------------------------------------------------
# inputs


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


def _find_column(frame: Frame, names: Sequence[str]) -> str | None:
    return next((name for name in names if name in frame.columns), None)


def _stress_columns(frame: Frame) -> list[str] | None:
    """The three diagonal components of a `compute stress/atom` (c_NAME[1..3]); a name with 'stress' wins ties."""
    groups: dict[str, set[str]] = {}
    for column in frame.columns:
        match = _STRESS_COLUMN.match(column)
        if match:
            groups.setdefault(match.group(1), set()).add(match.group(2))
    complete = sorted(name for name, parts in groups.items() if parts >= {"1", "2", "3"})
    if not complete:
        return None
    preferred = [name for name in complete if "stress" in name.lower()] or complete
    if len(preferred) > 1:
        return None  # ambiguous: several computes with 3+ components and none named like a stress
    return [f"c_{preferred[0]}[{k}]" for k in "123"]


# ----------------------------------------------------------------------------------------------------------
# per-frame reduction


@dataclass
class _Profile:
    """One frame reduced to bins along the shock axis (bin b covers origin + (first_bin + b) * width ...)."""

    timestep: int
    first_bin: int
    counts: np.ndarray  # (nbins, K) atoms per bin per phase code; code 0 = other (-1), code k+1 = class k
    velocity_sum: np.ndarray | None  # (nbins,) sum of the axial velocity
    stress_sum: np.ndarray | None  # (nbins,) sum of s1 + s2 + s3 (stress x volume)
    confidence_sum: np.ndarray | None  # (nbins,)
    area: float  # cross-section perpendicular to the axis, Å²

    @property
    def atoms(self) -> np.ndarray:
        return self.counts.sum(axis=1)


def _reduce(frame: Frame, axis: int, origin: float, width: float, where: str) -> _Profile:
    phase_name = _find_column(frame, PHASE_COLUMNS)
    if phase_name is None:
        raise LammpsPhaseError(
            f"{where}: no phase column (looked for {', '.join(PHASE_COLUMNS)}); columns are "
            f"{' '.join(frame.columns)}. Dump i_phase from the in-situ fix or run `lammps-phase classify` first"
        )
    if frame.natoms == 0:
        raise LammpsPhaseError(f"{where}: frame has no atoms")
    coord = frame.positions()[:, axis]
    phase = np.asarray(frame.columns[phase_name]).astype(np.int64)
    if phase.min() < -1:
        raise LammpsPhaseError(f"{where}: phase labels below -1 ({phase.min()}); -1 means other, classes count from 0")
    index = np.floor((coord - origin) / width).astype(np.int64)
    first = int(index.min())
    local = index - first
    nbins = int(local.max()) + 1
    codes = phase + 1
    kinds = int(codes.max()) + 1
    counts = np.bincount(local * kinds + codes, minlength=nbins * kinds).reshape(nbins, kinds)

    def binned(values: np.ndarray) -> np.ndarray:
        return np.bincount(local, weights=np.asarray(values, dtype=np.float64), minlength=nbins)

    velocity_name = f"v{AXES[axis]}"
    velocity = binned(frame.columns[velocity_name]) if velocity_name in frame.columns else None
    stress_names = _stress_columns(frame)
    stress = binned(sum(np.asarray(frame.columns[n], dtype=np.float64) for n in stress_names)) if stress_names else None
    conf_name = _find_column(frame, CONFIDENCE_COLUMNS)
    confidence = binned(frame.columns[conf_name]) if conf_name else None
    lengths = np.asarray(frame.boxhi, float) - np.asarray(frame.boxlo, float)
    area = float(np.prod(lengths) / lengths[axis])  # det of LAMMPS's triangular cell = lx*ly*lz, tilted or not
    return _Profile(int(frame.timestep), first, counts, velocity, stress, confidence, area)


# ----------------------------------------------------------------------------------------------------------
# front detection


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Running sum over `window` bins (same length; the ends sum fewer bins)."""
    if window <= 1:
        return values.astype(float)
    return np.convolve(values, np.ones(window), mode="same")


@dataclass
class _FrameSignal:
    """A frame's interior bins (the partly filled end bins dropped) in propagation order: index 0 at the piston."""

    centres: np.ndarray  # signed coordinate s = direction * x of the bin centres, increasing
    atoms: np.ndarray
    density: np.ndarray  # smoothed number density, 1/Å³
    velocity: np.ndarray | None  # smoothed per-atom mean axial velocity, signed (positive = towards the far end)
    global_bins: np.ndarray  # bin indices counted from the first frame's box edge (bin b starts at origin + b*width)


def _frame_signal(profile: _Profile, origin: float, width: float, direction: int, window: int,
                  density_window: int | None = None) -> _FrameSignal | None:
    atoms = profile.atoms
    filled = np.nonzero(atoms)[0]
    lo, hi = filled[0] + 1, filled[-1]  # interior: drop the first and last occupied bins (partly filled)
    if hi - lo < 4:
        return None
    sl = slice(lo, hi)
    bins = profile.first_bin + np.arange(lo, hi)
    centres = origin + (bins + 0.5) * width
    counts = atoms[sl].astype(float)
    volume = width * profile.area
    dw = density_window or window
    density = _smooth(counts, dw) / (_smooth(np.ones_like(counts), dw) * volume)
    velocity = None
    if profile.velocity_sum is not None:
        # Running mean of the bins' mean velocities (not atom-weighted: a denser shocked bin would otherwise pull
        # the half-way crossing ahead of the front); empty bins are skipped.
        filled_bins = (counts > 0).astype(float)
        means = np.divide(profile.velocity_sum[sl], counts, out=np.zeros(counts.shape), where=counts > 0)
        summed = _smooth(filled_bins, window)
        velocity = direction * np.divide(_smooth(means, window), summed, out=np.full(counts.shape, np.nan),
                                         where=summed > 0)
    order = slice(None) if direction > 0 else slice(None, None, -1)
    return _FrameSignal(
        centres=(direction * centres)[order],
        atoms=atoms[sl][order],
        density=density[order],
        velocity=None if velocity is None else velocity[order],
        global_bins=bins[order],
    )


def _crossing(signal: np.ndarray, centres: np.ndarray, threshold: float, persist: int) -> float | None:
    """Scanning from the far end, the first bin above threshold whose `persist` bins towards the piston (itself
    included) are above it on average; the front is where the profile crosses the threshold between that bin and
    the next one out (linear). Averaging rather than requiring every bin keeps one noisy dip in the shocked
    region from pulling the front back."""
    values = np.nan_to_num(signal, nan=threshold - 1.0)
    above = values >= threshold
    sums = np.convolve(values - threshold, np.ones(persist))[: len(values)]  # sum over [i - persist + 1, i]
    backed = np.nonzero(above & (sums >= 0.0))[0]
    if backed.size == 0:
        return None
    i = int(backed[-1])
    if i >= len(signal) - 1:
        return None  # shocked all the way to the far end: the front has left the sample
    s0, s1 = signal[i], signal[i + 1]
    fraction = (s0 - threshold) / (s0 - s1) if s0 != s1 else 0.5
    return float(centres[i] + fraction * (centres[i + 1] - centres[i]))


# ----------------------------------------------------------------------------------------------------------
# the report


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

    profiles: list[_Profile] = []
    last: Frame | None = None
    origin = 0.0
    min_si_o: list[tuple[int, float]] = []
    for frame in read_frames(dump_path):
        if last is None:
            origin = float(np.asarray(frame.boxlo, float)[a])
        profiles.append(_reduce(frame, a, origin, bin_width, f"{dump_path}: timestep {frame.timestep}"))
        distance = None if "min_si_o_distance" in sidecar else _min_si_o_distance(frame, sidecar)
        if distance is not None:
            min_si_o.append((int(frame.timestep), distance))
        last = frame
    if last is None:
        raise LammpsPhaseError(f"{dump_path} contains no frames")

    kinds = max(p.counts.shape[1] for p in profiles)
    names = _class_names(classes, sidecar, kinds - 1, dump_path)
    grid = _GlobalGrid(profiles, kinds)
    times, time_unit = _times(grid.timesteps, timestep_fs)

    window = max(1, int(round(smoothing / bin_width)))
    direction = _direction(profiles, origin, bin_width, window, piston)
    # Bin counts carry counting noise and lattice-plane ripple, so density is smoothed over twice the length.
    signals = [_frame_signal(p, origin, bin_width, direction, window, 2 * window) for p in profiles]
    if signals[0] is None:
        raise LammpsPhaseError(
            f"{dump_path}: the first frame spans fewer than 6 bins of {bin_width} Å along {axis}; "
            "use a smaller --bin-width or check the shock axis"
        )
    method = "velocity" if signals[0].velocity is not None else "density"
    fronts = _fronts(signals, method, window, direction)
    fit = _fit_front(times, fronts, direction, time_unit, tolerance=2.0 * bin_width)

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
    summary.update(_behind_and_ahead(profiles, signals, fronts, names, direction, bin_width, smoothing, units))
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
    colours = _phase_colours(len(names))
    summary = _jsonable(summary)
    # all five files appear together, or (on any failure) none and the earlier ones stay
    with atomic_paths(list(outputs.values())) as (xt, fractions_png, snapshot, summary_txt, summary_json):
        _plot_xt(xt, grid, origin, bin_width, times, time_unit, fronts, names, colours, axis)
        _plot_fractions(fractions_png, times, time_unit, fractions, names, colours)
        _plot_snapshot(snapshot, last, a, names, colours, fronts[-1])
        summary_txt.write_text(_summary_text(summary), encoding="utf-8")
        summary_json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


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


def run_report(args: Any) -> int:
    """CLI entry: `lammps-phase report DUMP [--classes CKPT] [-o OUTDIR] [--axis x|y|z]`."""
    dump = Path(args.dump)
    if not dump.is_file():
        raise LammpsPhaseError(f"{dump}: no such dump file; give the path of a labelled LAMMPS dump")
    classes = None
    checkpoint_path = getattr(args, "classes", None)
    if checkpoint_path:
        from lammps_phase.model import checkpoint

        classes = checkpoint.load(checkpoint_path).classes
    outdir = Path(args.outdir) if getattr(args, "outdir", None) else dump.resolve().parent
    sidecar = load_sidecar(dump)
    _check_outdir(outdir, list(report_outputs(outdir).values()), [dump, sidecar.get("_path"), checkpoint_path])
    bin_width = getattr(args, "bin_width", None)
    summary = shock_report(dump, outdir, classes=classes, axis=getattr(args, "axis", "x") or "x",
                           bin_width=2.0 if bin_width is None else bin_width)
    print(_summary_text(summary), end="")
    print(f"wrote {', '.join(Path(p).name for p in summary['outputs'].values())} to {outdir}")
    return 0


# ----------------------------------------------------------------------------------------------------------
# pieces


class _GlobalGrid:
    """All frames' bin counts on one grid of bins (frames may span different ranges as the sample moves)."""

    def __init__(self, profiles: list[_Profile], kinds: int):
        self.first = min(p.first_bin for p in profiles)
        last = max(p.first_bin + len(p.counts) for p in profiles)
        self.counts = np.zeros((len(profiles), last - self.first, kinds), dtype=np.int64)
        for f, p in enumerate(profiles):
            start = p.first_bin - self.first
            self.counts[f, start : start + len(p.counts), : p.counts.shape[1]] = p.counts
        self.timesteps = np.array([p.timestep for p in profiles], dtype=np.int64)

    def majority(self) -> np.ma.MaskedArray:
        """(frames, bins) majority phase code (0 = other), masked where a bin is empty."""
        code = self.counts.argmax(axis=2)
        return np.ma.masked_where(self.counts.sum(axis=2) == 0, code)

    def fractions(self) -> np.ndarray:
        """(frames, 1 + classes) fraction of atoms per phase code (column 0 = other)."""
        totals = self.counts.sum(axis=1).astype(float)
        return totals / totals.sum(axis=1, keepdims=True)


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


def _direction(profiles: list[_Profile], origin: float, width: float, window: int, piston: str) -> int:
    if piston != "auto":
        return 1 if piston == "low" else -1
    best = 0.0
    for p in profiles:
        signal = _frame_signal(p, origin, width, 1, 1)
        if signal is None:
            continue
        n = max(3, window)
        if len(signal.atoms) < 2 * n:
            continue
        ratio = signal.atoms[-n:].mean() / max(signal.atoms[:n].mean(), 1e-12)  # high end / low end
        if abs(math.log(max(ratio, 1e-12))) > abs(best):
            best = math.log(max(ratio, 1e-12))
    return -1 if best > math.log(END_CONTRAST) else 1


def _fronts(signals: list[_FrameSignal | None], method: str, window: int, direction: int) -> list[float | None]:
    """Front position (Å, along the axis) per frame, None where there is none."""
    ref = signals[0]
    far = slice(len(ref.centres) // 2, None)
    values = ref.velocity if method == "velocity" else ref.density
    reference = float(np.nanmedian(values[far]))
    scatter = float(np.nanstd(values[far]))
    fronts: list[float | None] = []
    for signal in signals:
        if signal is None:
            fronts.append(None)
            continue
        profile = signal.velocity if method == "velocity" else signal.density
        near_piston = float(np.nanmedian(profile[: max(3, window)]))
        jump = near_piston - reference
        if method == "velocity":
            threshold, sigmas, persist = reference + 0.5 * jump, 5.0, 2 * window
        else:
            # Half way up the jump, but never below 1.1x (density is smoothed over twice the window, see above).
            threshold, sigmas, persist = max(DENSITY_JUMP * reference, reference + 0.5 * jump), 3.0, 4 * window
        significant = jump > sigmas * scatter + 1e-9 * max(abs(reference), 1e-30) and near_piston > threshold
        front = _crossing(profile, signal.centres, threshold, persist) if significant else None
        fronts.append(None if front is None else direction * front)  # back from s = direction * x to x
    return fronts


def _fit_front(times: np.ndarray, fronts: list[float | None], direction: int, time_unit: str, tolerance: float
               ) -> dict[str, Any]:
    """Line through front position vs time. With 4+ points, frames off the line by more than 3 robust standard
    deviations (and more than `tolerance` Å) are dropped once and the line refitted: a front still forming at
    the piston, or one frame's misdetection, must not tilt the speed."""
    have = np.array([f is not None for f in fronts])
    result: dict[str, Any] = {"fit_frames": int(have.sum()), "fit_rejected_times": [], "front_speed_km_s": None,
                              f"front_speed_angstrom_per_{time_unit}": None, "fit_rms_residual_angstrom": None}
    if have.sum() < 2 or np.ptp(times[have]) == 0:
        return result
    t = times[have]
    x = np.array([f for f in fronts if f is not None], dtype=float)
    keep = np.ones(len(t), dtype=bool)
    slope, intercept = np.polyfit(t, x, 1)
    if len(t) >= 4:
        residual = np.abs(x - (slope * t + intercept))
        limit = max(3.0 * 1.4826 * float(np.median(residual)), tolerance)
        if (residual <= limit).sum() >= 2 and np.ptp(t[residual <= limit]) > 0:
            keep = residual <= limit
            slope, intercept = np.polyfit(t[keep], x[keep], 1)
    speed = direction * slope  # along the propagation direction
    result["fit_frames"] = int(keep.sum())
    result["fit_rejected_times"] = [float(v) for v in t[~keep]]
    result[f"front_speed_angstrom_per_{time_unit}"] = float(speed)
    if time_unit == "ps":
        result["front_speed_km_s"] = float(speed * 0.1)  # 1 Å/ps = 100 m/s
    result["fit_rms_residual_angstrom"] = float(np.sqrt(np.mean((x[keep] - (slope * t[keep] + intercept)) ** 2)))
    return result


def _behind_and_ahead(profiles: list[_Profile], signals: list[_FrameSignal | None], fronts: list[float | None],
                      names: list[str], direction: int, width: float, margin: float, units: str) -> dict[str, Any]:
    """Particle velocity, pressure, phase fractions and confidence on either side of the last detected front."""
    out: dict[str, Any] = {"analysis_timestep": None, "front_position_angstrom": None,
                           "particle_velocity_km_s": None, "pressure_behind_GPa": None, "pressure_ahead_GPa": None,
                           "phase_fractions_behind": None, "phase_fractions_ahead": None,
                           "mean_confidence_behind": None, "mean_confidence_ahead": None}
    found = [f for f, front in enumerate(fronts) if front is not None]
    if not found:
        return out
    f = found[-1]
    profile, signal, front = profiles[f], signals[f], fronts[f]
    s_front = direction * front
    local = signal.global_bins - profile.first_bin
    behind = local[signal.centres < s_front - margin]
    ahead = local[signal.centres > s_front + margin]
    out["analysis_timestep"] = profile.timestep
    out["front_position_angstrom"] = front
    volume = width * profile.area
    labels = [OTHER] + names

    def fractions(bins: np.ndarray) -> dict[str, float] | None:
        counts = profile.counts[bins].sum(axis=0)
        total = counts.sum()
        if total == 0:
            return None
        padded = np.zeros(len(labels))
        padded[: len(counts)] = counts
        return {name: float(c / total) for name, c in zip(labels, padded)}

    out["phase_fractions_behind"] = fractions(behind)
    out["phase_fractions_ahead"] = fractions(ahead)
    atoms_behind = profile.atoms[behind].sum()
    atoms_ahead = profile.atoms[ahead].sum()
    if profile.velocity_sum is not None and atoms_behind:
        v_behind = profile.velocity_sum[behind].sum() / atoms_behind
        v_ahead = profile.velocity_sum[ahead].sum() / atoms_ahead if atoms_ahead else 0.0
        out["particle_velocity_km_s"] = float(direction * (v_behind - v_ahead) * VELOCITY_TO_KM_S[units])
    if profile.stress_sum is not None:
        for key, bins in (("pressure_behind_GPa", behind), ("pressure_ahead_GPa", ahead)):
            if len(bins):
                # -(s1+s2+s3)/(3 V_atom) with V_atom = bin volume / atoms: summed over atoms it is the region sum / V.
                pressure = -profile.stress_sum[bins].sum() / (3.0 * volume * len(bins))
                out[key] = float(pressure * PRESSURE_TO_GPA[units])
    if profile.confidence_sum is not None:
        if atoms_behind:
            out["mean_confidence_behind"] = float(profile.confidence_sum[behind].sum() / atoms_behind)
        if atoms_ahead:
            out["mean_confidence_ahead"] = float(profile.confidence_sum[ahead].sum() / atoms_ahead)
    return out


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
    if "min_si_o_distance_angstrom" in summary:
        at = summary.get("min_si_o_distance_timestep")
        lines.append(f"min Si–O distance      {summary['min_si_o_distance_angstrom']:.3f} Å"
                     + (f" (timestep {at})" if at is not None else ""))
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------
# figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _phase_colours(count: int) -> list[str]:
    """Colour per phase code: grey for other, then distinct categorical colours (tab10 without its grey)."""
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
               "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"]
    return [OTHER_COLOUR] + [palette[k % len(palette)] for k in range(count)]


def _legend_handles(names: list[str], colours: list[str], present: set[int] | None = None):
    from matplotlib.patches import Patch

    labels = names + [OTHER]
    codes = list(range(1, len(names) + 1)) + [0]
    return [Patch(color=colours[c], label=label) for c, label in zip(codes, labels) if present is None or c in present]


def _edges(centres: np.ndarray) -> np.ndarray:
    if len(centres) == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    mids = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate([[2 * centres[0] - mids[0]], mids, [2 * centres[-1] - mids[-1]]])


def _plot_xt(path: Path, grid: _GlobalGrid, origin: float, width: float, times: np.ndarray, time_unit: str,
             fronts: list[float | None], names: list[str], colours: list[str], axis: str) -> None:
    from matplotlib.colors import BoundaryNorm, ListedColormap

    plt = _pyplot()
    majority = grid.majority()
    x_edges = origin + (grid.first + np.arange(majority.shape[1] + 1)) * width
    t_edges = _edges(np.asarray(times, float))
    cmap = ListedColormap(colours).with_extremes(bad="white")  # empty bins (outside the sample) stay white
    norm = BoundaryNorm(np.arange(len(colours) + 1) - 0.5, len(colours))
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.pcolormesh(x_edges, t_edges, majority, cmap=cmap, norm=norm, shading="flat")
    have = [(t, f) for t, f in zip(times, fronts) if f is not None]
    if have:
        t_front, x_front = zip(*have)
        ax.plot(x_front, t_front, color="black", linewidth=2.2, marker="o", markersize=3, label="shock front")
        ax.plot(x_front, t_front, color="white", linewidth=0.8)
    present = set(np.unique(majority.compressed()).tolist())
    handles = _legend_handles(names, colours, present)
    if have:
        handles += [ax.get_legend_handles_labels()[0][0]]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_xlabel(f"{axis} (Å)")
    ax.set_ylabel(f"time ({time_unit})")
    ax.set_title("majority phase per bin")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_fractions(path: Path, times: np.ndarray, time_unit: str, fractions: np.ndarray, names: list[str],
                    colours: list[str]) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    codes = list(range(1, len(names) + 1)) + [0]
    labels = names + [OTHER]
    padded = np.zeros((len(times), len(colours)))
    padded[:, : fractions.shape[1]] = fractions
    shown = [c for c in codes if padded[:, c].any()]
    if len(times) > 1:
        ax.stackplot(times, *(padded[:, c] for c in shown), colors=[colours[c] for c in shown],
                     labels=[labels[codes.index(c)] for c in shown], alpha=0.9)
    else:
        bottom = 0.0
        for c in shown:
            ax.bar(times, padded[:, c], bottom=bottom, color=colours[c], label=labels[codes.index(c)])
            bottom += padded[0, c]
    ax.set_xlim(times.min(), times.max()) if len(times) > 1 else None
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"time ({time_unit})")
    ax.set_ylabel("fraction of atoms")
    ax.set_title("phase fractions")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_snapshot(path: Path, frame: Frame, axis: int, names: list[str], colours: list[str],
                   front: float | None, slab: float = 5.0) -> None:
    """Atoms within `slab` Å of the box mid-plane normal to the first transverse axis, in (axis, other) coordinates."""
    plt = _pyplot()
    across, shown_axis = [k for k in range(3) if k != axis]
    positions = frame.positions()
    middle = 0.5 * (float(frame.boxlo[across]) + float(frame.boxhi[across]))
    keep = np.abs(positions[:, across] - middle) <= 0.5 * slab
    phase_name = _find_column(frame, PHASE_COLUMNS)
    codes = np.asarray(frame.columns[phase_name]).astype(np.int64)[keep] + 1
    x, y = positions[keep, axis], positions[keep, shown_axis]
    span_x = max(float(np.ptp(x)) if x.size else 1.0, 1.0)
    span_y = max(float(np.ptp(y)) if y.size else 1.0, 1.0)
    fig_w = 10.0
    fig_h = float(np.clip(fig_w * span_y / span_x + 1.5, 3.0, 9.0))
    fig, ax = plt.subplots(figsize=(fig_w, fig_h))
    size = float(np.clip(3e4 / max(keep.sum(), 1), 1.0, 30.0))
    palette = np.array(colours)
    ax.scatter(x, y, c=palette[np.clip(codes, 0, len(colours) - 1)], s=size, linewidths=0)
    if front is not None:
        ax.axvline(front, color="black", linestyle="--", linewidth=1, label="shock front")
    handles = _legend_handles(names, colours, set(np.unique(codes).tolist()))
    if front is not None:
        handles += ax.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(f"{AXES[axis]} (Å)")
    ax.set_ylabel(f"{AXES[shown_axis]} (Å)")
    ax.set_title(f"timestep {frame.timestep}: slab |{AXES[across]} − {middle:.1f} Å| ≤ {0.5 * slab:g} Å")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
