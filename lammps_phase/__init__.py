"""lammps-phase: per-atom phase labels from a spatially weighted dynamic graph CNN, in situ in LAMMPS."""

__version__ = "0.1.0"

from lammps_phase.errors import LammpsPhaseError  # noqa: F401


def __getattr__(name: str):
    # Lazy: importing the package must not import torch (the LAMMPS-embedded interpreter imports us early).
    if name == "Classifier":
        from lammps_phase.inference.classify import Classifier

        return Classifier
    raise AttributeError(name)
