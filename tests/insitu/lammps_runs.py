"""Shared by the in-situ tests: run a deck under ``mpirun … lmp``, write the test crystal, compare with offline labels.

The decks use Tersoff (cheap) on a 432-atom α-quartz box: the labelling path does not depend on the
potential. A random-weight checkpoint gives deterministic, non-trivial labels, so equality tests are
meaningful: labels must not depend on the number of ranks, on gather vs local mode, or on whether the
configuration is labelled inside LAMMPS or offline from the dump.

The module-scoped fixtures here are imported by the test files that use them (pytest finds fixtures by name
in the test module).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lammps_phase.inference import formats
from lammps_phase.data import potentials, structures
from lammps_phase.inference.classify import Classifier

#: marks of every test that starts LAMMPS under MPI
NEEDS_MPI_LAMMPS = [
    pytest.mark.mpi,
    pytest.mark.skipif(shutil.which("lmp") is None or shutil.which("mpirun") is None, reason="needs lmp and mpirun"),
]



def needs_mpi_lammps(test):
    """Mark one test as starting LAMMPS under MPI (where not the whole module is)."""
    for mark in NEEDS_MPI_LAMMPS:
        test = mark(test)
    return test


DECKS = Path(__file__).parent
REPO = Path(__file__).resolve().parents[2]
TYPE_MAP = ["Si", "O"]
TIMEOUT_S = 240


def run_lammps(deck: Path, cwd: Path, nprocs: int, env_extra: dict | None = None,
               **variables: object) -> tuple[int, str, str]:
    """Run ``mpirun -np N lmp -in deck`` in cwd; returns (exit status, screen output, log file text)."""
    cmd = ["mpirun", "-np", str(nprocs), "--oversubscribe", "--allow-run-as-root", "lmp", "-in", str(deck),
           "-log", "log.lammps"]
    for name, value in variables.items():
        cmd += ["-var", name, str(value)]
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_MCA_rmaps_base_oversubscribe="1", **(env_extra or {}))
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    log = (cwd / "log.lammps").read_text() if (cwd / "log.lammps").exists() else ""
    return proc.returncode, proc.stdout + proc.stderr, log


def write_quartz(path: Path, vacuum_x: bool = False) -> Path:
    crystal = structures.supercell(structures.build("alpha_quartz"), 15.0)
    cell = crystal.cell.copy()
    positions = crystal.positions + 0.5  # keep atoms off the box faces
    if vacuum_x:  # a slab: atoms fill only the lower half of x
        cell[0, 0] *= 2.0
    formats.write_lammps_data(path, positions, cell, crystal.symbols, TYPE_MAP)
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("insitu")


@pytest.fixture(scope="module")
def quartz(workdir) -> Path:
    return write_quartz(workdir / "quartz.data")


@pytest.fixture(scope="module")
def common_vars(random_sio2_checkpoint) -> dict:
    return {"potfile": potentials.potential_file("SiO.tersoff"), "checkpoint": random_sio2_checkpoint, "seed": 11}


@pytest.fixture(scope="module")
def classifier(random_sio2_checkpoint) -> Classifier:
    return Classifier.load(random_sio2_checkpoint, device="cpu")


def offline(classifier: Classifier, frame: formats.Frame):
    return classifier.classify(frame.positions(), frame.cell(), frame.species(TYPE_MAP), pbc=frame.pbc,
                               origin=frame.boxlo)


def assert_matches_offline(classifier: Classifier, frames: list, columns=("phase", "phase_local")) -> None:
    for frame in frames:
        ref = offline(classifier, frame)
        assert len(np.unique(ref.labels)) > 1, "a test model that gives one label everywhere proves nothing"
        for name in columns:
            labels = frame.columns[f"i_{name}"].astype(np.int32)
            conf = frame.columns[f"d_{name}_conf"]
            assert np.array_equal(labels, ref.labels), f"{name} at step {frame.timestep}"
            np.testing.assert_allclose(conf, ref.confidence, atol=1e-5)


def thermo_rows(log: str) -> dict[int, dict[str, float]]:
    rows: dict[int, dict[str, float]] = {}
    header = None
    for line in log.splitlines():
        words = line.split()
        if words[:1] == ["Step"]:
            header = words
        elif header and len(words) == len(header) and re.fullmatch(r"\d+", words[0]):
            rows[int(words[0])] = dict(zip(header, map(float, words)))
        else:
            header = None if words[:1] == ["Loop"] else header
    return rows


# ------------------------------------------------------------------------------------------ decks written by tests


def error_deck(labeler_args: str, *, property_fix: bool = True, invoke: bool = True, prelude: str = "",
               ghost: float | None = None) -> str:
    """A short gather/local deck with one labeler; variables: data, potfile, checkpoint."""
    lines = ["units metal", "atom_style atomic", "atom_modify map array", "read_data ${data}",
             "pair_style tersoff", "pair_coeff * * ${potfile} Si O",
             "displace_atoms all random 0.05 0.05 0.05 7 units box",
             "velocity all create 600 4928459 loop geom", "fix nve all nve"]
    if ghost is not None:
        lines.append(f"comm_modify cutoff {ghost}")
    if property_fix:
        lines.append("fix phase all property/atom i_phase d_phase_conf")
    lines += ['python phase_step input 1 SELF format p here """', "from lammps_phase.insitu import PhaseLabeler",
              prelude, f"labeler = PhaseLabeler({labeler_args})", "def phase_step(ptr): labeler(ptr)", '"""']
    if invoke:
        lines.append("python phase_step invoke")
    lines += ["fix label all python/invoke 5 end_of_step phase_step",
              "dump d all custom 5 dump.phase id type x y z i_phase d_phase_conf",
              "dump_modify d format float %.17g sort id", "run 10", ""]
    return "\n".join(lines)


