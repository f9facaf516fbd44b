"""Bad-input corpus for every entry point: `lammps-phase {classify,info,report,doctor}` and `lammps-phase-train`.

Each case is a command a new user (or an attacker) might type, with files that are damaged, wrong or in the
wrong place. A case passes when the command exits with status 2 and prints exactly one line starting with
`lammps-phase: error:` and no traceback, and when every file that existed before is unchanged and nothing
new is left behind. Commands run in-process (one torch import for all), in a scratch workspace; the
trainer's heating stage is replaced by a tripwire (a config that passed every check would start hours of
MD) and the "shipped checkpoints" folder points at a copy.

    python benchmarks/bad_inputs.py            # table: kind -> clear errors / tracebacks / other / lost files
    python benchmarks/bad_inputs.py -v         # plus every case's error line

tests/test_bad_inputs.py runs the same corpus under pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import os
import pickle
import sys
import tempfile
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from lammps_phase.model import checkpoint as ckpt_io
from lammps_phase.training import outputs, pipeline
from lammps_phase.cli import main, train_main
from lammps_phase.inference.formats import DumpWriter, Frame
from lammps_phase.model.network import ModelConfig, PhaseNet
from lammps_phase.data.structures import build, supercell

PREFIX = "lammps-phase: error:"
CLASSES = ["alpha_quartz", "coesite", "stishovite", "amorphous"]

TINY = """name = "tiny"
elements = ["Si", "O"]
potential = "bks_dsf"
output = "tiny.pt"

[runs]
seeds = { train = [1], val = [2], test = [3] }
supercell_min_length = 9.0
snapshot_every_ps = 0.1

[[phase]]
name = "alpha_quartz"
pressure_gpa = [0.0]
t_start = 300
t_end = 600
ps = 0.4

[[phase]]
name = "stishovite"
pressure_gpa = [0.0]
t_start = 300
t_end = 600
ps = 0.4

[dataset]
mode = "samples"

[model]
k = 12
channels = [16, 16, 16]
head = [32]
embed_dim = 8

[train]
epochs = 8
batch_size = 2
lr = 0.005

