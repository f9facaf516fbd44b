"""In-situ labels inside LAMMPS: `fix python/invoke` calls a `PhaseLabeler` every N steps."""

from lammps_phase.insitu.labeler import PhaseLabeler  # noqa: F401