def with_local_labeler(deck: str) -> str:
    """An error_deck with a second labeler in local mode, writing i_phase_local / d_phase_local_conf."""
    return deck.replace(
        "def phase_step(ptr): labeler(ptr)",
        "local = PhaseLabeler('${checkpoint}', types='Si O', mode='local', labels='i_phase_local', "
        "confidence='d_phase_local_conf')\ndef phase_step(ptr):\n    labeler(ptr)\n    local(ptr)",
    ).replace("fix phase all property/atom i_phase d_phase_conf",
              "fix phase all property/atom i_phase d_phase_conf\nfix phase_local all property/atom i_phase_local "
              "d_phase_local_conf")


def hot_run(deck: str, steps: int) -> str:
    """An error_deck run hot (5000 K) for ``steps`` steps, reneighboured every step: atoms cross between ranks."""
    return deck.replace("velocity all create 600", "velocity all create 5000").replace(
        "fix nve all nve", "fix nve all nve\nneigh_modify every 1 delay 0 check yes").replace("run 10", f"run {steps}")


def failing_model(rank: int, call: int) -> str:
    """Deck prelude: Classifier.logits raises on MPI rank ``rank`` at its ``call``-th call (1-based)."""
    return "\n".join([
        "import lammps_phase.inference.classify as _lc",
        "from mpi4py import MPI as _MPI",
        "_real_logits, _calls = _lc.Classifier.logits, []",
        "def _flaky_logits(self, *args, **kwargs):",
        "    _calls.append(1)",
        f"    if _MPI.COMM_WORLD.Get_rank() == {rank} and len(_calls) == {call}:",
        "        raise RuntimeError('injected model failure')",
        "    return _real_logits(self, *args, **kwargs)",
        "_lc.Classifier.logits = _flaky_logits",
    ])


def run_deck(workdir: Path, name: str, text: str, data: Path, common_vars: dict) -> tuple[int, str, str, Path]:
    cwd = workdir / name
    cwd.mkdir()
    (cwd / "in.deck").write_text(text)
    rc, screen, log = run_lammps(cwd / "in.deck", cwd, 2, data=data, **common_vars)
    return rc, screen, log, cwd
