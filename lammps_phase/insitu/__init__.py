"""In-situ labels inside LAMMPS: `fix python/invoke` calls a `PhaseLabeler` every N steps."""

from lammps_phase.insitu.labeler import PhaseLabeler
from lammps_phase.insitu.local_mode import local_ghost_cutoff

__all__ = ["PhaseLabeler", "local_ghost_cutoff"]
