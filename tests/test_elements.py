"""Elements (lammps_phase.elements): one mass table, density, element indices."""

import numpy as np
import pytest

from lammps_phase import elements
from lammps_phase.data import structures
from lammps_phase.errors import LammpsPhaseError


def test_masses_are_those_the_md_uses_and_the_rest_of_the_periodic_table():
    assert (elements.mass("Si"), elements.mass("O"), elements.mass("Cu")) == (28.0855, 15.9994, 63.546)
    assert elements.mass("Po") == pytest.approx(209.0, abs=1.0)  # beyond the table: ASE's value
    with pytest.raises(LammpsPhaseError, match="not a chemical element"):
        elements.mass("Xx")


def test_density_of_alpha_quartz():
    quartz = structures.build("alpha_quartz")
    assert elements.density(quartz.cell, quartz.symbols) == pytest.approx(2.65, abs=0.02)  # g/cm^3


def test_element_indices_and_the_error_for_unknown_elements():
    out = elements.element_indices(np.array(["O", "Si", "O"]), ["Si", "O"], "fix it")
    assert out.tolist() == [1, 0, 1] and out.dtype == np.int64
    with pytest.raises(LammpsPhaseError, match="element\\(s\\) Cu are unknown to the config .*: fix it"):
        elements.element_indices(["Si", "Cu"], ["Si", "O"], "fix it", owner="the config")
