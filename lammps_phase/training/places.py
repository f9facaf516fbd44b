"""Held-out accuracy by where an atom sits: depth below a free surface, distance from an interface, uniaxial
strain, and (pressure, temperature) for glass and melt.

Bulk accuracy says little about the atoms a shock user looks at; the report stage feeds every test frame through
:class:`PlaceTally`, which keeps [correct, atoms] counts per place and turns them into the report's tables. The
geometry (which atom is how deep, how far from which interface) comes from :mod:`lammps_phase.data.geometry`, the
same functions the variant runs' checks use.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from lammps_phase.data.geometry import (axis_index, interface_distance, phase_boundary_distance, sphere_depth,
                                        surface_depth)

DEPTH_BINS = ((0, 2), (2, 4), (4, 6), (6, 10), (10, np.inf))  # Å below a free surface
INTERFACE_BINS = ((0, 1), (1, 2), (2, 3), (3, 6), (6, np.inf))  # Å from an interface (where the phases meet)
NEAR_INTERFACE = 3.0  # Å: "at the interface" in the targets
STRAIN_BINS = ((0, 5), (5, 10), (10, 15), (15, 20), (20, 50))  # % compression along one axis
PRESSURE_BINS = ((-5, 5), (5, 20), (20, 40), (40, 70))  # GPa
TEMPERATURE_BINS = ((0, 1000), (1000, 2000), (2000, 3000), (3000, np.inf))  # K
# tilt of the depth shell (data.quartz_order.TILT_SHELLS) of a quartz void's atoms ≥ 4 Å deep, in units of ideal α:
# the shells that decide the labels, read again to show where α is partly untilted (the α-β transition region)
TILT_BINS = ((0.5, 0.65), (0.65, 0.8), (0.8, np.inf))
QUARTZ = ("alpha_quartz", "beta_quartz")


def _bin_name(lo: float, hi: float, unit: str) -> str:
    return f"> {lo:g} {unit}" if hi == np.inf else f"{lo:g}-{hi:g} {unit}"


def uniaxial_strain(cell: np.ndarray, reference_cell: np.ndarray, axis: str) -> float:
    """Compression (fraction) along cell row ``axis`` against the relaxed crystal's cell: 1 − |a| / |a₀|."""
    a = axis_index(axis)
    return 1.0 - float(np.linalg.norm(cell[a]) / np.linalg.norm(reference_cell[a]))


