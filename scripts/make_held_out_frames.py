"""Write tests/frames/held_out_sio2.npz: one frame of each of fourteen test-seed runs with its per-atom truth.

    python scripts/make_held_out_frames.py cache/sio2/runs

The runs come from ``lammps-phase-train inputs/train_sio2.toml`` (seed 4 is the test seed; training uses 1–2).
``tests/model/test_shipped_places.py`` scores the shipped model on them. Interface truth is the run's own
per-atom codes (crystal / partner / −1); the single-phase runs carry their label on every atom. The places
(BKS, and since session 13 a slab and a quartz | glass interface in Tersoff and in Vashishta 1990) are frame 0
(the coolest); the Tersoff and Vashishta 1990 bulk runs give the frame named (−1: the last, hottest kept one, or
the coldest of a glass's holds).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FRAMES = {  # name in the file: run key, or (run key, frame index)
    "quartz_slab_y": "alpha_quartz_slab-y_0GPa_seed4",
    "quartz_glass_x": "alpha_quartz_interface-amorphous-x_0GPa_seed4",
    "coesite_glass_x": "coesite_interface-amorphous-x_0GPa_seed4",
    "quartz_void": "alpha_quartz_void-r8_0GPa_seed4",
    "quartz_melt_y": "beta_quartz_interface-melt-y_0GPa_seed4",
    "tersoff_coesite": ("coesite_tersoff_munetoh_0GPa_seed4", -1),
    "tersoff_melt": "melt_tersoff_munetoh_0GPa_seed4",
    "vashishta_beta_quartz": "beta_quartz_vashishta_1990_0GPa_seed4",
    "vashishta_glass": ("amorphous_vashishta_1990_0GPa_seed4", -1),
    "vashishta_melt": "melt_vashishta_1990_0GPa_seed4",
    "tersoff_quartz_slab_z": "alpha_quartz_tersoff_munetoh_slab-z_0GPa_seed4",
    "tersoff_quartz_glass_x": "alpha_quartz_tersoff_munetoh_interface-amorphous-x_0GPa_seed4",
    "vashishta_quartz_slab_x": "alpha_quartz_vashishta_1990_slab-x_0GPa_seed4",
    "vashishta_quartz_glass_x": "alpha_quartz_vashishta_1990_interface-amorphous-x_0GPa_seed4",
}


def main(runs: Path, output: Path = ROOT / "tests" / "frames" / "held_out_sio2.npz") -> None:
    from lammps_phase.atomic_write import atomic_path

    arrays = {}
    for name, entry in FRAMES.items():
        key, frame = entry if isinstance(entry, tuple) else (entry, 0)
        summary = json.loads((runs / f"{key}.json").read_text())
        with np.load(runs / f"{key}.npz") as run:
            n = run["positions"].shape[1]
            arrays[f"{name}_positions"] = run["positions"][frame].astype(np.float32)
            arrays[f"{name}_cell"] = run["cells"][frame]
            arrays[f"{name}_origin"] = run["origins"][frame]
            arrays[f"{name}_species"] = run["species"]
            codes = run["atom_labels"][frame] if "atom_labels" in run.files else np.zeros(n, np.int8)
            arrays[f"{name}_codes"] = codes.astype(np.int8)
            arrays[f"{name}_temperature"] = run["temperature"][frame : frame + 1 or None]
        arrays[f"{name}_classes"] = np.array(summary.get("atom_label_names") or [summary["label"]])
    with atomic_path(output) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    print(f"wrote {output} ({', '.join(FRAMES)})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
