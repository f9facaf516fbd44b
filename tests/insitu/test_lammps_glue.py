"""The labeler's LAMMPS glue (lammps_phase.insitu.lammps_glue) offline: deck mistakes give one clear message."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.insitu import PhaseLabeler
from lammps_phase.insitu.lammps_glue import atom_array, check_properties, check_type_map


class Deck:
    """The few calls the checks make of a ``lammps`` object: a two-type system and its per-atom properties."""

    def __init__(self, properties: dict[str, int]) -> None:
        self.properties = properties

    def extract_global(self, name: str):
        return {"ntypes": 2}[name]

    def extract_atom_datatype(self, name: str):
        return self.properties.get(name)


def test_a_misspelt_keyword_is_a_lammps_phase_error(random_sio2_checkpoint, capsys):
    with pytest.raises(LammpsPhaseError, match="PhaseLabeler: .*unexpected keyword argument 'mdoe'; see help"):
        PhaseLabeler(str(random_sio2_checkpoint), types="Si O", mdoe="local")
    assert capsys.readouterr().out == ""  # outside LAMMPS the exception alone says it


def test_one_element_per_atom_type():
    check_type_map(Deck({}), ["Si", "O"])
    with pytest.raises(LammpsPhaseError, match="types 'Si' names 1 element\\(s\\) but the system has 2 atom types"):
        check_type_map(Deck({}), ["Si"])


@pytest.mark.parametrize("properties, message", [
    ({}, "no per-atom property i_phase to write the labels into: add "
         "`fix phase all property/atom i_phase d_phase_conf`"),
    ({"i_phase": 2, "d_phase_conf": 2}, "per-atom property i_phase is not integer"),
    ({"i_phase": 0, "d_phase_conf": 0}, "per-atom property d_phase_conf is not float"),
])
def test_the_property_vectors_must_exist_with_their_types(properties, message):
    with pytest.raises(LammpsPhaseError, match=message.replace("(", "\\(").replace(")", "\\)")):
        check_properties(Deck(properties), "i_phase", "d_phase_conf")
    check_properties(Deck({"i_phase": 0, "d_phase_conf": 2}), "i_phase", "d_phase_conf")


def test_no_atoms_no_lammps_call():
    assert atom_array(None, "x", 0, np.float64, 3).shape == (0, 3)


def test_the_lammps_wrapper_is_made_once_per_instance():
    """fix python/invoke hands over a fresh PyCapsule each call; the wrapper behind it is built once (13 ms each)."""
    import ctypes

    lammps = pytest.importorskip("lammps")
    from lammps_phase.insitu.lammps_glue import as_lammps

    lmp = lammps.lammps(cmdargs=["-screen", "none", "-log", "none"])
    try:
        lmp.command("region box block 0 5 0 5 0 5")
        lmp.command("create_box 2 box")
        capsule = ctypes.pythonapi.PyCapsule_New
        capsule.restype, capsule.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
        first = as_lammps(capsule(lmp.lmp.value, None, None))
        second = as_lammps(capsule(lmp.lmp.value, None, None))
        assert first is second and first is as_lammps(lmp.lmp.value)
        assert first.extract_global("ntypes") == 2  # the cached wrapper talks to this instance
        assert as_lammps(lmp) is lmp
    finally:
        lmp.close()
