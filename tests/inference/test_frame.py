"""Frame: Cartesian positions from any coordinate columns, species through a type map, and their errors."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.formats import Frame, read_dump

from frame_helpers import make_frame


def test_scaled_and_unwrapped_variants_give_the_same_cartesian_positions():
    frame = make_frame(tilt=(1.5, -0.5, 2.0))
    positions = frame.positions()
    inverse = np.linalg.inv(frame.cell())
    scaled = (positions - frame.boxlo) @ inverse
    images = np.random.default_rng(3).integers(-2, 3, (frame.natoms, 3))
    variants = {
        ("xs", "ys", "zs"): scaled,
        ("xu", "yu", "zu"): positions,
        ("xsu", "ysu", "zsu"): scaled,
    }
    for names, values in variants.items():
        other = Frame(frame.timestep, frame.boxlo, frame.boxhi, frame.tilt, frame.pbc,
                      {"id": frame.columns["id"], **{n: values[:, k] for k, n in enumerate(names)}})
        np.testing.assert_allclose(other.positions(), positions, rtol=0, atol=1e-12)
    # Unwrapped coordinates of atoms that crossed boundaries differ by whole lattice vectors.
    unwrapped = Frame(0, frame.boxlo, frame.boxhi, frame.tilt, frame.pbc,
                      {n: (scaled + images)[:, k] for k, n in enumerate(("xsu", "ysu", "zsu"))})
    np.testing.assert_allclose(unwrapped.positions() - positions, images @ frame.cell(), atol=1e-12)


def test_species_through_type_map_and_the_missing_type_error():
    frame = make_frame(natoms=6)
    frame.columns["type"] = np.array([1, 2, 2, 1, 3, 4])
    with pytest.raises(LammpsPhaseError, match=r"atom types 3 4 have no element name.*--types \"Si O\""):
        frame.species(["Si", "O"])
    with pytest.raises(LammpsPhaseError, match="no type map was given"):
        frame.species(None)
    assert frame.species(["Si", "O", "Ge", "C"]).tolist() == ["Si", "O", "O", "Si", "Ge", "C"]


def test_frame_without_coordinates(tmp_path):
    path = tmp_path / "nocoords.dump"
    path.write_text("ITEM: TIMESTEP\n5\nITEM: NUMBER OF ATOMS\n1\nITEM: BOX BOUNDS pp pp pp\n0 1\n0 1\n0 1\n"
                    "ITEM: ATOMS id type vx\n1 1 0.5\n")
    (frame,) = list(read_dump(path))
    with pytest.raises(LammpsPhaseError, match=r"no coordinate columns \(need x y z, xs ys zs, xu yu zu or xsu ysu zsu\)"):
        frame.positions()
