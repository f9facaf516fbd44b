"""Label memory inside LAMMPS (PhaseLabeler memory=...): the rows live in a ``fix property/atom d2_…`` array that
moves with the atoms between ranks; gather and local mode label as the offline Classifier with one LabelMemory.
The average itself: tests/inference/test_memory.py."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_phase.inference import formats
from lammps_phase.inference.memory import LabelMemory
from lammps_runs import (TYPE_MAP, classifier, common_vars, error_deck, hot_run, needs_mpi_lammps, offline, quartz,
                         run_deck, run_lammps, workdir)

SHARED_FIXTURES = (classifier, common_vars, quartz, workdir)  # module-scoped, from lammps_runs


# ------------------------------------------------------------------------------------------ inside LAMMPS


def memory_deck(columns: int, weight: float = 0.5) -> str:
    """A hot run (atoms cross between the 2 ranks) labelled with memory in gather and in local mode."""
    deck = error_deck(f'"${{checkpoint}}", types="Si O", memory="d2_memory", memory_weight={weight}', ghost=8.0)
    deck = deck.replace(
        "def phase_step(ptr): labeler(ptr)",
        f"local = PhaseLabeler('${{checkpoint}}', types='Si O', mode='local', labels='i_phase_local', "
        f"confidence='d_phase_local_conf', memory='d2_memory_local', memory_weight={weight})\n"
        "def phase_step(ptr):\n    labeler(ptr)\n    local(ptr)",
    ).replace("fix phase all property/atom i_phase d_phase_conf",
              f"fix phase all property/atom i_phase d_phase_conf d2_memory {columns}\n"
              f"fix phase_local all property/atom i_phase_local d_phase_local_conf d2_memory_local {columns}")
    deck = deck.replace("i_phase d_phase_conf\ndump_modify",
                        "i_phase d_phase_conf i_phase_local d_phase_local_conf d2_memory[1]\ndump_modify")
    deck = hot_run(deck, 30)
    return deck + "write_restart memory.restart\n"


@needs_mpi_lammps
def test_in_situ_memory_follows_the_atoms_in_both_modes(workdir, quartz, common_vars, classifier):
    """Gather and local mode on 2 ranks label as the offline Classifier does with one LabelMemory carried from
    frame to frame, while atoms change ranks; without memory the later labels would differ; a restart keeps it."""
    columns = len(classifier.classes)
    rc, screen, _, cwd = run_deck(workdir, "memory", memory_deck(columns), quartz, common_vars)
    assert rc == 0, screen[-3000:]
    frames = list(formats.read_dump(cwd / "dump.phase"))
    assert [f.timestep for f in frames] == list(range(0, 31, 5))
    memory = LabelMemory.empty(len(frames[0].positions()), columns, weight=0.5)
    changed = 0
    for frame in frames:
        plain = offline(classifier, frame)
        remembered = classifier.classify(frame.positions(), frame.cell(), frame.species(TYPE_MAP), pbc=frame.pbc,
                                         origin=frame.boxlo, memory=memory)
        for name in ("phase", "phase_local"):
            assert np.array_equal(frame.columns[f"i_{name}"], remembered.labels), (name, frame.timestep)
            np.testing.assert_allclose(frame.columns[f"d_{name}_conf"], remembered.confidence, atol=1e-5)
        np.testing.assert_allclose(frame.columns["d2_memory[1]"], memory.values[:, 0], atol=1e-5)
        changed += int((remembered.labels != plain.labels).sum())
    assert changed > 0, "the memory never changed a label: the test proves nothing"

    # the memory survives a restart (the fix defined again after read_restart, as LAMMPS wants)
    restart = cwd / "in.restart"
    restart.write_text("\n".join([
        "read_restart memory.restart", "pair_style tersoff", "pair_coeff * * ${potfile} Si O",
        f"fix phase all property/atom i_phase d_phase_conf d2_memory {columns}",
        "dump d all custom 1 restart.dump id d2_memory[1]", "dump_modify d format float %.17g sort id", "run 0", ""]))
    rc, screen, _ = run_lammps(restart, cwd, 2, **common_vars)
    assert rc == 0, screen[-3000:]
    restored = list(formats.read_dump(cwd / "restart.dump"))[0]
    np.testing.assert_allclose(restored.columns["d2_memory[1]"], memory.values[:, 0], atol=1e-5)


MEMORY_ERRORS = {
    "no_array": ('memory="d2_memory"', "fix phase all property/atom i_phase d_phase_conf",
                 "no per-atom array d2_memory to keep the label memory in: add `fix phase all property/atom i_phase "
                 "d_phase_conf d2_memory"),
    "wrong_columns": ('memory="d2_memory"', "fix phase all property/atom i_phase d_phase_conf d2_memory 3",
                      "per-atom array d2_memory has 3 column(s) but the model has"),
    "not_an_array": ('memory="d_memory"', "fix phase all property/atom i_phase d_phase_conf",
                     "memory 'd_memory' must name a float per-atom array with one column per class"),
    "weight": ('memory="d2_memory", memory_weight=0', "fix phase all property/atom i_phase d_phase_conf",
               "memory_weight 0 must lie in (0, 1]"),
}


@needs_mpi_lammps
@pytest.mark.parametrize("case", sorted(MEMORY_ERRORS))
def test_a_wrong_memory_set_up_stops_with_one_clear_message(case, workdir, quartz, common_vars):
    args, fix, message = MEMORY_ERRORS[case]
    deck = error_deck(f'"${{checkpoint}}", types="Si O", {args}').replace(
        "fix phase all property/atom i_phase d_phase_conf", fix)
    rc, screen, log, _ = run_deck(workdir, f"memory_{case}", deck, quartz, common_vars)
    assert rc != 0
    ours = [line for line in log.splitlines() if line.startswith("ERROR: lammps-phase:")]
    assert len(ours) == 1 and message in ours[0], (ours, screen[-3000:])
