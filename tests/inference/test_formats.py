"""Readers and writers: round trips, LAMMPS's box conventions, and one clear error per broken input."""

from __future__ import annotations

import gzip
import itertools

import numpy as np
import pytest

from lammps_phase.cell import lammps_cell
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.formats import (
    DumpWriter,
    Frame,
    count_frames,
    detect_format,
    read_data,
    read_dump,
    read_extxyz,
    read_frames,
    write_lammps_data,
)


def make_frame(natoms: int = 40, tilt=(0.0, 0.0, 0.0), pbc=(True, True, True), timestep: int = 100,
               seed: int = 0) -> Frame:
    rng = np.random.default_rng(seed)
    boxlo = np.array([-1.5, 0.25, 2.0])
    boxhi = boxlo + np.array([10.0, 8.0, 12.0])
    frame = Frame(timestep, boxlo, boxhi, np.array(tilt, float), tuple(pbc), {})
    scaled = rng.random((natoms, 3))
    xyz = boxlo + scaled @ frame.cell()
    frame.columns = {
        "id": np.arange(1, natoms + 1, dtype=np.int64),
        "type": rng.integers(1, 3, natoms).astype(np.int64),
        "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
        "vx": rng.normal(size=natoms),
    }
    return frame


def pairwise(positions: np.ndarray) -> np.ndarray:
    return np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)


