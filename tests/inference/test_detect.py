"""Format detection, read_frames and count_frames: by content, empty and unknown files, cheap frame counts."""

from __future__ import annotations

import gzip
import itertools

import pytest

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.formats import (
    DumpWriter,
    count_frames,
    detect_format,
    read_dump,
    read_extxyz,
    read_frames,
)

from frame_helpers import make_frame


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
