"""Shock profiles: a frame reduced to bins along the shock axis, and the front found in them.

Each frame becomes per-bin atom counts, phase counts, mean axial velocity and stress (`reduce_frame`), so a long
trajectory never sits in memory. The front is where the velocity (or, without velocities, the density) profile
crosses half way between the unshocked state and the state next to the piston, scanning from the far end; a line
through the front positions gives the shock speed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.formats import Frame

AXES = "xyz"
OTHER = "other"  # the name of label -1 (below the confidence threshold) in fractions and legends


PHASE_COLUMNS = ("i_phase", "phase")


CONFIDENCE_COLUMNS = ("d_phase_conf", "phase_conf")


# Velocity unit → km/s and stress-volume unit → GPa·Å³ for the LAMMPS unit styles that a shock of Å-sized
# atoms uses: metal (Å/ps, bar) and real (Å/fs, atm).
VELOCITY_TO_KM_S = {"metal": 0.1, "real": 100.0}


PRESSURE_TO_GPA = {"metal": 1.0e-4, "real": 1.01325e-4}


DENSITY_JUMP = 1.1  # a bin is shocked when its density exceeds 1.1x the unshocked density


END_CONTRAST = 1.05  # the piston end must be >= 5 % denser than the other end to be told apart


_STRESS_COLUMN = re.compile(r"^c_(\w+)\[([123])\]$")


def find_column(frame: Frame, names: Sequence[str]) -> str | None:
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


@dataclass
class Profile:
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


def reduce_frame(frame: Frame, axis: int, origin: float, width: float, where: str) -> Profile:
    phase_name = find_column(frame, PHASE_COLUMNS)
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
    conf_name = find_column(frame, CONFIDENCE_COLUMNS)
    confidence = binned(frame.columns[conf_name]) if conf_name else None
    lengths = np.asarray(frame.boxhi, float) - np.asarray(frame.boxlo, float)
    area = float(np.prod(lengths) / lengths[axis])  # det of LAMMPS's triangular cell = lx*ly*lz, tilted or not
    return Profile(int(frame.timestep), first, counts, velocity, stress, confidence, area)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Running sum over `window` bins (same length; the ends sum fewer bins)."""
    if window <= 1:
        return values.astype(float)
    return np.convolve(values, np.ones(window), mode="same")


@dataclass
class FrameSignal:
    """A frame's interior bins (the partly filled end bins dropped) in propagation order: index 0 at the piston."""

    centres: np.ndarray  # signed coordinate s = direction * x of the bin centres, increasing
    atoms: np.ndarray
    density: np.ndarray  # smoothed number density, 1/Å³
    velocity: np.ndarray | None  # smoothed per-atom mean axial velocity, signed (positive = towards the far end)
    global_bins: np.ndarray  # bin indices counted from the first frame's box edge (bin b starts at origin + b*width)


def frame_signal(profile: Profile, origin: float, width: float, direction: int, window: int,
                  density_window: int | None = None) -> FrameSignal | None:
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
    return FrameSignal(
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


class GlobalGrid:
    """All frames' bin counts on one grid of bins (frames may span different ranges as the sample moves)."""

    def __init__(self, profiles: list[Profile], kinds: int):
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


def piston_direction(profiles: list[Profile], origin: float, width: float, window: int, piston: str) -> int:
    if piston != "auto":
        return 1 if piston == "low" else -1
    best = 0.0
    for p in profiles:
        signal = frame_signal(p, origin, width, 1, 1)
        if signal is None:
            continue
        n = max(3, window)
        if len(signal.atoms) < 2 * n:
            continue
        ratio = signal.atoms[-n:].mean() / max(signal.atoms[:n].mean(), 1e-12)  # high end / low end
        if abs(math.log(max(ratio, 1e-12))) > abs(best):
            best = math.log(max(ratio, 1e-12))
    return -1 if best > math.log(END_CONTRAST) else 1


def front_positions(signals: list[FrameSignal | None], method: str, window: int, direction: int) -> list[float | None]:
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


def fit_front(times: np.ndarray, fronts: list[float | None], direction: int, time_unit: str, tolerance: float
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


def behind_and_ahead(profiles: list[Profile], signals: list[FrameSignal | None], fronts: list[float | None],
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
