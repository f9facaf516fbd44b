"""`lammps-phase classify` on a terminal: the progress bar, the per-frame table and error messages never share a line.

On a terminal stdout (the table) and stderr (the bar, errors) land on one screen. The tests send both streams to one
buffer, replay it the way a terminal does ("\\r" returns to column 0 and later text overwrites) and look at the
screen's lines.
"""

import contextlib
import io
import re
import sys

import numpy as np

from lammps_phase import cli
from lammps_phase.inference.formats import DumpWriter, Frame
from lammps_phase.data.structures import build, supercell

TABLE_ROW = re.compile(r"^\s*(\d+)(\s+\d\.\d{4})+\s*$")


def screen(text: str) -> list[str]:
    """The lines a terminal shows for ``text``: carriage returns go back to column 0, characters overwrite."""
    lines = []
    for raw in text.split("\n"):
        row: list[str] = []
        col = 0
        for ch in raw:
            if ch == "\r":
                col = 0
                continue
            if col < len(row):
                row[col] = ch
            else:
                row.append(ch)
            col += 1
        lines.append("".join(row).rstrip())
    return lines


def run_on_terminal(argv, monkeypatch) -> tuple[int, str]:
    """Run the CLI with stdout and stderr going into one buffer, like a terminal; the bar is drawn (no -q) and,
    as in a long run where each frame takes longer than tqdm's refresh interval, redrawn after every frame."""
    make_bar = cli._bar

    def every_frame(total, quiet):
        bar = make_bar(total, quiet)
        bar.mininterval, bar.miniters, bar.dynamic_miniters = 0.0, 1, False
        return bar

    monkeypatch.setattr(cli, "_bar", every_frame)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        rc = cli.main(argv)
    return rc, buf.getvalue()


def _dump(path, timesteps, bad_last=False):
    c = supercell(build("alpha_quartz"), 9.0)
    rng = np.random.default_rng(0)
    sym = np.array(c.symbols)
    types = np.where(sym == "Si", 1, 2)
    with DumpWriter(path) as w:
        for i, ts in enumerate(timesteps):
            pos = c.positions + rng.normal(scale=0.05, size=c.positions.shape)
            if bad_last and i == len(timesteps) - 1:
                types = np.where(sym == "Si", 1, 3)  # type 3 is not in the type map → error on this frame
            cols = {"id": np.arange(1, len(pos) + 1), "type": types, "x": pos[:, 0], "y": pos[:, 1], "z": pos[:, 2]}
            w.write(Frame(ts, np.zeros(3), np.diag(c.cell).copy(), np.zeros(3), (True, True, True), cols))


def test_table_rows_and_bar_on_separate_lines(tmp_path, monkeypatch, random_sio2_checkpoint):
    src = tmp_path / "in.dump"
    _dump(src, [0, 100, 200])
    rc, text = run_on_terminal(["classify", str(src), "--model", str(random_sio2_checkpoint), "--types", "Si O",
                                "-o", str(tmp_path / "out.dump"), "--device", "cpu"], monkeypatch)
    assert rc == 0, text
    assert "frame" in text and "|" in text, "the progress bar should have been drawn"
    lines = screen(text)
    rows = [line for line in lines if TABLE_ROW.match(line)]
    assert [int(TABLE_ROW.match(r).group(1)) for r in rows] == [0, 100, 200], "\n".join(lines)
    header = [line for line in lines if line.startswith("timestep")]
    assert len(header) == 1 and "other" in header[0]
    # nothing of the bar is left on a table line, nor a table value on a bar line
    for line in lines:
        if "frame/s" in line or "it/s" in line or "|" in line:
            assert not re.search(r"\d\.\d{4}\s+\d\.\d{4}", line), f"table row on the bar's line: {line!r}"
    assert any(line.startswith("wrote 3 frame(s)") for line in lines), "\n".join(lines)


def test_error_message_starts_its_own_line(tmp_path, monkeypatch, random_sio2_checkpoint):
    src = tmp_path / "in.dump"
    _dump(src, [0, 100], bad_last=True)
    rc, text = run_on_terminal(["classify", str(src), "--model", str(random_sio2_checkpoint), "--types", "Si O",
                                "-o", str(tmp_path / "out.dump"), "--device", "cpu"], monkeypatch)
    assert rc == 2, text
    lines = screen(text)
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1, "\n".join(lines)
    assert re.match(r"^\S+: error: atom types 3 have no element name", errors[0]), f"shares a line: {errors[0]!r}"
    rows = [line for line in lines if TABLE_ROW.match(line)]
    assert [int(TABLE_ROW.match(r).group(1)) for r in rows] == [0], "\n".join(lines)
