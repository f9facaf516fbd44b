"""Is the shocked material hot, and is it liquid? Local temperature and mean-square displacement along the shock.

A phase label of "melt" is only believable if the material flows. This module measures, from the dump alone:

* the **local temperature** per bin along the shock axis, from the velocity fluctuations about the bin's own
  mass-weighted mean velocity (so the bulk flow u_p behind the front is removed):
  ``T_bin = Σ m |v − v̄_bin|² / ((3 N_bin − 3) k_B)``;
* the **mean-square displacement since the front passed** each atom: every atom is marked in the first frame
  in which it lies behind the front, and its displacement from there is taken about the mean displacement of
  the atoms now in its bin (flow and compression removed): ``MSD_bin = ⟨|Δu − ⟨Δu⟩_bin|²⟩``;
* a **diffusion rate** behind the front: the atoms already passed by the front in a frame half way through the
  shocked interval are followed to the analysis frame, and ``D`` is one sixth of the slope of their MSD against
  the time lag, fitted over lags ≥ ``PLATEAU_PS`` — so neither the one-off jump as the front passes nor the
  thermal-vibration plateau (≈ 0.1–0.3 Å² within a few vibration periods) counts as flow. A solid (crystal or
  glass) has D ≈ 0 once the front has passed; a liquid keeps diffusing. The verdict: solid below
  ``SOLID_DIFFUSION``, liquid above ``LIQUID_DIFFUSION``, and in between "intermediate" — a solid still
  transforming behind the front, or a very viscous liquid: the dump alone cannot tell them apart.

Positions are unwrapped along periodic directions frame by frame (minimum image), so the dump interval must be
short enough that no atom moves half a box between frames — true for any dump that resolves a shock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from lammps_phase.elements import mass
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.formats import Frame, read_frames

#: m v² / k_B in kelvin for m in amu and v in the velocity unit of each LAMMPS unit style (metal: Å/ps, real: Å/fs)
KELVIN_PER_AMU_VELOCITY2 = {"metal": 1.66053906660e-27 * 1e4 / 1.380649e-23,
                            "real": 1.66053906660e-27 * 1e10 / 1.380649e-23}
#: D (Å²/ps) below which the material is a solid: BKS glass at 50 GPa and 2500 K moves 0.6 Å² in 5 ps (D ≈ 0.02),
#: and the training data keep a glass only while its MSD stays below 1.5 Å² in a hold
SOLID_DIFFUSION = 0.05
#: D (Å²/ps) above which it is a liquid: the training melts diffuse several Å² per ps (MSD > 5 Å² in a hold)
LIQUID_DIFFUSION = 0.25
PLATEAU_PS = 0.1  # vibrations saturate the MSD within ~0.1 ps; the slope is fitted beyond that lag
MIN_BIN_ATOMS = 4  # fewer atoms than this make a bin's temperature or MSD meaningless: left out (NaN)


class NotMeasurable(Exception):
    """The dump cannot give a temperature or MSD (the reason is the message); the rest of the report stands."""


@dataclass
class ThermalState:
    """Per-bin temperature and MSD in the analysis frame, and the summary numbers behind and ahead of the front."""

    bin_centres: np.ndarray  # (B,) Å along the axis
    temperature: np.ndarray | None  # (B,) K, NaN where a bin has too few atoms; None without masses
    msd_since_front: np.ndarray  # (B,) Å², NaN where no atom of the bin has been passed by the front
    time_since_front: np.ndarray  # (B,) ps (or steps), mean over the bin's passed atoms
    summary: dict[str, Any]


def masses_of(frame: Frame, sidecar: dict) -> np.ndarray | None:
    """Per-atom masses (amu): a dumped `mass` column, else the sidecar's element per type; None if neither."""
    if "mass" in frame.columns:
        return np.asarray(frame.columns["mass"], dtype=np.float64)
    types = sidecar.get("types")
    if not types or "type" not in frame.columns:
        return None
    type_map = types.split() if isinstance(types, str) else [str(t) for t in types]
    per_type = np.array([0.0] + [mass(name) for name in type_map])
    type_ids = np.asarray(frame.columns["type"], dtype=np.int64)
    if type_ids.max() >= len(per_type) or type_ids.min() < 1:
        raise LammpsPhaseError(f"{sidecar.get('_path')}: types {type_map} name {len(type_map)} atom type(s) but the "
                               f"dump has type {int(type_ids.max())}: give one element per type in \"types\"")
    return per_type[type_ids]