[report]
rotations = 4
"""


@dataclass
class Case:
    kind: str  # row of the table
    name: str
    argv: list[str]
    train: bool = False  # lammps-phase-train instead of lammps-phase
    expect: str = ""  # text the error line must contain (names the problem)


@dataclass
class Outcome:
    case: Case
    status: object
    stderr: str
    changed: list[str] = field(default_factory=list)  # pre-existing files modified or deleted
    left: list[str] = field(default_factory=list)  # new files left behind

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith(PREFIX)]

    @property
    def traceback(self) -> bool:
        return "Traceback" in self.stderr or self.status == "exception"

    @property
    def clear(self) -> bool:
        lines = self.error_lines
        return (self.status == 2 and len(lines) == 1 and not self.traceback
                and self.case.expect.lower() in lines[0].lower())

    @property
    def verdict(self) -> str:
        if self.traceback:
            return "traceback"
        if self.changed or self.left:
            return "lost files"
        return "clear error" if self.clear else "other"


class HeatingStarted(Exception):
    """The tripwire: a bad config got past every check and the trainer began its heating runs."""


# ------------------------------------------------------------------------------------------------ workspace


def _random_checkpoint(path: Path) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(elements=["Si", "O"], num_classes=len(CLASSES), k=12, channels=[16, 16], head=[16], embed_dim=8)
    ckpt_io.save(ckpt_io.Checkpoint("segmentation", cfg, PhaseNet(cfg).state_dict(), list(CLASSES), "bad-inputs"), path)


def _dump_text(natoms_override: Optional[str] = None) -> str:
    crystal = supercell(build("alpha_quartz"), 10.0)
    pos = crystal.positions
    types = np.where(np.array(crystal.symbols) == "Si", 1, 2)
    buf = io.StringIO()
    cell = np.diag(crystal.cell)
    buf.write(f"ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n{natoms_override or len(pos)}\nITEM: BOX BOUNDS pp pp pp\n")
    for k in range(3):
        buf.write(f"0.0 {cell[k]:.6f}\n")
    buf.write("ITEM: ATOMS id type x y z\n")
    for i, (t, p) in enumerate(zip(types, pos)):
        buf.write(f"{i + 1} {t} {p[0]:.6f} {p[1]:.6f} {p[2]:.6f}\n")
    return buf.getvalue()


def _labelled_dump(path: Path, frames: int = 2) -> None:
    rng = np.random.default_rng(0)
    with DumpWriter(path) as writer:
        for k in range(frames):
            n = 400
            cols = {"id": np.arange(1, n + 1), "type": np.ones(n, dtype=np.int64),
                    "x": rng.uniform(0, 60, n), "y": rng.uniform(0, 10, n), "z": rng.uniform(0, 10, n),
                    "vx": rng.normal(0, 1, n), "i_phase": rng.integers(-1, 3, n)}
            writer.write(Frame(100 * k, np.zeros(3), np.array([60.0, 10.0, 10.0]), np.zeros(3), (True,) * 3, cols))


def _damaged_checkpoint(good: Path, path: Path, **changes) -> None:
    payload = torch.load(good, map_location="cpu", weights_only=True)
    for key, value in changes.items():
        if value is KeyError:
            payload.pop(key)
        else:
            payload[key] = value
    torch.save(payload, path)


def build_workspace(root: Path) -> None:
    """Write every input of the corpus into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    w = root
    _random_checkpoint(w / "model.pt")
    good = _dump_text()
    lines = good.splitlines(keepends=True)
    (w / "good.dump").write_text(good)
    (w / "good.dump.gz").write_bytes(gzip.compress(good.encode()))
    (w / "existing_out.dump").write_text("an earlier result that a failed run must not destroy\n")
    (w / "folder").mkdir()
    files = {
        "empty.dump": "",
        "truncated.dump": "".join(lines[: len(lines) // 2]),
        "header_only.dump": "".join(lines[:9]),
        "negative_atoms.dump": _dump_text("-5"),
        "garbage_atoms.dump": _dump_text("many"),
        "huge_atoms.dump": _dump_text("99999999999999999999999"),
        "float_atoms.dump": _dump_text("7.5"),
        "zero_atoms.dump": _dump_text("0").split("ITEM: ATOMS")[0] + "ITEM: ATOMS id type x y z\n",
        "no_coords.dump": good.replace("ITEM: ATOMS id type x y z", "ITEM: ATOMS id type vx vy vz"),
        "no_types.dump": good.replace("ITEM: ATOMS id type x y z", "ITEM: ATOMS id mol x y z"),
        "nan_coords.dump": good.replace(lines[12], "1 1 nan 0.5 0.5\n", 1),
        "text_coords.dump": good.replace(lines[12], "1 1 abc 0.5 0.5\n", 1),
        "short_rows.dump": good.replace(lines[12], "1 1 0.5\n", 1),
        "blank_row.dump": "".join(lines[:-1]) + "\n",
        "inverted_box.dump": good.replace("ITEM: BOX BOUNDS pp pp pp\n0.0 ", "ITEM: BOX BOUNDS pp pp pp\n20.0 ", 1),
        "nan_box.dump": good.replace("ITEM: BOX BOUNDS pp pp pp\n0.0 ", "ITEM: BOX BOUNDS pp pp pp\nnan ", 1),
        "bad_box.dump": good.replace("ITEM: BOX BOUNDS pp pp pp\n0.0 ", "ITEM: BOX BOUNDS pp pp pp\n", 1),
        "general_triclinic.dump": good.replace("ITEM: BOX BOUNDS pp pp pp", "ITEM: BOX BOUNDS abc origin pp pp pp"),
        "float_type.dump": good.replace(lines[12], "1 1.5 0.5 0.5 0.5\n", 1),
        "types_out_of_map.dump": good.replace(lines[12], " ".join(lines[12].split()[:1] + ["3"] + lines[12].split()[2:]) + "\n", 1),
        "garbage.txt": "hello, this is not a trajectory\n",
        "no_atoms_section.data": "title\n\n3 atoms\n1 atom types\n0 1 xlo xhi\n0 1 ylo yhi\n0 1 zlo zhi\n\nMasses\n\n1 1.0\n",
        "odd_style.data": "title\n\n1 atoms\n1 atom types\n0 1 xlo xhi\n0 1 ylo yhi\n0 1 zlo zhi\n\nAtoms # sphere\n\n1 1 1 1 0 0 0\n",
        "bad_masses.data": "title\n\n1 atoms\n1 atom types\n0 1 xlo xhi\n0 1 ylo yhi\n0 1 zlo zhi\n\nMasses\n\nx 1.0\n\nAtoms\n\n1 1 0 0 0\n",
        "bad_lattice.xyz": '2\nLattice="1 2 3" Properties=species:S:1:pos:R:3\nSi 0 0 0\nO 1 1 1\n',
        "nan_lattice.xyz": '2\nLattice="nan 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3\nSi 0 0 0\nO 1 1 1\n',
        "bad_origin.xyz": '2\nLattice="5 0 0 0 5 0 0 0 5" Origin="a b c" Properties=species:S:1:pos:R:3\nSi 0 0 0\nO 1 1 1\n',
        "huge_count.xyz": '99999999999999999999\nLattice="5 0 0 0 5 0 0 0 5"\nSi 0 0 0\n',
        "bad_property_count.xyz": '2\nLattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:99999999\nSi 0 0 0\nO 1 1 1\n',
        "left_handed.xyz": '2\nLattice="0 5 0 5 0 0 0 0 5" Properties=species:S:1:pos:R:3\nSi 0 0 0\nO 1 1 1\n',
        "config_text.pt": "not a checkpoint\n",
    }
    for name, text in files.items():
        (w / name).write_text(text)
    gz = gzip.compress(good.encode())
    (w / "truncated.dump.gz").write_bytes(gz[: len(gz) // 2])
    corrupt = bytearray(gz)
    corrupt[len(corrupt) // 2] ^= 0xFF
    (w / "corrupt.dump.gz").write_bytes(bytes(corrupt))
    (w / "header_only.gz").write_bytes(gz[:10])
    (w / "binary.bin").write_bytes(bytes(range(256)) * 4)
    (w / "latin1.dump").write_bytes(good.replace("ITEM: ATOMS", "ITEM: ATOMS").encode()[:200] + b"\xe9\xff\xfe" + b"\n")
    (w / "empty.pt").write_bytes(b"")
    (w / "truncated.pt").write_bytes((w / "model.pt").read_bytes()[:3000])
    (w / "code.pt").write_bytes(pickle.dumps(Path("x")))  # a pickled object: never unpickled
    torch.save([1, 2, 3], w / "list.pt")
    torch.save({"format_version": 1}, w / "incomplete.pt")
    _damaged_checkpoint(w / "model.pt", w / "metrics_not_json.pt", metrics_json="{not json")
    _damaged_checkpoint(w / "model.pt", w / "metrics_list.pt", metrics_json="[1, 2]")
    _damaged_checkpoint(w / "model.pt", w / "state_list.pt", state_dict=[1, 2, 3])
    _damaged_checkpoint(w / "model.pt", w / "state_values.pt", state_dict={"embed.weight": "zeros"})
    _damaged_checkpoint(w / "model.pt", w / "state_shapes.pt", state_dict={"embed.weight": torch.zeros(2, 2)})
    _damaged_checkpoint(w / "model.pt", w / "config_list.pt", config=[1, 2])
    cfg = torch.load(w / "model.pt", weights_only=True)["config"]
    _damaged_checkpoint(w / "model.pt", w / "config_negative_k.pt", config={**cfg, "k": -3})
    _damaged_checkpoint(w / "model.pt", w / "config_unknown_key.pt", config={**cfg, "colour": "red"})
    _damaged_checkpoint(w / "model.pt", w / "classes_str.pt", classes="alpha_quartz")
    _damaged_checkpoint(w / "model.pt", w / "version_text.pt", format_version="one")
    _damaged_checkpoint(w / "model.pt", w / "version_future.pt", format_version=99)
    _damaged_checkpoint(w / "model.pt", w / "kind_erhard.pt", kind="erhard")
    _damaged_checkpoint(w / "model.pt", w / "no_classes.pt", classes=KeyError)

    _labelled_dump(w / "labelled.dump")
    data = (w / "labelled.dump").read_bytes()
    (w / "labelled_truncated.dump.gz").write_bytes(gzip.compress(data)[:2000])
    (w / "summary_file").write_text("I am a file, not a folder\n")
    (w / "bad_sidecar.dump").write_bytes(data)
    (w / "bad_sidecar.dump.classes.json").write_text("{not json")
    (w / "typed_sidecar.dump").write_bytes(data)
    (w / "typed_sidecar.dump.classes.json").write_text(json.dumps({"classes": ["a", "b", "c"], "timestep_fs": "fast"}))
    (w / "units_sidecar.dump").write_bytes(data)
    (w / "units_sidecar.dump.classes.json").write_text(json.dumps({"units": "lj"}))
    (w / "few_classes.dump").write_bytes(data)
    (w / "few_classes.dump.classes.json").write_text(json.dumps(["only_one"]))
    text = (w / "labelled.dump").read_text().splitlines(keepends=True)
    row = text[9].split()
    row[-1] = "-7"
    (w / "below_minus_one.dump").write_text("".join(text[:9]) + " ".join(row) + "\n" + "".join(text[10:]))
    row[-1] = "0.5"
    (w / "fractional_labels.dump").write_text("".join(text[:9]) + " ".join(row) + "\n" + "".join(text[10:]))
    (w / "no_phase.dump").write_text(good)
    (w / "narrow.dump").write_text("".join(_labelled_text_narrow()))

    (w / "tiny.toml").write_text(TINY)
    (w / "shipped").mkdir()
    (w / "shipped" / "cu.pt").write_bytes((w / "model.pt").read_bytes())
    (w / "existing.pt").write_bytes((w / "model.pt").read_bytes())
    cfgs = {
        "typo_top.toml": TINY.replace('output = "tiny.pt"', 'ouput = "shipped/cu.pt"'),
        "unknown_table.toml": TINY + "\n[trian]\nepochs = 3\n",
        "epoch.toml": TINY.replace("epochs = 8", "epoch = 8"),
        "chanels.toml": TINY.replace("channels = [16, 16, 16]", "chanels = [16, 16, 16]"),
        "batch0.toml": TINY.replace("batch_size = 2", "batch_size = 0"),
        "lr_negative.toml": TINY.replace("lr = 0.005", "lr = -1"),
        "lr_nan.toml": TINY.replace("lr = 0.005", "lr = nan"),
        "epochs0.toml": TINY.replace("epochs = 8", "epochs = 0"),
        "epochs_text.toml": TINY.replace("epochs = 8", 'epochs = "8"'),
        "negative_temperature.toml": TINY.replace("t_start = 300", "t_start = -300", 1),
        "zero_ps.toml": TINY.replace("ps = 0.4", "ps = 0", 1),
        "unknown_potential.toml": TINY.replace('potential = "bks_dsf"', 'potential = "bks"'),
        "unknown_structure.toml": TINY.replace('name = "stishovite"', 'name = "stishovit"'),
        "unknown_model_key.toml": TINY.replace("embed_dim = 8", "embedding = 8"),
        "model_k0.toml": TINY.replace("k = 12", "k = 0"),
        "dropout.toml": TINY.replace("k = 12", "k = 12\ndropout = 1.5"),
        "graph.toml": TINY.replace("k = 12", 'k = 12\ngraph = "knn"'),
        "select.toml": TINY.replace("lr = 0.005", 'lr = 0.005\nselect = "best"'),
        "phi.toml": TINY.replace("lr = 0.005", "lr = 0.005\nphi = 2.0"),
        "kind.toml": TINY.replace('name = "stishovite"', 'name = "stishovite"\nkind = "plasma"'),
        "phase_key.toml": TINY.replace("ps = 0.4", "pss = 0.4", 1),
        "pressures.toml": TINY.replace("pressure_gpa = [0.0]", "pressures = [0.0]", 1),
        "pressure_text.toml": TINY.replace("pressure_gpa = [0.0]", 'pressure_gpa = "high"', 1),
        "pressure_empty.toml": TINY.replace("pressure_gpa = [0.0]", "pressure_gpa = []", 1),
        "lattice.toml": TINY.replace('name = "stishovite"', 'name = "stishovite"\nlattice = { a = 3 }'),
        "structure_file.toml": TINY.replace('name = "stishovite"', 'name = "stishovite"\nstructure = "nowhere.xyz"'),
        "structure_types.toml": TINY.replace('name = "stishovite"', 'name = "stishovite"\nstructure = "good.dump"'),
        "elements.toml": TINY.replace('elements = ["Si", "O"]', 'elements = ["Si", "Ox"]'),
        "elements_missing.toml": TINY.replace('elements = ["Si", "O"]', 'elements = ["Si"]'),
        "elements_potential.toml": TINY.replace('elements = ["Si", "O"]', 'elements = ["Si", "O", "Cu"]'),
        "seeds_overlap.toml": TINY.replace("val = [2]", "val = [1]"),
        "seeds_empty.toml": TINY.replace("train = [1]", "train = []"),
        "ranks0.toml": TINY.replace("snapshot_every_ps = 0.1", "snapshot_every_ps = 0.1\nranks = 0"),
        "dataset_mode.toml": TINY.replace('mode = "samples"', 'mode = "sample"'),
        "notes.toml": TINY + '\n[report.notes]\nalpha_quarz = "labelled below 650 K"\n',
        "model_elements.toml": TINY.replace("k = 12", 'k = 12\nelements = ["Si"]'),
        "name_slash.toml": TINY.replace('name = "tiny"', 'name = "../tiny"'),
        "no_phase.toml": TINY.split("[[phase]]")[0],
        "syntax.toml": TINY.replace("epochs = 8", "epochs = = 8"),
        "output_self.toml": TINY.replace('output = "tiny.pt"', 'output = "output_self.toml"'),
        "output_folder.toml": TINY.replace('output = "tiny.pt"', 'output = "folder"'),
        "output_under_file.toml": TINY.replace('output = "tiny.pt"', 'output = "summary_file/x.pt"'),
        "output_shipped.toml": TINY.replace('output = "tiny.pt"', 'output = "shipped/cu.pt"'),
        "output_existing.toml": TINY.replace('output = "tiny.pt"', 'output = "existing.pt"'),
    }
    for name, text in cfgs.items():
        (w / name).write_text(text)
    (w / "binary.toml").write_bytes(b"\xff\xfe\x00name = 1")


def corpus() -> list[Case]:
    """Every case; paths are relative to the workspace that build_workspace writes (the cwd of each case)."""
    ck = ["--model", "model.pt"]
    out = ["-o", "existing_out.dump"]
    cls = lambda f, *extra: ["classify", f, *ck, "--types", "Si O", *out, "-q", *extra]  # noqa: E731
    cases = [
        # ---------------------------------------------------------------- classify: the input file
        *(Case("classify input", f, cls(f), expect=e) for f, e in [
            ("empty.dump", "empty"), ("truncated.dump", "truncated"), ("header_only.dump", "truncated"),
            ("negative_atoms.dump", "NUMBER OF ATOMS is -5"), ("garbage_atoms.dump", "NUMBER OF ATOMS"),
            ("huge_atoms.dump", "NUMBER OF ATOMS"), ("float_atoms.dump", "NUMBER OF ATOMS"),
            ("zero_atoms.dump", "atom"), ("no_coords.dump", "coordinate"),
            ("no_types.dump", "neither an 'element' nor a 'type'"), ("nan_coords.dump", "finite"),
            ("text_coords.dump", "non-numeric"), ("short_rows.dump", "values"), ("blank_row.dump", "blank"),
            ("inverted_box.dump", "hi <= lo"), ("nan_box.dump", "finite"), ("bad_box.dump", "BOX BOUNDS"),
            ("general_triclinic.dump", "general triclinic"), ("types_out_of_map.dump", "atom types 3"),
            ("garbage.txt", "unknown file format"), ("binary.bin", "unknown file format"),
            ("latin1.dump", "not a text file"), ("truncated.dump.gz", "gzip"), ("corrupt.dump.gz", "gzip"),
            ("header_only.gz", "gzip"), ("no_atoms_section.data", "no 'Atoms' section"),
            ("odd_style.data", "atom style"), ("bad_masses.data", "Masses"), ("bad_lattice.xyz", "Lattice"),
            ("nan_lattice.xyz", "non-finite"), ("bad_origin.xyz", "Origin"), ("huge_count.xyz", "atom count"),
            ("bad_property_count.xyz", "count"), ("left_handed.xyz", "left-handed"),
            ("missing.dump", "no such file"), ("folder", "is a folder"), ("float_type.dump", "must hold integers"),
            ("/dev/zero", "not a regular file"),
        ]),
        Case("classify input", "types_missing", ["classify", "good.dump", *ck, "--types", "Si", *out, "-q"],
             expect="no element name"),
        Case("classify input", "types_unknown_element", ["classify", "good.dump", *ck, "--types", "Cu Cu", *out, "-q"],
             expect="Cu"),
        Case("classify input", "no_type_map", ["classify", "good.dump", *ck, *out, "-q"], expect="--types"),
        # ---------------------------------------------------------------- classify: options and model
        *(Case("classify options", f"threshold {t}", cls("good.dump", "--threshold", t), expect="probability")
          for t in ("1.5", "nan", "-0.1", "inf", "high")),
        *(Case("classify options", f"device {d}", cls("good.dump", "--device", d), expect="device")
          for d in ("meta", "bogus", "cuda:99", "mps", "")),
        Case("classify options", "missing --model", ["classify", "good.dump", "-o", "x.dump"], expect="--model"),
        Case("classify options", "unknown option", cls("good.dump", "--frames", "3"), expect="unrecognized"),
        Case("classify options", "no arguments", ["classify"], expect="required"),
        Case("classify options", "unknown command", ["clasify", "good.dump"], expect="invalid choice"),
        Case("classify options", "no command", [], expect="required"),
        *(Case("classify options", f"model {m}", ["classify", "good.dump", "--model", m, "--types", "Si O", *out, "-q"],
               expect=e) for m, e in [
            ("nope.pt", "does not exist"), ("folder", "is a folder"), ("config_text.pt", "not a lammps-phase checkpoint"),
            ("empty.pt", "not a torch archive"), ("truncated.pt", "not a torch archive"), ("code.pt", "checkpoint"),
            ("list.pt", "top level is list"), ("incomplete.pt", "lacks"), ("metrics_not_json.pt", "metrics are not JSON"),
            ("state_list.pt", "state_dict"), ("state_values.pt", "state_dict"), ("state_shapes.pt", "do not fit"),
            ("config_list.pt", "config"), ("config_negative_k.pt", "checkpoint"), ("config_unknown_key.pt", "colour"),
            ("classes_str.pt", "classes"), ("version_text.pt", "format"), ("version_future.pt", "format version 99"),
            ("kind_erhard.pt", "segmentation"), ("no_classes.pt", "lacks classes"),
        ]),
        # ---------------------------------------------------------------- classify: the output path
        Case("classify output", "-o into a missing folder",
             ["classify", "good.dump", *ck, "--types", "Si O", "-o", "nowhere/out.dump", "-q"], expect="does not exist"),
        Case("classify output", "-o onto a folder",
             ["classify", "good.dump", *ck, "--types", "Si O", "-o", "folder", "-q"], expect="is a folder"),
        Case("classify output", "-o equal to the input",
             ["classify", "good.dump", *ck, "--types", "Si O", "-o", "good.dump", "-q"], expect="also an input"),
        Case("classify output", "-o equal to the input, other spelling",
             ["classify", "good.dump", *ck, "--types", "Si O", "-o", "./folder/../good.dump", "-q"], expect="also an input"),
        Case("classify output", "-o equal to the model",
             ["classify", "good.dump", *ck, "--types", "Si O", "-o", "model.pt", "-q"], expect="also an input"),
        Case("classify output", "-o a device", ["classify", "good.dump", *ck, "--types", "Si O", "-o", "/dev/null", "-q"],
             expect="not a regular file"),
        Case("classify output", "-o under a file",
             ["classify", "good.dump", *ck, "--types", "Si O", "-o", "summary_file/out.dump", "-q"], expect="summary_file"),
        Case("classify output", "-o empty", ["classify", "good.dump", *ck, "--types", "Si O", "-o", "", "-q"],
             expect="empty"),
        # ---------------------------------------------------------------- info
        *(Case("info", f"info {m}", ["info", m], expect=e) for m, e in [
            ("nope.pt", "does not exist"), ("folder", "is a folder"), ("config_text.pt", "not a lammps-phase checkpoint"),
            ("empty.pt", "not a torch archive"), ("truncated.pt", "not a torch archive"), ("code.pt", "checkpoint"), ("list.pt", "list"),
            ("metrics_not_json.pt", "metrics"), ("metrics_list.pt", "metrics"), ("state_list.pt", "state_dict"),
            ("config_list.pt", "config"), ("classes_str.pt", "classes"), ("version_text.pt", "format version"),
            ("good.dump", "not a lammps-phase checkpoint"),
        ]),
        Case("info", "info without a path", ["info"], expect="required"),
        # ---------------------------------------------------------------- report
        Case("report", "missing dump", ["report", "nope.dump"], expect="no such dump"),
        Case("report", "truncated gz", ["report", "labelled_truncated.dump.gz", "-o", "rep"], expect="gzip"),
        Case("report", "-o onto an existing file", ["report", "labelled.dump", "-o", "summary_file"], expect="is a file"),
        Case("report", "-o under a file", ["report", "labelled.dump", "-o", "summary_file/rep"], expect="is a file"),
        Case("report", "dump without phase labels", ["report", "no_phase.dump", "-o", "rep"], expect="no phase column"),
        Case("report", "labels below -1", ["report", "below_minus_one.dump", "-o", "rep"], expect="below -1"),
        Case("report", "fractional labels", ["report", "fractional_labels.dump", "-o", "rep"], expect="integers"),
        Case("report", "sidecar not JSON", ["report", "bad_sidecar.dump", "-o", "rep"], expect="not readable JSON"),
        Case("report", "sidecar wrong types", ["report", "typed_sidecar.dump", "-o", "rep"], expect="timestep_fs"),
        Case("report", "sidecar units", ["report", "units_sidecar.dump", "-o", "rep"], expect="units"),
        Case("report", "too few class names", ["report", "few_classes.dump", "-o", "rep"], expect="--classes"),
        Case("report", "--classes missing", ["report", "labelled.dump", "--classes", "nope.pt", "-o", "rep"],
             expect="does not exist"),
        Case("report", "--classes damaged", ["report", "labelled.dump", "--classes", "state_list.pt", "-o", "rep"],
             expect="state_dict"),
        Case("report", "--axis w", ["report", "labelled.dump", "--axis", "w"], expect="invalid choice"),
        *(Case("report", f"--bin-width {b}", ["report", "labelled.dump", "--bin-width", b, "-o", "rep"],
               expect="positive") for b in ("0", "-1", "nan", "inf")),
        Case("report", "narrow sample", ["report", "narrow.dump", "-o", "rep"], expect="--bin-width"),
        # ---------------------------------------------------------------- doctor
        Case("doctor", "doctor --bogus", ["doctor", "--bogus"], expect="unrecognized"),
        Case("doctor", "doctor extra argument", ["doctor", "extra"], expect="unrecognized"),
        Case("doctor", "doctor --json=1", ["doctor", "--json=1"], expect="ignored explicit argument"),
        # ---------------------------------------------------------------- lammps-phase-train: config
        *(Case("train config", name, [name, "-q"], train=True, expect=e) for name, e in [
            ("typo_top.toml", "did you mean 'output'"), ("unknown_table.toml", "did you mean 'train'"),
            ("epoch.toml", "did you mean 'epochs'"), ("chanels.toml", "did you mean 'channels'"),
            ("batch0.toml", "batch_size = 0"), ("lr_negative.toml", "lr = -1"), ("lr_nan.toml", "finite"),
            ("epochs0.toml", "epochs = 0"), ("epochs_text.toml", "integer"),
            ("negative_temperature.toml", "t_start = -300"), ("zero_ps.toml", "ps = 0"),
            ("unknown_potential.toml", "did you mean 'bks_dsf'"), ("unknown_structure.toml", "did you mean 'stishovite'"),
            ("unknown_model_key.toml", "embedding"), ("model_k0.toml", "k = 0"), ("dropout.toml", "dropout"),
            ("graph.toml", "graph"), ("select.toml", "select"), ("phi.toml", "phi"), ("kind.toml", "plasma"),
            ("phase_key.toml", "did you mean 'ps'"), ("pressures.toml", "pressure_gpa"),
            ("pressure_text.toml", "pressure_gpa"), ("pressure_empty.toml", "pressure_gpa"), ("lattice.toml", "parameters"),
            ("structure_file.toml", "nowhere.xyz"), ("structure_types.toml", "does not name its elements"),
            ("elements.toml", "Ox"), ("elements_missing.toml", "not in elements"),
            ("elements_potential.toml", "Cu"), ("seeds_overlap.toml", "disjoint"), ("seeds_empty.toml", "empty"),
            ("ranks0.toml", "ranks = 0"), ("dataset_mode.toml", "mode"), ("notes.toml", "alpha_quarz"),
            ("model_elements.toml", "remove it"), ("name_slash.toml", "name"), ("no_phase.toml", "phase"),
            ("syntax.toml", "not valid TOML"), ("binary.toml", "cannot be read"), ("missing.toml", "does not exist"),
            ("folder", "is a folder"),
        ]),
        # ---------------------------------------------------------------- lammps-phase-train: outputs and options
        Case("train output", "typo'd config aimed at a shipped checkpoint", ["output_shipped.toml", "-q"], train=True,
             expect="shipped"),
        Case("train output", "--output onto a shipped checkpoint", ["tiny.toml", "--output", "shipped/cu.pt", "-q"],
             train=True, expect="--overwrite"),
        Case("train output", "existing checkpoint", ["output_existing.toml", "-q"], train=True, expect="--overwrite"),
        Case("train output", "--force is not --overwrite", ["output_existing.toml", "--force", "-q"], train=True,
             expect="--overwrite"),
        Case("train output", "output is the config", ["output_self.toml", "-q"], train=True, expect="also an input"),
        Case("train output", "output is a folder", ["output_folder.toml", "-q"], train=True, expect="is a folder"),
        Case("train output", "output under a file", ["output_under_file.toml", "-q"], train=True, expect="summary_file"),
        Case("train output", "--workdir is a file", ["tiny.toml", "--workdir", "summary_file", "-q"], train=True,
             expect="--workdir"),
        Case("train output", "--stage bogus", ["tiny.toml", "--stage", "bogus"], train=True, expect="invalid choice"),
        Case("train output", "unknown option", ["tiny.toml", "--epochs", "3"], train=True, expect="unrecognized"),
        Case("train output", "no config", [], train=True, expect="required"),
    ]
    return cases


def _labelled_text_narrow() -> list[str]:
    lines = ["ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n4\nITEM: BOX BOUNDS pp pp pp\n0 3\n0 3\n0 3\n",
             "ITEM: ATOMS id type x y z i_phase\n"]
    lines += [f"{i + 1} 1 {0.5 + 0.5 * i} 1 1 0\n" for i in range(4)]
    return lines


# ------------------------------------------------------------------------------------------------ running


def _snapshot(root: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for path in root.rglob("*"):
        if path.is_file():
            out[str(path.relative_to(root))] = (path.stat().st_size, hashlib.sha1(path.read_bytes()).hexdigest())
    return out


def run_case(case: Case, root: Path) -> Outcome:
    """Run one case in ``root`` (its cwd); the trainer's heating stage is a tripwire."""
    before = _snapshot(root)
    err, out = io.StringIO(), io.StringIO()
    saved = (pipeline.stage_heating, getattr(outputs, "SHIPPED_CHECKPOINTS", None))

    def tripwire(*args, **kwargs):
        raise HeatingStarted("heating started: the config passed every check")

    cwd = os.getcwd()
    status: object
    try:
        os.chdir(root)
        pipeline.stage_heating = tripwire
        outputs.SHIPPED_CHECKPOINTS = (root / "shipped").resolve()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                status = (train_main if case.train else main)(list(case.argv))
            except SystemExit as exit_:
                status = exit_.code
            except BaseException:  # noqa: BLE001 - what the user would see as a traceback
                traceback.print_exc(file=err)
                status = "exception"
    finally:
        os.chdir(cwd)
        pipeline.stage_heating, outputs.SHIPPED_CHECKPOINTS = saved
    after = _snapshot(root)
    changed = sorted(k for k in before if after.get(k) != before[k])
    left = sorted(k for k in after if k not in before)
    for name in left:  # leave the workspace as it was for the next case
        path = root / name
        path.unlink()
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()) and folder.name not in ("folder",):
            folder.rmdir()
    return Outcome(case, status, err.getvalue(), changed, left)


def run_corpus(root: Optional[Path] = None) -> list[Outcome]:
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bad_inputs_")))
        build_workspace(root)
        return [run_case(case, root) for case in corpus()]


def table(outcomes: list[Outcome]) -> str:
    rows: dict[str, Counter] = defaultdict(Counter)
    for o in outcomes:
        rows[o.case.kind][o.verdict] += 1
        rows[o.case.kind]["lost"] += bool(o.changed)
        rows[o.case.kind]["cases"] += 1
    cols = ["cases", "clear error", "traceback", "other", "lost"]
    lines = [f"{'kind':<18}" + "".join(f"{c:>13}" for c in cols)]
    total: Counter = Counter()
    for kind, counts in rows.items():
        lines.append(f"{kind:<18}" + "".join(f"{counts[c]:>13}" for c in cols))
        total.update(counts)
    lines.append(f"{'total':<18}" + "".join(f"{total[c]:>13}" for c in cols))
    return "\n".join(lines)


def main_cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case's error line")
    args = parser.parse_args()
    outcomes = run_corpus()
    for o in outcomes:
        if args.verbose or o.verdict != "clear error":
            line = o.error_lines[0] if o.error_lines else o.stderr.strip().splitlines()[-1:] or ["(no output)"]
            extra = f" changed {o.changed}" if o.changed else ""
            extra += f" left {o.left}" if o.left else ""
            print(f"[{o.verdict}] {o.case.kind} / {o.case.name}: exit {o.status}: {line if isinstance(line, str) else line[0]}"
                  f"{extra}")
    print(table(outcomes))
    return 0 if all(o.verdict == "clear error" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main_cli())
