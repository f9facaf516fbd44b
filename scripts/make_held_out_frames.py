"""Write tests/frames/held_out_sio2.npz: frame 0 of five test-seed runs with their per-atom truth.

    python scripts/make_held_out_frames.py cache/sio2/runs

The runs come from ``lammps-phase-train inputs/train_sio2.toml`` (seed 4 is the test seed; training uses 1–2).
``tests/model/test_shipped_places.py`` scores the shipped model on them. Interface truth is the run's own
per-atom codes (crystal / partner / −1); the single-phase runs carry their label on every atom.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FRAMES = {  # name in the file: run key
    "quartz_slab_y": "alpha_quartz_slab-y_0GPa_seed4",
    "quartz_glass_x": "alpha_quartz_interface-amorphous-x_0GPa_seed4",
    "coesite_glass_x": "coesite_interface-amorphous-x_0GPa_seed4",
    "quartz_void": "alpha_quartz_void-r8_0GPa_seed4",
    "quartz_melt_y": "beta_quartz_interface-melt-y_0GPa_seed4",
}


def main(runs: Path, output: Path = ROOT / "tests" / "frames" / "held_out_sio2.npz") -> None:
    from lammps_phase.atomic_write import atomic_path

    arrays = {}
    for name, key in FRAMES.items():
        summary = json.loads((runs / f"{key}.json").read_text())
        with np.load(runs / f"{key}.npz") as run:
            n = run["positions"].shape[1]
            arrays[f"{name}_positions"] = run["positions"][0].astype(np.float32)
            arrays[f"{name}_cell"] = run["cells"][0]
            arrays[f"{name}_origin"] = run["origins"][0]
            arrays[f"{name}_species"] = run["species"]
            codes = run["atom_labels"][0] if "atom_labels" in run.files else np.zeros(n, np.int8)
            arrays[f"{name}_codes"] = codes.astype(np.int8)
            arrays[f"{name}_temperature"] = run["temperature"][:1]
        arrays[f"{name}_classes"] = np.array(summary.get("atom_label_names") or [summary["label"]])
    with atomic_path(output) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    print(f"wrote {output} ({', '.join(FRAMES)})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
