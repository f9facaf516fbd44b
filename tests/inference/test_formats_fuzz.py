"""Property-based tests of the readers (lammps_phase.inference.formats): any bytes give frames or one LammpsPhaseError.

Damaged versions of valid dumps, data files and extended XYZ files (tokens replaced by hostile values, lines
dropped, duplicated or cut, the whole optionally gzip-compressed and the stream truncated), and arbitrary
bytes, are read completely; the only exception allowed is LammpsPhaseError, and every file must be read
within the deadline (no hang, no quadratic blow-up).
"""

from __future__ import annotations

import gzip
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.formats import count_frames, detect_format, read_frames

DUMP = """ITEM: TIMESTEP
100
ITEM: NUMBER OF ATOMS
4
ITEM: BOX BOUNDS pp pp pp
0.0 10.0
0.0 10.0
0.0 10.0
ITEM: ATOMS id type x y z vx
1 1 0.5 0.5 0.5 0.1
2 2 2.5 0.5 0.5 -0.2
3 1 0.5 2.5 0.5 0.0
4 2 0.5 0.5 2.5 1e-3
ITEM: TIMESTEP
200
ITEM: NUMBER OF ATOMS
4
ITEM: BOX BOUNDS xy xz yz pp pp ff
0.0 11.0 1.0
0.0 10.0 0.0
0.0 10.0 0.0
ITEM: ATOMS id type xs ys zs c_pe
1 1 0.05 0.05 0.05 -3.2
2 2 0.25 0.05 0.05 -3.1
3 1 0.05 0.25 0.05 -3.0
4 2 0.05 0.05 0.25 -2.9
"""

DATA = """LAMMPS data file

4 atoms
2 atom types

0.0 10.0 xlo xhi
0.0 10.0 ylo yhi
0.0 10.0 zlo zhi
1.0 0.0 0.0 xy xz yz

Masses

1 28.085 # Si
2 15.999 # O

Atoms # charge

1 1 2.4 0.5 0.5 0.5
2 2 -1.2 2.5 0.5 0.5
3 2 -1.2 0.5 2.5 0.5 0 0 1
4 1 2.4 0.5 0.5 2.5

Velocities

1 0 0 0
"""

XYZ = """4
Lattice="10.0 0.0 0.0 1.0 10.0 0.0 0.0 0.0 10.0" Properties=species:S:1:pos:R:3:forces:R:3 pbc="T T F" timestep=7
Si 0.5 0.5 0.5 0 0 0
O 2.5 0.5 0.5 0 0 1
Si 0.5 2.5 0.5 0 1 0
O 0.5 0.5 2.5 1 0 0
2
plain comment
Cu 0 0 0
Cu 1.8 1.8 0
2
Lattice="3.6 0 0 0 3.6 0 0 0 3.6" Origin="1 1 1" Properties=species:S:1:pos:R:3:tags:I:1:mask:L:1:c:R:2
Cu 1 1 1 5 T 0.1 0.2
Cu 2.8 2.8 1 6 F 0.3 0.4
"""

SEEDS = {"dump": DUMP, "data": DATA, "extxyz": XYZ}
HOSTILE = ["-1", "-4", "0", "1", "3", "nan", "inf", "-inf", "1e999", "99999999999999999999", "1e-320", "", " ",
           "abc", "ITEM:", "ITEM: ATOMS", "ITEM: TIMESTEP", "atoms", "xlo xhi", "Atoms", "#", '"', "=", "T", "0x10",
           "\x00", "\u00e9", "1,5", "--", "4 atoms", "Lattice=\"1 2\"", "Properties=pos:R:3", "pp", "xy xz yz",
           "Origin=\"a b c\"", "Origin=\"1 2\"", "Properties=pos:R:999999999", "Properties=pos:R:-3", "pbc=\"T T\"",
           "Lattice=\"nan 0 0 0 1 0 0 0 1\"", "species:S:1:pos:R:3", "R:3", "S:0", "Masses", "Velocities", "1 atom types"]