def assert_same_box(a: Frame, b: Frame) -> None:
    np.testing.assert_allclose(a.boxlo, b.boxlo, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(a.boxhi, b.boxhi, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(a.tilt, b.tilt, rtol=1e-14, atol=1e-14)
    assert tuple(a.pbc) == tuple(b.pbc)


# ---------------------------------------------------------------------------------------------- dumps


@pytest.mark.parametrize("suffix", ["dump", "dump.gz"])
@pytest.mark.parametrize("tilt,pbc", [((0, 0, 0), (True, True, True)), ((2.5, -1.25, 0.75), (True, True, False))])
def test_dump_round_trip_multi_frame_with_extra_columns(tmp_path, suffix, tilt, pbc):
    path = tmp_path / f"out.{suffix}"
    frames = [make_frame(tilt=tilt, pbc=pbc, timestep=100 * k, seed=k) for k in range(3)]
    extras = [{"phase": np.arange(40, dtype=np.int64) % 4, "confidence": np.linspace(0.5, 0.99, 40)} for _ in frames]
    with DumpWriter(path) as writer:
        for frame, extra in zip(frames, extras):
            writer.write(frame, extra=extra)
    if suffix.endswith(".gz"):
        with open(path, "rb") as handle:
            assert handle.read(2) == b"\x1f\x8b"
    assert detect_format(path) == "dump"
    assert count_frames(path) == 3
    back = list(read_frames(path))
    assert [f.timestep for f in back] == [0, 100, 200]
    for original, extra, read in zip(frames, extras, back):
        assert_same_box(original, read)
        assert read.triclinic == any(tilt)
        assert list(read.columns) == list(original.columns) + ["phase", "confidence"]
        assert read.columns["id"].dtype == np.int64 and read.columns["phase"].dtype == np.int64
        assert read.columns["vx"].dtype == np.float64
        np.testing.assert_array_equal(read.columns["type"], original.columns["type"])
        np.testing.assert_array_equal(read.columns["phase"], extra["phase"])
        # %.8g for coordinates, %.6g for other floats: equal to printed precision.
        np.testing.assert_allclose(read.positions(), original.positions(), rtol=1e-7, atol=0)
        np.testing.assert_allclose(read.columns["vx"], original.columns["vx"], rtol=1e-5, atol=0)
        np.testing.assert_allclose(read.columns["confidence"], extra["confidence"], rtol=1e-5)
        np.testing.assert_allclose(read.cell(), original.cell(), rtol=1e-14, atol=1e-14)


def test_triclinic_dump_header_holds_the_bounding_box(tmp_path):
    frame = make_frame(tilt=(2.5, -1.25, 0.75))
    path = tmp_path / "tri.dump"
    with DumpWriter(path) as writer:
        writer.write(frame)
    lines = path.read_text().splitlines()
    assert lines[4] == "ITEM: BOX BOUNDS xy xz yz pp pp pp"
    bounds = np.array([[float(v) for v in line.split()] for line in lines[5:8]])
    # x: min(0, xy, xz, xy+xz) = -1.25, max = 2.5; y: min(0, yz) = 0, max = 0.75.
    np.testing.assert_allclose(bounds[:, 0], frame.boxlo + [-1.25, 0.0, 0.0])
    np.testing.assert_allclose(bounds[:, 1], frame.boxhi + [2.5, 0.75, 0.0])
    np.testing.assert_allclose(bounds[:, 2], [2.5, -1.25, 0.75])


def test_hand_written_triclinic_dump_with_scaled_coordinates(tmp_path):
    text = """ITEM: UNITS
metal
ITEM: TIMESTEP
4200
ITEM: NUMBER OF ATOMS
2
ITEM: BOX BOUNDS xy xz yz pp pp fs
-1.0 12.0 2.0
0.0 5.0 0.0
1.0 7.0 -1.0
ITEM: ATOMS id type xs ys zs c_pe
7 2 0.5 0.5 0.5 -3.25
3 1 0 1 0.25 1
"""
    path = tmp_path / "hand.lammpstrj"
    path.write_text(text)
    (frame,) = list(read_dump(path))
    assert frame.timestep == 4200
    assert frame.pbc == (True, True, False)
    assert frame.boundary == ("pp", "pp", "fs")
    # xlo = -1 - min(0, 2, 0, 2) = -1, xhi = 12 - max(0, 2, 0, 2) = 10; ylo = 0 - min(0, -1) = 1, yhi = 5.
    np.testing.assert_allclose(frame.boxlo, [-1.0, 1.0, 1.0])
    np.testing.assert_allclose(frame.boxhi, [10.0, 5.0, 7.0])
    np.testing.assert_allclose(frame.tilt, [2.0, 0.0, -1.0])
    np.testing.assert_allclose(frame.cell(), [[11, 0, 0], [2, 4, 0], [0, -1, 6]])
    # x = xlo + xs*lx + ys*xy + zs*xz; y = ylo + ys*ly + zs*yz; z = zlo + zs*lz.
    np.testing.assert_allclose(frame.positions(), [[-1 + 5.5 + 1.0, 1 + 2.0 - 0.5, 1 + 3.0],
                                                   [-1 + 0 + 2.0, 1 + 4.0 - 0.25, 1 + 1.5]])
    np.testing.assert_array_equal(frame.columns["id"], [7, 3])
    assert frame.columns["c_pe"].dtype == np.float64  # a compute is a float even when it prints "1"


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


def test_extra_column_with_an_existing_name_replaces_it_in_place(tmp_path):
    frame = make_frame(natoms=4)
    path = tmp_path / "replace.dump"
    with DumpWriter(path) as writer:
        writer.write(frame, extra={"type": np.array([2, 2, 2, 2])})
    (read,) = list(read_dump(path))
    assert list(read.columns) == list(frame.columns)
    assert read.columns["type"].tolist() == [2, 2, 2, 2]


def test_reading_is_lazy_frame_by_frame(tmp_path):
    path = tmp_path / "lazy.dump"
    with DumpWriter(path) as writer:
        writer.write(make_frame(timestep=0))
        writer.write(make_frame(timestep=10))
    text = path.read_text().splitlines(keepends=True)
    path.write_text("".join(text[: len(text) - 30]))  # second frame loses 30 of its 40 atom lines
    frames = read_dump(path)
    assert next(frames).timestep == 0  # the first frame arrives before the damage is reached
    with pytest.raises(LammpsPhaseError, match=r"frame at timestep 10 is truncated: expected 40 atom lines, found 10"):
        next(frames)


def test_lammps_itself_agrees_on_triclinic_dumps_and_our_data_files(tmp_path):
    lammps = pytest.importorskip("lammps")
    rng = np.random.default_rng(7)
    cell = np.array([[9.0, 0.0, 0.0], [2.0, 8.0, 0.0], [-1.5, 1.0, 7.0]])
    positions = rng.random((30, 3)) @ cell + [1.0, -2.0, 0.5]
    species = np.where(np.arange(30) % 3 == 0, "Si", "O")
    data = tmp_path / "in.data"
    write_lammps_data(data, positions, cell, species, ["Si", "O"], charges={"Si": 2.4, "O": -1.2},
                      origin=(1.0, -2.0, 0.5), atom_style="charge")
    dump = tmp_path / "lmp.dump"
    lmp = lammps.lammps(cmdargs=["-screen", "none", "-log", "none"])
    try:
        for command in ("units metal", "atom_style charge", "boundary p p p", f"read_data {data}",
                        f"write_dump all custom {dump} id type q x y z xs ys zs xu yu zu"):
            lmp.command(command)
        ids = np.array(lmp.numpy.extract_atom("id"))
        lmp_x = np.array(lmp.numpy.extract_atom("x"))[np.argsort(ids)]
        lmp_box = lmp.extract_box()
    finally:
        lmp.close()
    (frame,) = list(read_dump(dump))
    order = np.argsort(frame.columns["id"])
    # LAMMPS wraps atoms into the box on read_data; compare modulo lattice vectors.
    np.testing.assert_allclose(frame.positions()[order], lmp_x, atol=1e-4)  # LAMMPS prints %g
    shift = (lmp_x - positions) @ np.linalg.inv(cell)
    np.testing.assert_allclose(shift, np.round(shift), atol=1e-9)
    np.testing.assert_allclose(frame.boxlo, lmp_box[0], atol=1e-12)
    np.testing.assert_allclose(frame.boxhi, lmp_box[1], atol=1e-12)
    xy, yz, xz = lmp_box[2:5]  # extract_box order: boxlo, boxhi, xy, yz, xz, periodicity, box_change
    np.testing.assert_allclose(frame.tilt, [xy, xz, yz], atol=1e-12)
    np.testing.assert_allclose(frame.tilt, [cell[1, 0], cell[2, 0], cell[2, 1]], atol=1e-12)
    scaled = Frame(0, frame.boxlo, frame.boxhi, frame.tilt, frame.pbc,
                   {k: frame.columns[k] for k in ("xs", "ys", "zs")})
    np.testing.assert_allclose(scaled.positions(), frame.positions(), atol=1e-4)
    np.testing.assert_allclose(frame.columns["q"][order], np.where(species == "Si", 2.4, -1.2))


# ---------------------------------------------------------------------------------------------- data files


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


# ---------------------------------------------------------------------------------------------- extended XYZ


def test_extxyz_with_a_general_lattice_is_rotated_to_lammps_form(tmp_path):
    rng = np.random.default_rng(5)
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    rotation = rotation @ np.array([[1, 0, 0], [0, np.cos(0.4), -np.sin(0.4)], [0, np.sin(0.4), np.cos(0.4)]])
    lammps_like = np.array([[6.0, 0, 0], [1.0, 5.0, 0], [-0.5, 0.8, 7.0]])
    lattice = lammps_like @ rotation.T
    positions = rng.random((6, 3)) @ lattice
    velocities = rng.normal(size=(6, 3))
    species = ["Si", "O", "O", "Si", "O", "O"]
    frames_text = []
    for step in (0, 50):
        lines = [f"{len(species)}",
                 f'Lattice="{" ".join(f"{v:.17g}" for v in lattice.ravel())}" '
                 f'Properties=species:S:1:pos:R:3:velo:R:3:tag:I:1 Timestep={step} pbc="T T F"']
        lines += [f"{s} {p[0]:.17g} {p[1]:.17g} {p[2]:.17g} {v[0]:.17g} {v[1]:.17g} {v[2]:.17g} {k}"
                  for k, (s, p, v) in enumerate(zip(species, positions, velocities))]
        frames_text.append("\n".join(lines) + "\n")
    path = tmp_path / "cell.extxyz.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("".join(frames_text))
    assert detect_format(path) == "extxyz"
    assert count_frames(path) == 2
    frames = list(read_frames(path))
    assert [f.timestep for f in frames] == [0, 50]
    frame = frames[0]
    np.testing.assert_allclose(frame.cell(), lammps_like, atol=1e-12)
    assert frame.pbc == (True, True, False)
    np.testing.assert_allclose(pairwise(frame.positions()), pairwise(positions), atol=1e-12)
    # Positions stay at the same fractional coordinates, and velocities rotate with them.
    np.testing.assert_allclose(frame.positions() @ np.linalg.inv(frame.cell()),
                               positions @ np.linalg.inv(lattice), atol=1e-12)
    v = np.column_stack([frame.columns[k] for k in ("vx", "vy", "vz")])
    np.testing.assert_allclose(v, velocities @ rotation, atol=1e-12)
    assert frame.species(None).tolist() == species
    assert frame.columns["tag"].dtype == np.int64 and frame.columns["tag"].tolist() == list(range(6))


def test_lammps_cell_rejects_left_handed_cells():
    with pytest.raises(LammpsPhaseError, match="left-handed"):
        lammps_cell(np.diag([1.0, 1.0, -1.0]))


# ---------------------------------------------------------------------------------------------- species


def test_species_through_type_map_and_the_missing_type_error():
    frame = make_frame(natoms=6)
    frame.columns["type"] = np.array([1, 2, 2, 1, 3, 4])
    with pytest.raises(LammpsPhaseError, match=r"atom types 3 4 have no element name.*--types \"Si O\""):
        frame.species(["Si", "O"])
    with pytest.raises(LammpsPhaseError, match="no type map was given"):
        frame.species(None)
    assert frame.species(["Si", "O", "Ge", "C"]).tolist() == ["Si", "O", "O", "Si", "Ge", "C"]


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("compress", [False, True])
def test_empty_files(tmp_path, compress):
    path = tmp_path / ("empty.dump.gz" if compress else "empty.dump")
    if compress:
        with gzip.open(path, "wt") as handle:
            handle.write("\n\n")
    else:
        path.write_text("")
    with pytest.raises(LammpsPhaseError, match=r"empty\.dump(\.gz)?: file is empty"):
        detect_format(path)
    with pytest.raises(LammpsPhaseError, match="is empty"):
        list(read_dump(path))
    with pytest.raises(LammpsPhaseError, match="is empty"):
        read_frames(path)
    assert count_frames(path) is None


def test_truncated_dump_header_and_atoms(tmp_path):
    path = tmp_path / "cut.dump.gz"
    with DumpWriter(path) as writer:
        writer.write(make_frame(timestep=200))
    with gzip.open(path, "rt") as handle:
        lines = handle.read().splitlines(keepends=True)
    cuts = {12: "is truncated: expected 40 atom lines, found 3", 8: "is truncated: header ends before 'ITEM: ATOMS'",
            6: "is truncated: file ends after 'ITEM: BOX BOUNDS pp pp pp'",
            3: "is truncated: file ends after 'ITEM: NUMBER OF ATOMS'"}
    for keep, message in cuts.items():
        with gzip.open(path, "wt") as handle:
            handle.write("".join(lines[:keep]))
        timestep = "at timestep 200" if keep > 1 else ""
        with pytest.raises(LammpsPhaseError, match=f"cut.dump.gz: frame {timestep}.*{message}"):
            list(read_dump(path))


def test_malformed_atom_line(tmp_path):
    path = tmp_path / "bad.dump"
    with DumpWriter(path) as writer:
        writer.write(make_frame(natoms=5, timestep=9))
    lines = path.read_text().splitlines()
    lines[-2] = "4 1 0.5 0.5"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LammpsPhaseError, match="bad.dump: frame at timestep 9: malformed atom line"):
        list(read_dump(path))


def test_truncated_data_file(tmp_path):
    path = tmp_path / "cut.data"
    path.write_text(DATA_HEADER.format(tilt="", atoms="Atoms # atomic\n\n1 1 0.5 0.5 1.0\n2 2 1.5 0.5 1.0"))
    with pytest.raises(LammpsPhaseError, match="cut.data: Atoms section is truncated: expected 3 atom lines, found 2"):
        read_data(path)


def test_frame_without_coordinates(tmp_path):
    path = tmp_path / "nocoords.dump"
    path.write_text("ITEM: TIMESTEP\n5\nITEM: NUMBER OF ATOMS\n1\nITEM: BOX BOUNDS pp pp pp\n0 1\n0 1\n0 1\n"
                    "ITEM: ATOMS id type vx\n1 1 0.5\n")
    (frame,) = list(read_dump(path))
    with pytest.raises(LammpsPhaseError, match=r"no coordinate columns \(need x y z, xs ys zs, xu yu zu or xsu ysu zsu\)"):
        frame.positions()


def test_unknown_format(tmp_path):
    path = tmp_path / "mystery.cfg"
    path.write_text("Number of particles = 4\nA = 1.0 Angstrom\n")
    with pytest.raises(LammpsPhaseError, match="mystery.cfg: unknown file format.*supported: LAMMPS text dump"):
        detect_format(path)
    assert count_frames(path) is None
    with pytest.raises(LammpsPhaseError, match="unknown format 'pdb'"):
        read_frames(path, fmt="pdb")
    with pytest.raises(LammpsPhaseError, match="no such file"):
        detect_format(tmp_path / "absent.dump")


def test_write_lammps_data_errors(tmp_path):
    cell = np.eye(3) * 5
    positions = np.zeros((2, 3))
    with pytest.raises(LammpsPhaseError, match="species Xe are not in the type map"):
        write_lammps_data(tmp_path / "a.data", positions, cell, ["Si", "Xe"], ["Si", "O"])
    with pytest.raises(LammpsPhaseError, match=r"no mass known for Uuo; pass masses="):
        write_lammps_data(tmp_path / "b.data", positions, cell, ["Uuo", "Uuo"], ["Uuo"])
    with pytest.raises(LammpsPhaseError, match="atom_style 'charge' needs charges"):
        write_lammps_data(tmp_path / "c.data", positions, cell, ["Si", "O"], ["Si", "O"], atom_style="charge")


def test_dump_writer_rejects_columns_of_the_wrong_length(tmp_path):
    with DumpWriter(tmp_path / "w.dump") as writer:
        with pytest.raises(LammpsPhaseError, match=r"column 'phase' has shape \(3,\), expected \(40,\)"):
            writer.write(make_frame(), extra={"phase": np.zeros(3, dtype=int)})


def test_count_frames_matches_frames_read(tmp_path):
    path = tmp_path / "many.dump"
    with DumpWriter(path) as writer:
        for step in range(7):
            writer.write(make_frame(natoms=3, timestep=step))
    frames = list(itertools.islice(read_dump(path), 10))
    assert count_frames(path) == len(frames) == 7
    path_xyz = tmp_path / "one.xyz"
    path_xyz.write_text("1\nplain xyz\nAr 0 0 0\n")
    (frame,) = list(read_extxyz(path_xyz))
    assert frame.pbc == (False, False, False) and count_frames(path_xyz) == 1
