"""Atom lines -> typed columns: dtypes by LAMMPS name or by the text, and one clear error per bad line."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.formats import DumpWriter, read_dump

from frame_helpers import make_frame


def test_string_columns_and_unknown_integer_columns_keep_their_types(tmp_path):
    frame = make_frame(natoms=5)
    frame.columns["element"] = np.array(["Si", "O", "O", "Si", "O"])
    path = tmp_path / "el.dump"
    with DumpWriter(path) as writer:
        writer.write(frame, extra={"cluster": np.array([3, 1, 4, 1, 5])})
    (read,) = list(read_dump(path))
    assert read.columns["element"].tolist() == ["Si", "O", "O", "Si", "O"]
    assert read.columns["cluster"].dtype == np.int64
    assert read.species(None).tolist() == ["Si", "O", "O", "Si", "O"]


def test_malformed_atom_line(tmp_path):
    path = tmp_path / "bad.dump"
    with DumpWriter(path) as writer:
        writer.write(make_frame(natoms=5, timestep=9))
    lines = path.read_text().splitlines()
    lines[-2] = "4 1 0.5 0.5"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LammpsPhaseError, match="bad.dump: frame at timestep 9: malformed atom line"):
        list(read_dump(path))