DEADLINE = timedelta(seconds=3)
FUZZ = settings(max_examples=150, deadline=DEADLINE, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def read_everything(path: Path) -> int:
    """Read all frames and what classify takes from them; returns the frame count, or -1 for a clear error."""
    try:
        count_frames(path)  # never raises: None when unknown or damaged
        n = 0
        for frame in read_frames(path):
            frame.cell()
            try:
                positions = frame.positions()
                assert positions.shape == (frame.natoms, 3)
                frame.species(["Si", "O", "Cu"])
            except LammpsPhaseError:
                pass
            n += 1
        return n
    except LammpsPhaseError as err:
        assert str(err).strip() and "\n" not in str(err).strip(), repr(str(err))
        return -1


@st.composite
def damaged(draw) -> bytes:
    """A seed file with a few hostile edits, maybe gzip-compressed and maybe cut short."""
    text = SEEDS[draw(st.sampled_from(sorted(SEEDS)))]
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["token", "token", "token", "drop", "dup", "insert", "cut"]))
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        if op == "token":
            words = lines[i].rstrip("\n").split(" ")
            j = draw(st.integers(0, len(words) - 1))
            words[j] = draw(st.sampled_from(HOSTILE) | st.text(max_size=6))
            lines[i] = " ".join(words) + "\n"
        elif op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "insert":
            lines.insert(i, draw(st.sampled_from(HOSTILE)) + "\n")
        else:
            lines = lines[:i] + [lines[i][: draw(st.integers(0, len(lines[i])))]]
    data = "".join(lines).encode("utf-8", errors="surrogatepass") if lines else b""
    if draw(st.booleans()):
        data = gzip.compress(data)
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]
    return data


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def test_seeds_are_read_as_written(scratch):
    """The undamaged seeds are valid files: the fuzzing starts from real input, not from noise."""
    counts = {}
    for name, text in SEEDS.items():
        path = scratch / f"seed.{name}"
        path.write_text(text)
        assert detect_format(path) == name
        frames = list(read_frames(path))
        counts[name] = len(frames)
        assert all(f.natoms in (2, 4) for f in frames)
    assert counts == {"dump": 2, "data": 1, "extxyz": 3}
    dump = list(read_frames(scratch / "seed.dump"))
    # triclinic bounding box 0..11 with xy = 1: lx = 10, x = xs*lx + ys*xy
    np.testing.assert_allclose(dump[1].positions()[1], [0.25 * 10 + 0.05 * 1.0, 0.5, 0.5], atol=1e-12)


@FUZZ
@given(data=damaged())
def test_damaged_files_give_frames_or_one_clear_error(scratch, data):
    path = scratch / "damaged"
    path.write_bytes(data)
    read_everything(path)


@FUZZ
@given(data=st.binary(max_size=3000))
def test_arbitrary_bytes_give_frames_or_one_clear_error(scratch, data):
    path = scratch / "bytes"
    path.write_bytes(data)
    read_everything(path)


@settings(max_examples=60, deadline=DEADLINE, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(name=st.sampled_from(sorted(SEEDS)), cut=st.floats(0.0, 0.999))
def test_truncated_gzip_is_a_clear_error(scratch, name, cut):
    """A gzip stream cut anywhere is either a clean prefix the reader judges, or 'truncated or corrupt'."""
    data = gzip.compress(SEEDS[name].encode())
    path = scratch / "cut.gz"
    path.write_bytes(data[: int(len(data) * cut)])
    n = read_everything(path)
    assert n == -1  # the text inside a cut stream is never a complete file


def test_specific_damage_is_named(scratch):
    cases = {
        "negative atoms": (DUMP.replace("ITEM: NUMBER OF ATOMS\n4", "ITEM: NUMBER OF ATOMS\n-4", 1), "NUMBER OF ATOMS is -4"),
        "huge atoms": (DUMP.replace("ITEM: NUMBER OF ATOMS\n4", "ITEM: NUMBER OF ATOMS\n99999999999999999999", 1),
                       "NUMBER OF ATOMS is"),
        "huge xyz count": (XYZ.replace("4\n", "99999999999999999999\n", 1), "larger than any file"),
    }
    for name, (text, message) in cases.items():
        path = scratch / "case"
        path.write_text(text)
        with pytest.raises(LammpsPhaseError, match=message):
            list(read_frames(path))
    path = scratch / "corrupt.gz"
    data = bytearray(gzip.compress(DUMP.encode()))
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(LammpsPhaseError, match="gzip stream is truncated or corrupt"):
        list(read_frames(path))
    with pytest.raises(LammpsPhaseError, match="is a folder"):
        read_frames(scratch)
