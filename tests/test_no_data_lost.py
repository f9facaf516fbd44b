"""Nothing is lost: atomic writes (lammps_phase.atomic_write); the trainer's guard on existing checkpoints is
tested in tests/training/test_outputs.py."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from lammps_phase.atomic_write import atomic_path, atomic_paths, check_output, write_text
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.formats import DumpWriter, Frame, read_dump, write_lammps_data


def _frame(n: int = 3) -> Frame:
    cols = {"id": np.arange(1, n + 1), "type": np.ones(n, dtype=np.int64), "x": np.arange(n, dtype=float),
            "y": np.zeros(n), "z": np.zeros(n)}
    return Frame(0, np.zeros(3), np.full(3, 10.0), np.zeros(3), (True, True, True), cols)


def test_a_failing_block_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]
    write_text(target, "new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]


def test_the_file_mode_is_kept_or_follows_the_umask(tmp_path):
    kept = tmp_path / "kept.txt"
    kept.write_text("x")
    os.chmod(kept, 0o640)
    write_text(kept, "y")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    fresh = tmp_path / "fresh.txt"
    write_text(fresh, "z")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600


def test_several_files_appear_together_or_not_at_all(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.png"
    a.write_text("old a")
    with pytest.raises(ValueError):
        with atomic_paths([a, b]) as (ta, tb):
            ta.write_text("new a")
            assert tb.suffix == ".png"  # the extension is kept: matplotlib and numpy choose the format by it
            raise ValueError("the plot failed")
    assert a.read_text() == "old a" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_dump_writer_commits_at_close_and_discards_on_error(tmp_path):
    out = tmp_path / "out.dump.gz"
    out.write_bytes(b"earlier result")
    with pytest.raises(LammpsPhaseError):
        with DumpWriter(out) as writer:
            writer.write(_frame())
            raise LammpsPhaseError("frame 2 is damaged")
    assert out.read_bytes() == b"earlier result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.dump.gz"]
    with DumpWriter(out) as writer:
        writer.write(_frame(4))
    assert [f.natoms for f in read_dump(out)] == [4]  # gzip chosen by the target's name, not the temporary's


def test_data_file_writer_is_atomic(tmp_path):
    out = tmp_path / "x.data"
    out.write_text("keep me")
    with pytest.raises(LammpsPhaseError):
        write_lammps_data(out, np.zeros((1, 3)), np.eye(3) * 5, ["Si"], ["Si"], atom_style="charge")  # no charges
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("make, message", [
    (lambda d: (d / "f").mkdir() or d / "f", "is a folder"),
    (lambda d: d / "missing" / "x.dump", "does not exist"),
    (lambda d: (d / "file").write_text("") or d / "file" / "x.dump", "is a file, not a folder"),
    (lambda d: "/dev/null", "not a regular file"),
])
def test_output_paths_that_cannot_be_written_are_refused(tmp_path, make, message):
    with pytest.raises(LammpsPhaseError, match=message):
        check_output(make(tmp_path), option="-o")


def test_an_output_is_never_an_input_whatever_the_spelling(tmp_path):
    src = tmp_path / "in.dump"
    src.write_text("x")
    os.link(src, tmp_path / "hard.dump")
    os.symlink(src, tmp_path / "soft.dump")
    (tmp_path / "sub").mkdir()
    for spelling in (src, tmp_path / "sub" / ".." / "in.dump", tmp_path / "hard.dump", tmp_path / "soft.dump"):
        with pytest.raises(LammpsPhaseError, match="also an input"):
            check_output(spelling, inputs=[src], option="-o")
    assert check_output(tmp_path / "other.dump", inputs=[src]) == tmp_path / "other.dump"
