"""The ranks of a labeler act as one (lammps_phase.insitu.collectives): any error stops every rank with one clear
line, and on_error="skip" blanks one step on all ranks, run through ``mpirun … lmp``."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_phase.inference import formats
from lammps_runs import (NEEDS_MPI_LAMMPS, assert_matches_offline, classifier, common_vars, error_deck, failing_model,
                         quartz, run_deck, workdir)

pytestmark = NEEDS_MPI_LAMMPS
SHARED_FIXTURES = (classifier, common_vars, quartz, workdir)  # module-scoped, from lammps_runs


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
