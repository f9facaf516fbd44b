"""Is a quartz run α or β, frame by frame? The tilt of ``lammps_phase.data.quartz_order`` (issue 12).

    python benchmarks/quartz_tilt.py cache/sio2/runs/beta_quartz_vashishta_1990_0GPa_seed4.npz [more runs]

Tilt ≈ 1: α-quartz (its tetrahedra tilted together); near the noise floor (0.2–0.5 in a 324-atom box):
β-quartz. Reads any bulk quartz run, whatever it started as: the heating check applies the same measure to
α- and β-quartz runs as they are made. One line per frame.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lammps_phase.data import quartz_order  # noqa: E402


def main(paths: list[str]) -> None:
    print(f"ideal α-quartz: Q = {quartz_order.ideal_alpha_displacement():.3f} Å (tilt 1); the heating check keeps "
          f"α-quartz at tilt ≥ {quartz_order.MIN_ALPHA_TILT}, β-quartz at ≤ {quartz_order.MAX_BETA_TILT}")
    for path in paths:
        with np.load(path) as run:
            pos, cells, origins = run["positions"].astype(float), run["cells"], run["origins"]
            temperature, species = run["temperature"], run["species"]
        tilts = [quartz_order.tilt(pos[t], species, cells[t], origins[t]) for t in range(len(pos))]
        print(f"{path}: {len(species)} atoms, {len(pos)} frames")
        print("  " + "  ".join(f"{temperature[t]:.0f} K {tilts[t]:.2f}" for t in range(len(pos))))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main(sys.argv[1:])
