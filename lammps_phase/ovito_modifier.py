"""OVITO modifier ``lammps-phase``: per-atom phase labels inside OVITO pipelines (GUI and headless scripts).

Registered under the ``OVITO.Modifier`` entry point of this package, so installing lammps-phase into OVITO's
Python (or ``pip install ovito`` into this venv) lists it among OVITO's modifiers. In a script::

    from ovito.io import import_file
    from lammps_phase.ovito_modifier import LammpsPhaseModifier

    pipeline = import_file("shock.dump")
    pipeline.modifiers.append(LammpsPhaseModifier())          # shipped SiO2 model, types from their names
    data = pipeline.compute(0)
    data.particles["Phase"], data.attributes["LammpsPhase.fraction.stishovite"]

Output per frame:

- particle property ``Phase`` (int32): class index as in ``lammps-phase classify`` (−1 = below the confidence
  threshold), a typed property with one named, coloured type per class plus ``Other`` (−1), so OVITO's
  colour legend, *Color by type* and *Select type* work as they do for ``Structure Type``;
- particle property ``Phase Confidence`` (float32): the top softmax probability;
- global attributes ``LammpsPhase.fraction.<class>`` and ``LammpsPhase.fraction.Other`` (fraction of atoms);
- a data table ``lammps-phase`` (bar chart of atom counts per phase).

The labels come from the same :class:`~lammps_phase.inference.classify.Classifier` as the CLI, so they equal
``lammps-phase classify`` on the same frame. The model is loaded once and kept across frames; it is reloaded
only when the checkpoint or the device changes. This module needs the ``ovito`` package; the rest of
lammps_phase does not import it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
from ovito.data import DataCollection, DataTable
from ovito.pipeline import ModifierInterface
from ovito.traits import FilePath
from traits.api import Range, Str

from lammps_phase.errors import LammpsPhaseError

__all__ = ["LammpsPhaseModifier", "DEFAULT_CHECKPOINT", "PHASE_PROPERTY", "CONFIDENCE_PROPERTY", "OTHER_NAME"]

# The shipped SiO2 model, found from this file (repository layout: <root>/lammps_phase/, <root>/checkpoints/),
# so the default works whatever the current directory is.
DEFAULT_CHECKPOINT = str(Path(__file__).resolve().parent.parent / "checkpoints" / "sio2.pt")
PHASE_PROPERTY = "Phase"
CONFIDENCE_PROPERTY = "Phase Confidence"
OTHER_NAME = "Other"
ATTRIBUTE_PREFIX = "LammpsPhase.fraction."
TABLE_ID = "lammps-phase"


def _rgb(hex_colour: str) -> tuple[float, float, float]:
    h = hex_colour.lstrip("#")
    return tuple(int(h[i:i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]


class LammpsPhaseModifier(ModifierInterface):
    """lammps-phase: per-atom phase labels from a spatially weighted DGCNN (same model and labels as the CLI)."""

    checkpoint = FilePath(DEFAULT_CHECKPOINT, label="Checkpoint (.pt, or an ensemble .toml)")
    type_map = Str("", label="Type map (element per type 1, 2, …; empty = type names)")
    threshold = Range(0.0, 1.0, 0.0, label="Confidence threshold (below: Other)")
    device = Str("auto", label="Device (auto, cpu, cuda, cuda:N)")

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._classifier = None
        self._classifier_key: Optional[tuple] = None
        self.loads = 0  # how many times a checkpoint was loaded (the cache keeps it at one per checkpoint/device)

    # ------------------------------------------------------------------ model cache
    def classifier(self):
        """The loaded :class:`Classifier`, reloaded only when the checkpoint path/file or the device changed."""
        path = os.path.abspath(os.path.expanduser(self.checkpoint or DEFAULT_CHECKPOINT))
        if not os.path.isfile(path):
            hint = (" (the shipped model lives in the lammps-phase repository's checkpoints/ folder; "
                    "set the checkpoint parameter to a .pt file)") if path == DEFAULT_CHECKPOINT else ""
            raise LammpsPhaseError(f"lammps-phase: checkpoint {path} does not exist{hint}")
        stat = os.stat(path)
        key = (path, stat.st_mtime_ns, stat.st_size, self.device)
        if self._classifier is None or key != self._classifier_key:
            from lammps_phase.inference.classify import Classifier

            self._classifier = Classifier.load(path, device=self.device)
            self._classifier_key = key
            self.loads += 1
        return self._classifier

    # ------------------------------------------------------------------ species
    def species(self, data: DataCollection) -> np.ndarray:
        """Element name per particle: through ``type_map`` (LAMMPS type numbers) if set, else the type names."""
        particles = data.particles
        if "Particle Type" not in particles:
            raise LammpsPhaseError("lammps-phase: the particles have no 'Particle Type' property; "
                                   "load a file with atom types or elements")
        type_ids = np.asarray(particles.particle_types, dtype=np.int64)
        if self.type_map.strip():
            elements = self.type_map.split()
            bad = np.unique(type_ids[(type_ids < 1) | (type_ids > len(elements))])
            if bad.size:
                raise LammpsPhaseError(
                    f"lammps-phase: particle type(s) {' '.join(map(str, bad))} are not in the type map "
                    f"\"{self.type_map.strip()}\" (it covers types 1..{len(elements)}): give one element per type"
                )
            return np.asarray(elements, dtype=str)[type_ids - 1]
        present = np.unique(type_ids)
        names = {}
        unnamed = []
        for tid in present:
            ptype = particles.particle_types.type_by_id(int(tid), require=False)
            name = ptype.name.strip() if ptype is not None else ""
            if name:
                names[int(tid)] = name
            else:
                unnamed.append(int(tid))
        if unnamed:
            raise LammpsPhaseError(
                f"lammps-phase: particle type(s) {' '.join(map(str, unnamed))} have no name, so their element is "
                "unknown: set the modifier's type map (element per type 1, 2, …, e.g. \"Si O\") or name the "
                "types (e.g. dump an 'element' column)"
            )
        lut = np.empty(int(present.max()) - int(present.min()) + 1, dtype=object)
        for tid, name in names.items():
            lut[tid - int(present.min())] = name
        return lut[type_ids - int(present.min())].astype(str)

    # ------------------------------------------------------------------ pipeline
    def modify(self, data: DataCollection, *, frame: int = 0, **kwargs) -> None:
        if data.particles is None or data.particles.count == 0:
            raise LammpsPhaseError("lammps-phase: the input has no particles")
        clf = self.classifier()
        positions = np.asarray(data.particles.positions, dtype=np.float64)
        if data.cell is not None:
            matrix = np.asarray(data.cell[...], dtype=np.float64)
            cell: Optional[np.ndarray] = matrix[:, :3].T.copy()  # OVITO: columns a, b, c, origin; Classifier: rows
            origin = matrix[:, 3].copy()
            pbc = tuple(bool(p) for p in data.cell.pbc)
        else:
            cell, origin, pbc = None, np.zeros(3), (False, False, False)
        if cell is not None and not any(pbc):
            cell = None  # open boundaries: the box plays no part
        result = clf.classify(positions, cell, self.species(data), pbc=pbc, origin=origin,
                              threshold=float(self.threshold))

        particles = data.particles_
        phase = particles.create_property(PHASE_PROPERTY, dtype=np.int32, components=1, data=result.labels)
        self._add_types(phase, particles, result.classes)
        particles.create_property(CONFIDENCE_PROPERTY, dtype=np.float32, components=1, data=result.confidence)

        fractions = result.fractions()
        for name in result.classes:
            data.attributes[ATTRIBUTE_PREFIX + name] = float(fractions[name])
        data.attributes[ATTRIBUTE_PREFIX + OTHER_NAME] = float(fractions["other"])

        ids = np.arange(-1, len(result.classes), dtype=np.int32)
        counts = np.bincount(result.labels + 1, minlength=len(result.classes) + 1).astype(np.int64)
        table = data.tables.create(identifier=TABLE_ID, title="lammps-phase: atoms per phase",
                                   plot_mode=DataTable.PlotMode.BarChart)
        table.x = table.create_property(PHASE_PROPERTY, dtype=np.int32, data=ids)
        self._add_types(table.x, table, result.classes)
        table.y = table.create_property("Count", dtype=np.int64, data=counts)

    @staticmethod
    def _add_types(prop, container, classes: list[str]) -> None:
        from lammps_phase.analysis.shock_plots import phase_colours  # the colours of `lammps-phase report` figures

        colours = phase_colours(len(classes))  # [Other, class 0, class 1, …]
        other = prop.add_type_id(-1, container, name=OTHER_NAME)
        other.color = _rgb(colours[0])
        for i, name in enumerate(classes):
            ptype = prop.add_type_id(i, container, name=name)
            ptype.color = _rgb(colours[i + 1])
