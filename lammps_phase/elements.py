"""Elements: atomic masses, mass density, and element names → model indices. One table for the whole project.

The masses of Si, O and Cu are the ones our MD runs use (they enter the LAMMPS `mass` command and so the
trajectories); the others are IUPAC 2021 abridged standard atomic weights (ASE's table beyond them).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lammps_phase.errors import LammpsPhaseError

#: 1 amu/Å^3 in g/cm^3 (CODATA 2018 atomic mass constant / 1e-24 cm^3)
AMU_PER_A3_TO_G_PER_CM3 = 1.66053906660

ATOMIC_MASSES: dict[str, float] = {
    "H": 1.008, "He": 4.0026, "Li": 6.94, "Be": 9.0122, "B": 10.81, "C": 12.011, "N": 14.007,
    "O": 15.9994, "F": 18.998, "Ne": 20.180, "Na": 22.990, "Mg": 24.305, "Al": 26.982, "Si": 28.0855,
    "P": 30.974, "S": 32.06, "Cl": 35.45, "Ar": 39.948, "K": 39.098, "Ca": 40.078, "Ti": 47.867,
    "V": 50.942, "Cr": 51.996, "Mn": 54.938, "Fe": 55.845, "Co": 58.933, "Ni": 58.693, "Cu": 63.546,
    "Zn": 65.38, "Ga": 69.723, "Ge": 72.630, "As": 74.922, "Zr": 91.224, "Nb": 92.906, "Mo": 95.95,
    "Pd": 106.42, "Ag": 107.87, "Sn": 118.71, "Hf": 178.49, "Ta": 180.95, "W": 183.84, "Pt": 195.08,
    "Au": 196.97, "Pb": 207.2,
}


def mass(element: str) -> float:
    """Atomic mass in amu: the table above, then ASE's for the rest of the periodic table."""
    element = str(element)
    if element in ATOMIC_MASSES:
        return ATOMIC_MASSES[element]
    from ase.data import atomic_masses, atomic_numbers

    if element not in atomic_numbers:
        raise LammpsPhaseError(f"{element!r} is not a chemical element symbol; give the masses explicitly")
    return float(atomic_masses[atomic_numbers[element]])


def density(cell: np.ndarray, species: Sequence[str]) -> float:
    """Mass density (g/cm^3) of the atoms `species` in the cell with rows a, b, c."""
    total = sum(mass(s) for s in species)
    return float(total / abs(np.linalg.det(np.asarray(cell, dtype=float))) * AMU_PER_A3_TO_G_PER_CM3)


def element_indices(elements: np.ndarray | Sequence[str], known: Sequence[str], fix: str,
                    owner: str = "this model") -> np.ndarray:
    """Element names → indices into `known` (int64); names outside `known` raise one error that ends with `fix`."""
    names = np.asarray(elements)
    uniq = np.unique(names)
    lut = {e: i for i, e in enumerate(known)}
    unknown = [str(e) for e in uniq if e not in lut]
    if unknown:
        raise LammpsPhaseError(
            f"element(s) {' '.join(unknown)} are unknown to {owner} (it knows {' '.join(known)}): {fix}"
        )
    out = np.empty(len(names), dtype=np.int64)
    for e in uniq:
        out[names == e] = lut[e]
    return out