def bin_temperature(bins: np.ndarray, nbins: int, masses: np.ndarray, velocities: np.ndarray, units: str
                    ) -> np.ndarray:
    """T per bin (K) from velocity fluctuations about each bin's mass-weighted mean velocity."""
    counts = np.bincount(bins, minlength=nbins).astype(float)
    total_mass = np.bincount(bins, weights=masses, minlength=nbins)
    momentum = np.stack([np.bincount(bins, weights=masses * velocities[:, d], minlength=nbins) for d in range(3)], 1)
    mean_v = np.divide(momentum, total_mass[:, None], out=np.zeros_like(momentum), where=total_mass[:, None] > 0)
    relative = velocities - mean_v[bins]
    twice_ke = np.bincount(bins, weights=masses * np.einsum("ij,ij->i", relative, relative), minlength=nbins)
    dof = 3.0 * counts - 3.0
    temperature = np.full(nbins, np.nan)
    ok = counts >= MIN_BIN_ATOMS
    temperature[ok] = twice_ke[ok] * KELVIN_PER_AMU_VELOCITY2[units] / dof[ok]
    return temperature


def _flow_removed_msd(bins: np.ndarray, nbins: int, displacement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin ⟨|Δu − ⟨Δu⟩_bin|²⟩ and atom counts."""
    counts = np.bincount(bins, minlength=nbins).astype(float)
    mean = np.stack([np.bincount(bins, weights=displacement[:, d], minlength=nbins) for d in range(3)], 1)
    mean = np.divide(mean, counts[:, None], out=np.zeros_like(mean), where=counts[:, None] > 0)
    relative = displacement - mean[bins]
    squared = np.bincount(bins, weights=np.einsum("ij,ij->i", relative, relative), minlength=nbins)
    msd = np.full(nbins, np.nan)
    ok = counts >= MIN_BIN_ATOMS
    msd[ok] = squared[ok] / counts[ok]
    return msd, counts


class _Unwrapper:
    """Unwrapped positions of atoms by id, advanced frame by frame with the minimum image on periodic axes."""

    def __init__(self, frame: Frame):
        self.ids = np.sort(np.asarray(frame.columns["id"], dtype=np.int64))
        self.unwrapped = self._ordered(frame)
        self.previous = self.unwrapped.copy()

    def _ordered(self, frame: Frame) -> np.ndarray:
        ids = np.asarray(frame.columns["id"], dtype=np.int64)
        order = np.argsort(ids)
        if len(ids) != len(self.ids) or not np.array_equal(ids[order], self.ids):
            raise NotMeasurable(f"the atom ids change at timestep {frame.timestep} (atoms lost or added); the MSD "
                                "needs the same atoms in every frame")
        return frame.positions()[order]

    def advance(self, frame: Frame) -> np.ndarray:
        current = self._ordered(frame)
        step = current - self.previous
        cell = frame.cell()
        fractional = step @ np.linalg.inv(cell)
        periodic = np.asarray(frame.pbc, dtype=bool)
        fractional[:, periodic] -= np.round(fractional[:, periodic])
        self.unwrapped = self.unwrapped + fractional @ cell
        self.previous = current
        return self.unwrapped


def thermal_state(dump_path: str | os.PathLike, sidecar: dict, axis: int, origin: float, width: float,
                  direction: int, fronts: Sequence[float | None], times: np.ndarray, analysis: int, units: str,
                  margin: float, time_unit: str) -> ThermalState:
    """Second pass over the dump: temperature and MSD per bin in frame `analysis` (the last frame with a front).

    Raises NotMeasurable when the dump lacks ids or velocities, or its atoms change between frames. Bins are
    those of the shock profiles (origin + b * width).
    """
    frames = read_frames(dump_path)
    first = next(frames)
    if "id" not in first.columns or not all(f"v{c}" in first.columns for c in "xyz"):
        raise NotMeasurable("the dump needs id and vx vy vz columns")
    tracker = _Unwrapper(first)
    n = len(tracker.ids)
    marked_at = np.full(n, -1, dtype=np.int64)  # frame index in which the front had passed the atom
    start = np.zeros((n, 3))
    passed_frames = [f for f in range(analysis + 1) if fronts[f] is not None]
    midpoint = passed_frames[len(passed_frames) // 2] if passed_frames else analysis
    at_midpoint: tuple[np.ndarray, np.ndarray] | None = None
    lags: list[tuple[float, float]] = []  # (time since the midpoint frame, flow-removed MSD of the atoms followed)
    frame = first
    for f in range(analysis + 1):
        if f > 0:
            frame = next(frames)
        unwrapped = tracker.unwrapped if f == 0 else tracker.advance(frame)
        if fronts[f] is not None:
            coord = tracker.previous[:, axis]  # this frame's positions (the front is found in them), id order
            behind = (direction * coord < direction * fronts[f]) & (marked_at < 0)
            marked_at[behind] = f
            start[behind] = unwrapped[behind]
        if f == midpoint:
            at_midpoint = (unwrapped.copy(), marked_at >= 0)
        elif at_midpoint is not None:
            lags.append((float(times[f] - times[midpoint]), _followed_msd(frame, tracker, at_midpoint, axis, origin,
                                                                          width)))
    close = getattr(frames, "close", None)
    if close is not None:
        close()

    order = np.argsort(np.asarray(frame.columns["id"], dtype=np.int64))
    coord = frame.positions()[order, axis]
    index = np.floor((coord - origin) / width).astype(np.int64)
    lowest = int(index.min())
    bins = index - lowest
    nbins = int(bins.max()) + 1
    centres = origin + (lowest + np.arange(nbins) + 0.5) * width
    masses = masses_of(frame, sidecar)
    velocities = np.stack([np.asarray(frame.columns[f"v{c}"], dtype=np.float64) for c in "xyz"], 1)[order]
    temperature = None if masses is None else bin_temperature(bins, nbins, masses[order], velocities, units)

    passed = marked_at >= 0
    msd = np.full(nbins, np.nan)
    since = np.full(nbins, np.nan)
    if passed.any():
        msd_passed, _ = _flow_removed_msd(bins[passed], nbins, tracker.unwrapped[passed] - start[passed])
        msd = msd_passed
        waited = times[analysis] - times[marked_at[passed]]
        counts = np.bincount(bins[passed], minlength=nbins)
        since = np.divide(np.bincount(bins[passed], weights=waited, minlength=nbins), counts,
                          out=np.full(nbins, np.nan), where=counts > 0)

    s_front = direction * fronts[analysis]
    behind_bins = direction * centres < s_front - margin
    ahead_bins = direction * centres > s_front + margin
    atoms_behind = behind_bins[bins] & passed
    summary: dict[str, Any] = {
        "temperature_behind_K": _region_temperature(temperature, bins, behind_bins),
        "temperature_ahead_K": _region_temperature(temperature, bins, ahead_bins),
        "msd_since_front_behind_angstrom2": _region_mean(msd, bins, behind_bins),
        f"time_since_front_behind_{time_unit}": float(np.mean(times[analysis] - times[marked_at[atoms_behind]]))
        if atoms_behind.any() else None,
        f"diffusion_behind_angstrom2_per_{time_unit}": None,
        "flow_behind": None,
    }
    plateau = PLATEAU_PS if time_unit == "ps" else 0.0
    fitted = [(lag, value) for lag, value in lags if lag >= plateau and np.isfinite(value)]
    if len(fitted) >= 2 and np.ptp([lag for lag, _ in fitted]) > 0:
        slope = float(np.polyfit([lag for lag, _ in fitted], [value for _, value in fitted], 1)[0])
        rate = max(slope, 0.0) / 6.0
        summary[f"diffusion_behind_angstrom2_per_{time_unit}"] = rate
        summary["diffusion_fit_lags"] = len(fitted)
        if time_unit == "ps":
            summary["flow_behind"] = ("solid" if rate < SOLID_DIFFUSION else "liquid" if rate > LIQUID_DIFFUSION
                                      else "intermediate")
    return ThermalState(centres, temperature, msd, since, summary)


def _followed_msd(frame: Frame, tracker: _Unwrapper, reference: tuple[np.ndarray, np.ndarray], axis: int,
                  origin: float, width: float) -> float:
    """Flow-removed MSD (Å²) since the reference frame of the atoms that were behind the front then."""
    positions, followed = reference
    if followed.sum() < MIN_BIN_ATOMS:
        return float("nan")
    bins = np.floor((tracker.previous[followed, axis] - origin) / width).astype(np.int64)
    bins -= bins.min()
    msd, counts = _flow_removed_msd(bins, int(bins.max()) + 1, tracker.unwrapped[followed] - positions[followed])
    used = counts >= MIN_BIN_ATOMS
    return float(np.sum(msd[used] * counts[used]) / counts[used].sum()) if used.any() else float("nan")


def _region_mean(values: np.ndarray, bins: np.ndarray, region: np.ndarray) -> float | None:
    """Atom-weighted mean of a per-bin quantity over the bins of `region` (NaN bins skipped)."""
    counts = np.bincount(bins, minlength=len(values)).astype(float)
    use = region & np.isfinite(values)
    if not use.any():
        return None
    return float(np.sum(values[use] * counts[use]) / counts[use].sum())


def _region_temperature(temperature: np.ndarray | None, bins: np.ndarray, region: np.ndarray) -> float | None:
    return None if temperature is None else _region_mean(temperature, bins, region)


def consistency(summary: dict[str, Any], melt_classes: Sequence[str] = ("melt",)) -> str | None:
    """One line: do the labels behind the front agree with the measured flow?"""
    flow = summary.get("flow_behind")
    fractions = summary.get("phase_fractions_behind")
    if flow is None or not fractions:
        return None
    melt = sum(fractions.get(name, 0.0) for name in melt_classes)
    if flow == "intermediate":
        return (f"undecided: the material behind the front flows slowly (between a solid, D < {SOLID_DIFFUSION}, "
                f"and a liquid, D > {LIQUID_DIFFUSION} Å²/ps): a solid still transforming or a viscous liquid; "
                f"{melt:.0%} is labelled melt")
    if (flow == "liquid") == (melt >= 0.5):
        return f"consistent: the material behind the front is a {flow} by its diffusion and {melt:.0%} is labelled melt"
    return f"INCONSISTENT: the material behind the front is a {flow} by its diffusion but {melt:.0%} is labelled melt"
