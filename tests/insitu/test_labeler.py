"""In-situ labelling inside LAMMPS under MPI (lammps_phase.insitu.labeler), run through ``mpirun … lmp``.

The decks use Tersoff (cheap) on a 432-atom α-quartz box: the labelling path does not depend on the
potential. A random-weight checkpoint gives deterministic, non-trivial labels, so equality tests are
meaningful: labels must not depend on the number of ranks, on gather vs local mode, or on whether the
configuration is labelled inside LAMMPS or offline from the dump.
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

pytestmark = [
    pytest.mark.mpi,
    pytest.mark.skipif(shutil.which("lmp") is None or shutil.which("mpirun") is None, reason="needs lmp and mpirun"),
]

DECKS = Path(__file__).parent
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


@pytest.fixture(scope="module")
def labelled(workdir, quartz, common_vars) -> dict:
    """labels.lmp on 1, 2 and 4 ranks: {nprocs: (frames, log, run folder)}."""
    out = {}
    for nprocs in (1, 2, 4):
        cwd = workdir / f"np{nprocs}"
        cwd.mkdir()
        rc, screen, log = run_lammps(DECKS / "labels.lmp", cwd, nprocs, data=quartz, **common_vars)
        assert rc == 0, screen[-3000:]
        out[nprocs] = (list(formats.read_dump(cwd / "dump.phase")), log, cwd)
    return out


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


# ------------------------------------------------------------------------------------------ labels


def test_labels_equal_offline_classifier_over_two_runs(labelled, classifier):
    frames, _, _ = labelled[1]
    # step 0 comes from `python … invoke`, step 5 from the first run command, step 10 from the second
    assert [f.timestep for f in frames] == [0, 5, 10]
    assert not np.array_equal(frames[0].positions(), frames[2].positions())
    assert_matches_offline(classifier, frames)


def test_compiled_kernels_in_situ_label_like_the_offline_classifier(workdir, quartz, common_vars, classifier):
    """The production set-up: kernels compiled at the first labelling (LAMMPS_PHASE_COMPILE unset = "auto")."""
    cwd = workdir / "compiled"
    cwd.mkdir()
    rc, screen, _ = run_lammps(DECKS / "labels.lmp", cwd, 2, env_extra={"LAMMPS_PHASE_COMPILE": "auto"},
                               data=quartz, **common_vars)
    assert rc == 0, screen[-3000:]
    assert "torch.compile failed" not in screen and "(compiled kernels on rank 0)" in screen
    assert_matches_offline(classifier, list(formats.read_dump(cwd / "dump.phase")))


def test_labels_identical_across_rank_counts_and_modes(labelled):
    reference = labelled[1][0]
    for nprocs in (2, 4):
        frames = labelled[nprocs][0]
        assert [f.timestep for f in frames] == [0, 5, 10]
        for ref, frame in zip(reference, frames):
            for column in ("i_phase", "i_phase_local"):
                assert np.array_equal(frame.columns[column], ref.columns["i_phase"]), (nprocs, column, ref.timestep)
            for column in ("d_phase_conf", "d_phase_local_conf"):
                np.testing.assert_allclose(frame.columns[column], ref.columns["d_phase_conf"], atol=1e-5)


def test_phase_fractions_in_thermo_follow_the_labels(labelled, classifier):
    frames, log, _ = labelled[2]
    names = [f"v_phase_{c}" for c in classifier.classes] + ["v_phase_other"]
    rows = thermo_rows(log)
    assert set(rows) == {0, 5, 10}
    for frame in frames:
        labels = frame.columns["i_phase"].astype(int)
        expected = [np.mean(labels == i) for i in range(len(classifier.classes))] + [np.mean(labels == -1)]
        got = [rows[frame.timestep][n] for n in names]
        np.testing.assert_allclose(got, expected, atol=1e-6)
        local = [rows[frame.timestep][n.replace("v_phase_", "v_phase_local_")] for n in names]
        np.testing.assert_allclose(local, expected, atol=1e-6)
    assert "i_phase classes: 0 = alpha_quartz, 1 = coesite" in log  # class table printed to the log


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


def test_triclinic_box(workdir, quartz, common_vars, classifier):
    cwd = workdir / "triclinic"
    cwd.mkdir()
    rc, screen, _ = run_lammps(DECKS / "labels.lmp", cwd, 2, data=quartz, triclinic=1, **common_vars)
    assert rc == 0, screen[-3000:]
    frames = list(formats.read_dump(cwd / "dump.phase"))
    assert all(np.allclose(f.tilt, [3.0, 1.5, -2.0]) for f in frames)
    assert_matches_offline(classifier, frames)


def test_rank_that_owns_no_atoms(workdir, common_vars, classifier):
    cwd = workdir / "slab"
    cwd.mkdir()
    data = write_quartz(cwd / "slab.data", vacuum_x=True)
    # 2 x 1 x 1 ranks: the upper half of x is vacuum, so rank 1 owns nothing; surface atoms have far
    # k-th neighbours, hence the wider ghost shell for local mode
    rc, screen, log = run_lammps(DECKS / "labels.lmp", cwd, 2, data=data, procs="2 1 1", ghost=23.0, **common_vars)
    assert rc == 0, screen[-3000:]
    assert re.search(r"Nlocal:\s+216\.000 ave\s+432 max\s+0 min", log)
    assert_matches_offline(classifier, list(formats.read_dump(cwd / "dump.phase")))


def test_restart_keeps_labels(labelled, common_vars):
    frames, _, cwd = labelled[2]
    rc, screen, _ = run_lammps(DECKS / "restart.lmp", cwd, 2, potfile=common_vars["potfile"])
    assert rc == 0, screen[-3000:]
    (restored,) = list(formats.read_dump(cwd / "restart.dump"))
    last = frames[-1]
    assert restored.timestep == last.timestep == 10
    for column in ("i_phase", "d_phase_conf", "i_phase_local", "d_phase_local_conf"):
        assert np.array_equal(restored.columns[column], last.columns[column]), column
    assert np.any(restored.columns["i_phase"] != 0)  # not the zeros of a freshly defined property


# ------------------------------------------------------------------------------------------ errors


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


ERROR_CASES = {
    # name: (deck, message expected, where: "log" = in the log file (raised outside a run), else on the screen)
    "no_property_fix": (error_deck('"${checkpoint}", types="Si O"', property_fix=False),
                        "no per-atom property i_phase to write the labels into: add "
                        "`fix phase all property/atom i_phase d_phase_conf`", "log"),
    "too_few_types": (error_deck('"${checkpoint}", types="Si"', invoke=False),
                      "types 'Si' names 1 element(s) but the system has 2 atom types", "screen"),
    "unknown_element": (error_deck('"${checkpoint}", types="Si Xx"'),
                        "the model knows elements Si O but the type map names Xx", "log"),
    # constructor errors (while LAMMPS reads the deck) reach the log as one line, not only "Could not process ..."
    "missing_checkpoint": (error_deck('"missing.pt", types="Si O"', invoke=False),
                           "checkpoint missing.pt does not exist", "log"),
    "comma_separated_types": (error_deck('"${checkpoint}", types="Si,O"', invoke=False),
                              "types 'Si,O': Si,O is not an element symbol", "log"),
    "misspelt_keyword": (error_deck('"${checkpoint}", types="Si O", mdoe="local"', invoke=False),
                         "PhaseLabeler: PhaseLabeler.__init__() got an unexpected keyword argument 'mdoe'", "log"),
    "undefined_variable": (error_deck('"${nothere}", types="Si O"'),
                           "refers to LAMMPS variable nothere, which is not defined", "log"),
    "thin_ghost_shell": (error_deck('"${checkpoint}", types="Si O", mode="local"'),
                         "add `comm_modify cutoff", "screen"),
    "model_failure": (error_deck('"${checkpoint}", types="Si O"', prelude=failing_model(rank=0, call=2)),
                      "labelling failed at step 5: RuntimeError: injected model failure", "screen"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_errors_stop_the_run_with_one_clear_message(case, workdir, quartz, common_vars):
    deck, message, where = ERROR_CASES[case]
    rc, screen, log, cwd = run_deck(workdir, f"error_{case}", deck, quartz, common_vars)
    assert rc != 0
    ours = [line for line in (log if where == "log" else screen).splitlines()
            if line.startswith("ERROR: lammps-phase:")]
    assert len(ours) == 1 and message in ours[0], (ours, screen[-3000:])
    if (cwd / "dump.phase").exists():  # the run stopped before any labelled step was dumped
        assert [f.timestep for f in formats.read_dump(cwd / "dump.phase")] in ([], [0])


def test_every_atom_deleted_both_modes_carry_on(workdir, quartz, common_vars):
    """Labels for zero atoms, in gather mode as in local mode: the run goes on and the fractions are 0."""
    deck = error_deck('"${checkpoint}", types="Si O"', ghost=19.0).replace(
        "def phase_step(ptr): labeler(ptr)",
        "local = PhaseLabeler('${checkpoint}', types='Si O', mode='local', labels='i_phase_local', "
        "confidence='d_phase_local_conf')\ndef phase_step(ptr):\n    labeler(ptr)\n    local(ptr)",
    ).replace("fix phase all property/atom i_phase d_phase_conf",
              "fix phase all property/atom i_phase d_phase_conf\nfix phase_local all property/atom i_phase_local "
              "d_phase_local_conf").replace(
        "run 10", "thermo_style custom step atoms ${phase_thermo} ${phase_local_thermo}\nthermo 5\nrun 5\n"
                  "delete_atoms group all\nrun 10")
    rc, screen, log, cwd = run_deck(workdir, "all_deleted", deck, quartz, common_vars)
    assert rc == 0, screen[-3000:]
    assert "ERROR" not in screen
    rows = thermo_rows(log)
    assert set(rows) == {0, 5, 10, 15}
    assert rows[0]["Atoms"] == 432 and rows[10]["Atoms"] == rows[15]["Atoms"] == 0
    for local in (False, True):
        def fractions(row):
            return {k: v for k, v in row.items() if k.startswith("v_phase_") and k.startswith("v_phase_local_") == local}
        assert len(fractions(rows[15])) == 5 and all(v == 0.0 for v in fractions(rows[15]).values()), rows[15]
        assert sum(fractions(rows[0]).values()) > 0.99, rows[0]  # all atoms labelled before the deletion


def test_compact_model_labels_locally_within_the_pair_styles_own_ghost_shell(workdir, quartz, common_vars, tmp_path):
    """A 2-hop model (1 EdgeConv + bond-order inputs, k = 12) reaches ≈ 2 × 3.6 Å: the ghost atoms a 10 Å pair
    style keeps anyway (cutoff + 2 Å skin) suffice, so mode='local' runs without `comm_modify cutoff` and labels
    exactly as gather mode. (A zero-strength lj/cut 10.0 overlaid on Tersoff stands in for BKS's 10 Å cutoff.)"""
    from conftest import make_random_checkpoint

    compact = make_random_checkpoint(tmp_path / "compact.pt", channels=(32,))
    deck = error_deck('"${checkpoint}", types="Si O"').replace(
        "pair_style tersoff\npair_coeff * * ${potfile} Si O",
        "pair_style hybrid/overlay tersoff lj/cut 10.0\npair_coeff * * tersoff ${potfile} Si O\n"
        "pair_coeff * * lj/cut 0.0 1.0",
    ).replace(
        "def phase_step(ptr): labeler(ptr)",
        "local = PhaseLabeler('${checkpoint}', types='Si O', mode='local', labels='i_phase_local', "
        "confidence='d_phase_local_conf')\ndef phase_step(ptr):\n    labeler(ptr)\n    local(ptr)",
    ).replace("fix phase all property/atom i_phase d_phase_conf",
              "fix phase all property/atom i_phase d_phase_conf\nfix phase_local all property/atom i_phase_local "
              "d_phase_local_conf").replace("i_phase d_phase_conf\ndump_modify", "i_phase d_phase_conf i_phase_local "
                                            "d_phase_local_conf\ndump_modify")
    assert "comm_modify" not in deck and "lj/cut 10.0" in deck
    rc, screen, log, cwd = run_deck(workdir, "compact_local", deck, quartz, {**common_vars, "checkpoint": compact})
    assert rc == 0, screen[-3000:]
    frames = list(formats.read_dump(cwd / "dump.phase"))
    assert [f.timestep for f in frames] == [0, 5, 10]
    for frame in frames:
        labels = frame.columns["i_phase"]
        assert np.array_equal(frame.columns["i_phase_local"], labels)
        assert len(np.unique(labels)) > 1  # non-trivial labels
    # the same deck with the 4-hop random model needs more ghosts than the pair style keeps: one clear error
    rc, screen, _, _ = run_deck(workdir, "wide_local", deck, quartz, common_vars)
    assert rc != 0 and "add `comm_modify cutoff" in screen


@pytest.mark.parametrize("mode, failing_rank, call", [("gather", 0, 2), ("local", 1, 1)])
def test_on_error_skip_blanks_one_step_on_all_ranks(mode, failing_rank, call, workdir, quartz, common_vars,
                                                      classifier):
    # local mode: only rank 1 fails, yet rank 0 must blank its atoms too (no half-written step)
    deck = error_deck(f'"${{checkpoint}}", types="Si O", mode="{mode}", on_error="skip"',
                      prelude=failing_model(failing_rank, call), ghost=19.0)
    rc, screen, _, cwd = run_deck(workdir, f"skip_{mode}", deck, quartz, common_vars)
    assert rc == 0, screen[-3000:]
    assert "WARNING: lammps-phase: labelling failed at step 5: RuntimeError: injected model failure" in screen
    frames = {f.timestep: f for f in formats.read_dump(cwd / "dump.phase")}
    assert sorted(frames) == [0, 5, 10]
    assert np.all(frames[5].columns["i_phase"] == -1) and np.all(frames[5].columns["d_phase_conf"] == 0.0)
    assert_matches_offline(classifier, [frames[0], frames[10]], columns=("phase",))


# ------------------------------------------------------------------------------------------ shipped decks

REPO = Path(__file__).resolve().parents[2]


def test_include_snippet(workdir, quartz, common_vars, classifier):
    cwd = workdir / "snippet"
    cwd.mkdir()
    lines = ["units metal", "atom_style atomic", "atom_modify map array", "read_data ${data}",
             "pair_style tersoff", "pair_coeff * * ${potfile} Si O",
             "displace_atoms all random 0.05 0.05 0.05 3 units box", "velocity all create 600 4928459 loop geom",
             "fix nve all nve", 'variable phase_types string "Si O"', "variable phase_every index 5",
             f"include {REPO / 'inputs' / 'phase_labels.lmp'}",
             "thermo_style custom step pe ${phase_thermo}", "thermo 5",
             "dump d all custom 5 dump.phase id type x y z i_phase d_phase_conf",
             "dump_modify d format float %.17g sort id", "run 10", ""]
    (cwd / "in.deck").write_text("\n".join(lines))
    rc, screen, log = run_lammps(cwd / "in.deck", cwd, 2, data=quartz, **common_vars)
    assert rc == 0, screen[-3000:]
    frames = list(formats.read_dump(cwd / "dump.phase"))
    assert [f.timestep for f in frames] == [0, 5, 10]
    assert_matches_offline(classifier, frames, columns=("phase",))
    assert set(thermo_rows(log)) == {0, 5, 10}


def test_quickstart_deck(workdir, common_vars, classifier):
    cwd = workdir / "quickstart"
    cwd.mkdir()
    deck = REPO / "inputs" / "in.quickstart"
    rc, screen, log = run_lammps(deck, cwd, 2, checkpoint=common_vars["checkpoint"], steps=100)
    assert rc == 0, screen[-3000:]
    frames = list(formats.read_dump(cwd / "quickstart.dump"))
    assert [f.timestep for f in frames] == [0, 50, 100]
    assert frames[0].natoms == 1080 and list(frames[0].columns) == ["id", "type", "x", "y", "z", "i_phase",
                                                                   "d_phase_conf"]
    for frame in frames:  # the dump has 6 significant digits: labels may flip only for near-tied atoms
        ref = offline(classifier, frame)
        assert np.mean(frame.columns["i_phase"] == ref.labels) > 0.98
    rows = thermo_rows(log)
    assert set(rows) == {0, 50, 100} and "v_phase_alpha_quartz" in rows[0]
    # the model's checkpoint is missing by default: one clear error before anything runs
    rc, _, log = run_lammps(deck, cwd, 2)
    assert rc != 0
    assert "ERROR: lammps-phase: checkpoint checkpoints/sio2.pt does not exist" in log
