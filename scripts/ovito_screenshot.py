"""Render docs/ovito_phase.png: the `lammps-phase` OVITO modifier on a sample, with OVITO's headless renderer.

The sample: periodic α-quartz (≈34 Å box, 3528 atoms, 0.04 Å thermal noise) whose atoms within 11 Å of the centre are
displaced by 0.45 Å more, a stand-in for a molten inclusion. The pipeline is the one a user builds in OVITO: load the
LAMMPS dump, append the modifier (shipped SiO2 model, types from the dump's element column, confidence threshold 0.9
so the interface shows as Other), colour by the typed `Phase` property, cut the box in half to show the inclusion,
and add OVITO's colour legend of `Phase`. Rendering uses the Tachyon ray tracer (CPU, no display or GPU needed).

    python scripts/ovito_screenshot.py                 # writes docs/ovito_phase.png (needs `pip install ovito`)
    python scripts/ovito_screenshot.py -o /tmp/x.png --size 1200 900
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lammps_phase.inference.formats import DumpWriter, Frame  # noqa: E402
from lammps_phase.data.structures import build, supercell  # noqa: E402

MAX_BYTES = 300_000


def write_sample(path: Path, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    crystal = supercell(build("alpha_quartz"), 34.0)
    cell = np.asarray(crystal.cell)
    pos = crystal.positions + rng.normal(scale=0.04, size=crystal.positions.shape)
    inner = np.linalg.norm(crystal.positions - np.diag(cell) / 2, axis=1) < 11.0
    pos[inner] += rng.normal(scale=0.45, size=(int(inner.sum()), 3))
    sym = np.array(crystal.symbols)
    cols = {"id": np.arange(1, len(pos) + 1), "type": np.where(sym == "Si", 1, 2), "element": sym,
            "x": pos[:, 0], "y": pos[:, 1], "z": pos[:, 2]}
    with DumpWriter(path) as w:
        w.write(Frame(0, np.zeros(3), np.diag(cell).copy(), np.zeros(3), (True, True, True), cols))


def render(output: Path, size: tuple[int, int]) -> dict[str, float]:
    from ovito.io import import_file
    from ovito.modifiers import ColorByTypeModifier, SliceModifier
    from ovito.vis import ColorLegendOverlay, TachyonRenderer, Viewport

    from lammps_phase.ovito_modifier import LammpsPhaseModifier

    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "quartz_with_inclusion.dump"
        write_sample(dump)
        pipeline = import_file(str(dump))
        pipeline.modifiers.append(LammpsPhaseModifier(threshold=0.9))
        pipeline.modifiers.append(ColorByTypeModifier(operate_on="particles", property="Phase"))

        def legend_lists_present_phases(frame, data):
            # The modifier defines every class of the model (so colours stay fixed across frames); the picture's
            # legend lists only the phases this frame has.
            phase = data.particles_["Phase_"]
            present = set(np.unique(np.asarray(phase)).tolist())
            for t in list(phase.types):
                if t.id not in present:
                    phase.remove_type_id(t.id)

        pipeline.modifiers.append(legend_lists_present_phases)
        data = pipeline.compute()
        centre = np.asarray(data.cell[:, :3]).sum(axis=1) / 2
        # drop the half nearer the camera (y < centre), so the cut face through the inclusion faces the viewer
        pipeline.modifiers.append(SliceModifier(normal=(0, 1, 0), distance=float(centre[1]), inverse=True))
        data = pipeline.compute()
        data.particles.vis.scaling = 0.55  # smaller spheres than the element radii: the cut face stays readable
        pipeline.add_to_scene()

        vp = Viewport(type=Viewport.Type.Perspective, camera_dir=(0.3, 1.0, -0.35), fov=np.radians(35.0))
        vp.zoom_all(size=size)
        vp.overlays.append(ColorLegendOverlay(
            property="particles/Phase", title="Phase", alignment=_align("left_top"), orientation=_vertical(),
            font_size=0.09, label_size=0.75, legend_size=0.3, aspect_ratio=2.5, offset_x=0.02, offset_y=-0.08))
        output.parent.mkdir(parents=True, exist_ok=True)
        vp.render_image(size=size, filename=str(output), background=(1.0, 1.0, 1.0),
                        renderer=TachyonRenderer(ambient_occlusion=True, shadows=False, antialiasing_samples=8))
        pipeline.remove_from_scene()
    _shrink(output)
    fractions = {k.split(".", 2)[2]: float(v) for k, v in data.attributes.items() if k.startswith("LammpsPhase.fraction.")}
    return {k: v for k, v in fractions.items() if v > 0}


def _align(where: str):
    from ovito.qt_compat import QtCore

    flags = QtCore.Qt.AlignmentFlag
    return {"left_top": flags.AlignLeft | flags.AlignTop, "right_top": flags.AlignRight | flags.AlignTop}[where]


def _vertical():
    from ovito.qt_compat import QtCore

    return QtCore.Qt.Orientation.Vertical


def _shrink(path: Path) -> None:
    """Keep the PNG small for the repository: a 256-colour palette if the full-colour file is over MAX_BYTES."""
    if os.path.getsize(path) <= MAX_BYTES:
        return
    from PIL import Image

    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "ovito_phase.png")
    p.add_argument("--size", type=int, nargs=2, default=(900, 640), metavar=("W", "H"))
    args = p.parse_args(argv)
    fractions = render(args.output, tuple(args.size))
    print(f"wrote {args.output} ({os.path.getsize(args.output) / 1e3:.0f} kB); phase fractions: "
          + ", ".join(f"{k} {v:.3f}" for k, v in fractions.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