class PlaceTally:
    """[correct, atoms] per place, filled frame by frame; ``classes`` names the label codes."""

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = list(classes)
        self.places: dict[str, list[int]] = {}
        self.strain: dict[str, list[int]] = {}
        self.dense: dict[str, list[int]] = {}
        self.interface_errors: dict[str, int] = {}  # "true → predicted" → atoms within NEAR_INTERFACE
        self.interface_near = 0
        self._order: dict[str, tuple] = {}  # table key → sort key (names, then bins in numeric order)

    @staticmethod
    def _count(table: dict[str, list[int]], key: str, ok: np.ndarray) -> None:
        if ok.size:
            c = table.setdefault(key, [0, 0])
            c[0] += int(ok.sum())
            c[1] += int(ok.size)

    def tally(self, key: str, ok: np.ndarray) -> None:
        """Add atoms to the place ``key`` (``ok``: one bool per atom, right or wrong)."""
        self._count(self.places, key, ok)

    def add(self, spec: Any, positions: np.ndarray, cell: np.ndarray, origin: np.ndarray, labels: np.ndarray,
            predicted: np.ndarray, temperature: float, pressure: float,
            reference_cell: Optional[np.ndarray] = None, potential: Optional[str] = None,
            species: Optional[Sequence[str]] = None) -> None:
        """One test frame of the run made by phase block ``spec`` (labels −1: no truth, not counted); with
        ``potential`` (mixed-potential configs) its atoms count towards "potential <name>" too; with ``species``
        a quartz void's deep atoms count by their shell's tilt as well."""
        known = labels >= 0
        ok = predicted == labels
        self.tally(spec.variant, ok[known])
        if spec.variant in ("slab", "sphere"):
            depth = (surface_depth(positions, cell, origin, spec.axis) if spec.variant == "slab"
                     else sphere_depth(positions, cell, origin, spec.geometry))
            name = "slab" if spec.variant == "slab" else spec.geometry
            for lo, hi in DEPTH_BINS:
                self.tally(f"{name}, depth {_bin_name(lo, hi, 'Å')}", ok[known & (depth >= lo) & (depth < hi)])
            if name == "void" and spec.name in QUARTZ and species is not None:
                self._add_void_tilt(positions, species, cell, origin, depth, known, ok)
        elif spec.variant == "interface":
            self._add_interface(spec, positions, cell, origin, labels, predicted, known, ok)
        elif spec.variant == "strained" and reference_cell is not None:
            percent = 100.0 * uniaxial_strain(cell, reference_cell, spec.axis)
            lo, hi = next(((lo, hi) for lo, hi in STRAIN_BINS if lo <= percent < hi), STRAIN_BINS[-1])
            key = f"{spec.name} along {spec.axis}, {_bin_name(lo, hi, '%')}"
            self._order[key] = (spec.name, spec.axis, lo)
            self._count(self.strain, key, ok[known])
        if spec.variant == "bulk":  # the "every class >= 0.995 in bulk"
            for code in np.unique(labels[known]):
                self.tally(f"bulk, {self.classes[int(code)]}", ok[known & (labels == code)])
        if spec.variant == "bulk" and spec.name in ("amorphous", "melt"):
            p = next((b for b in PRESSURE_BINS if b[0] <= pressure < b[1]), None)
            t = next((b for b in TEMPERATURE_BINS if b[0] <= temperature < b[1]), None)
            if p and t:
                key = f"{spec.name}, {_bin_name(*p, 'GPa')}, {_bin_name(*t, 'K')}"
                self._order[key] = (spec.name, p[0], t[0])
                self._count(self.dense, key, ok[known])
        if potential:
            self.tally(f"potential {potential}", ok[known])

    def _add_void_tilt(self, positions, species, cell, origin, depth, known, ok) -> None:
        from lammps_phase.data.quartz_order import TILT_SHELLS, depth_shells, tilt_by_group

        shells = depth_shells(depth)[1:]  # the shells ≥ TILT_SHELLS[0] deep
        for shell, (value, _) in zip(shells, tilt_by_group(positions, species, cell, origin, shells)):
            bin_ = next(((lo, hi) for lo, hi in TILT_BINS if lo <= value < hi), None)
            if bin_ is not None:
                name = f"void ≥ {TILT_SHELLS[0]:g} Å, shell tilt {_bin_name(*bin_, '')}".rstrip()
                self.tally(name, ok[known & shell])

    def _add_interface(self, spec, positions, cell, origin, labels, predicted, known, ok) -> None:
        """Distances from where the two phases meet now (planes fitted to the labels: crystal regrows into the
        melted half, :func:`~lammps_phase.data.geometry.phase_boundary_planes`); the starting planes' figures too."""
        partner = self.classes.index(spec.partner) if spec.partner in self.classes else -1
        codes = np.where(known, (labels == partner).astype(int), -1)
        distance, disordered = phase_boundary_distance(positions, cell, origin, spec.axis, codes)
        near = known & (distance <= NEAR_INTERFACE)
        # the scores count labelled atoms only: say how many near the interface carry no label (no class is true)
        self.tally(f"interface, atoms ≤ {NEAR_INTERFACE:g} Å from it: share without a label",
                   ~known[distance <= NEAR_INTERFACE])
        self.tally(f"interface, atoms ≤ {NEAR_INTERFACE:g} Å from it", ok[near])
        self.tally(f"interface, atoms > {NEAR_INTERFACE:g} Å from it", ok[known & (distance > NEAR_INTERFACE)])
        start = interface_distance(positions, cell, origin, spec.axis)  # where the melted half began
        near_start = start <= NEAR_INTERFACE
        self.tally(f"interface, atoms ≤ {NEAR_INTERFACE:g} Å from the starting plane", ok[known & near_start])
        self.tally(f"interface, atoms > {NEAR_INTERFACE:g} Å from the starting plane", ok[known & ~near_start])
        self.tally(f"interface ≤ {NEAR_INTERFACE:g} Å, crystal side ({spec.name})", ok[near & ~disordered])
        self.tally(f"interface ≤ {NEAR_INTERFACE:g} Å, {spec.partner} side", ok[near & disordered])
        for lo, hi in INTERFACE_BINS:
            name = f"> {lo:g} Å from it" if hi == np.inf else f"{lo:g}-{hi:g} Å from it"
            self.tally(f"interface, {name}", ok[known & (distance >= lo) & (distance < hi)])
        for t, q in zip(labels[near & ~ok], predicted[near & ~ok]):  # what the errors near it are
            key = f"{self.classes[int(t)]} → {self.classes[int(q)] if q >= 0 else 'other'}"
            self.interface_errors[key] = self.interface_errors.get(key, 0) + 1
        self.interface_near += int(near.sum())

    @staticmethod
    def _fractions(table: dict[str, list[int]]) -> dict[str, float]:
        return {k: round(c / n, 4) for k, (c, n) in table.items() if n}

    def _with_counts(self, table: dict[str, list[int]]) -> dict[str, str]:
        return {k: f"{c / n:.4f} ({n} atoms)" for k, (c, n) in sorted(table.items(), key=lambda kv: self._order[kv[0]])}

    def tables(self) -> dict[str, dict[str, Any]]:
        """The report's tables (empty ones left out), named for the report."""
        out: dict[str, dict[str, Any]] = {"accuracy by place (held-out runs)": self._fractions(self.places)}
        if self.interface_errors:
            top = sorted(self.interface_errors.items(), key=lambda kv: -kv[1])[:8]
            out[f"errors within {NEAR_INTERFACE:g} Å of an interface (share of those atoms)"] = {
                key: round(n / self.interface_near, 4) for key, n in top}
        if self.strain:
            name = "accuracy by uniaxial compression (strained runs, against the relaxed cell)"
            out[name] = self._with_counts(self.strain)
        if self.dense:
            out["glass and melt by pressure and temperature (bulk runs)"] = self._with_counts(self.dense)
        return out

    def by_place(self) -> dict[str, float]:
        return self._fractions(self.places)
