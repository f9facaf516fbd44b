"""LAMMPS data files: atom styles by comment or column count, writing a general cell, and errors."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.formats import count_frames, detect_format, read_data, write_lammps_data

from frame_helpers import pairwise


DATA_HEADER = """LAMMPS data file via hand

3 atoms
2 atom types

0.0 4.0 xlo xhi
-1.0 5.0 ylo yhi
0.5 6.5 zlo zhi
{tilt}
Masses

1 28.0855 # Si
2 15.9994 # O

{atoms}

Velocities

1 0.1 0.2 0.3
2 0 0 0
3 0 0 0
"""


@pytest.mark.parametrize(
    "keyword,lines,expected_columns",
    [
        ("Atoms # atomic", ["1 1 0.5 0.5 1.0", "2 2 1.5 0.5 1.0", "3 2 0.5 1.5 1.0"],
         ["id", "type", "x", "y", "z"]),
        ("Atoms", ["1 1 0.5 0.5 1.0 0 0 0", "2 2 1.5 0.5 1.0 1 0 -1", "3 2 0.5 1.5 1.0 0 0 0"],
         ["id", "type", "x", "y", "z", "ix", "iy", "iz"]),
        ("Atoms", ["1 1 2.4 0.5 0.5 1.0", "2 2 -1.2 1.5 0.5 1.0", "3 2 -1.2 0.5 1.5 1.0"],
         ["id", "type", "q", "x", "y", "z"]),
        ("Atoms # charge", ["1 1 2.4 0.5 0.5 1.0 0 0 0", "2 2 -1.2 1.5 0.5 1.0 0 0 0", "3 2 -1.2 0.5 1.5 1.0 0 0 0"],
         ["id", "type", "q", "x", "y", "z", "ix", "iy", "iz"]),
        ("Atoms # full", ["1 7 1 2.4 0.5 0.5 1.0", "2 7 2 -1.2 1.5 0.5 1.0  # comment", "3 8 2 -1.2 0.5 1.5 1.0"],
         ["id", "mol", "type", "q", "x", "y", "z"]),
    ],
)
@pytest.mark.parametrize("tilt", ["", "0.5 -0.25 1.0 xy xz yz\n"])
def test_data_files_by_style_comment_and_by_column_count(tmp_path, keyword, lines, expected_columns, tilt):
    path = tmp_path / "in.data"
    path.write_text(DATA_HEADER.format(tilt=tilt, atoms=keyword + "\n\n" + "\n".join(lines)))
    assert detect_format(path) == "data"
    assert count_frames(path) == 1
    frame = read_data(path)
    assert list(frame.columns) == expected_columns
    assert frame.timestep == 0 and frame.pbc == (True, True, True)
    np.testing.assert_allclose(frame.boxlo, [0.0, -1.0, 0.5])
    np.testing.assert_allclose(frame.boxhi, [4.0, 5.0, 6.5])
    np.testing.assert_allclose(frame.tilt, [0.5, -0.25, 1.0] if tilt else [0, 0, 0])
    np.testing.assert_allclose(frame.positions(), [[0.5, 0.5, 1.0], [1.5, 0.5, 1.0], [0.5, 1.5, 1.0]])
    assert frame.species(["Si", "O"]).tolist() == ["Si", "O", "O"]
    assert frame.masses == {1: 28.0855, 2: 15.9994}
    assert frame.columns["type"].dtype == np.int64
    if "q" in frame.columns:
        np.testing.assert_allclose(frame.columns["q"], [2.4, -1.2, -1.2])


def test_write_lammps_data_rotates_a_general_cell_and_keeps_distances(tmp_path):
    rng = np.random.default_rng(11)
    cell = np.array([[5.0, 1.0, 0.5], [0.3, 6.0, -1.0], [0.8, 0.2, 7.0]])
    positions = rng.random((12, 3)) @ cell
    species = np.array(["Si", "O", "O"] * 4)
    path = tmp_path / "general.data"
    write_lammps_data(path, positions, cell, species, ["Si", "O"])
    frame = read_data(path)
    assert frame.columns["type"].tolist() == [1, 2, 2] * 4
    np.testing.assert_allclose(pairwise(frame.positions()), pairwise(positions), atol=1e-10)
    assert frame.masses == {1: 28.0855, 2: 15.9994}  # the masses our MD runs use (lammps_phase.elements)
    new_cell = frame.cell()
    np.testing.assert_allclose(new_cell @ new_cell.T, cell @ cell.T, atol=1e-10)  # same lengths and angles
    assert "Atoms # atomic" in path.read_text()


def test_truncated_data_file(tmp_path):
    path = tmp_path / "cut.data"
    path.write_text(DATA_HEADER.format(tilt="", atoms="Atoms # atomic\n\n1 1 0.5 0.5 1.0\n2 2 1.5 0.5 1.0"))
    with pytest.raises(LammpsPhaseError, match="cut.data: Atoms section is truncated: expected 3 atom lines, found 2"):
        read_data(path)


def test_write_lammps_data_errors(tmp_path):
    cell = np.eye(3) * 5
    positions = np.zeros((2, 3))
    with pytest.raises(LammpsPhaseError, match="species Xe are not in the type map"):
        write_lammps_data(tmp_path / "a.data", positions, cell, ["Si", "Xe"], ["Si", "O"])
    with pytest.raises(LammpsPhaseError, match=r"no mass known for Uuo; pass masses="):
        write_lammps_data(tmp_path / "b.data", positions, cell, ["Uuo", "Uuo"], ["Uuo"])
    with pytest.raises(LammpsPhaseError, match="atom_style 'charge' needs charges"):
        write_lammps_data(tmp_path / "c.data", positions, cell, ["Si", "O"], ["Si", "O"], atom_style="charge")
