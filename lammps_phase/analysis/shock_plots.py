"""Figures of `lammps-phase report`: x–t diagram, phase fractions over time, and a slice of the last frame.

matplotlib is imported only when a figure is drawn (headless "Agg" backend), so reading the report's numbers
never needs it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lammps_phase.analysis.shock_profiles import AXES, OTHER, PHASE_COLUMNS, GlobalGrid, find_column
from lammps_phase.inference.formats import Frame


OTHER_COLOUR = "#a0a0a0"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def phase_colours(count: int) -> list[str]:
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


def plot_xt(path: Path, grid: GlobalGrid, origin: float, width: float, times: np.ndarray, time_unit: str,
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


def plot_fractions(path: Path, times: np.ndarray, time_unit: str, fractions: np.ndarray, names: list[str],
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


def plot_snapshot(path: Path, frame: Frame, axis: int, names: list[str], colours: list[str],
                   front: float | None, slab: float = 5.0) -> None:
    """Atoms within `slab` Å of the box mid-plane normal to the first transverse axis, in (axis, other) coordinates."""
    plt = _pyplot()
    across, shown_axis = [k for k in range(3) if k != axis]
    positions = frame.positions()
    middle = 0.5 * (float(frame.boxlo[across]) + float(frame.boxhi[across]))
    keep = np.abs(positions[:, across] - middle) <= 0.5 * slab
    phase_name = find_column(frame, PHASE_COLUMNS)
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
