"""PhaseLabeler inside LAMMPS under MPI (lammps_phase.insitu.labeler), run through ``mpirun … lmp``: gather and
local mode label like the offline Classifier, on any number of ranks; fractions, restarts and shipped decks."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lammps_phase.inference import formats
from lammps_runs import (DECKS, NEEDS_MPI_LAMMPS, REPO, assert_matches_offline, classifier, common_vars, error_deck,
                         offline, quartz, run_deck, run_lammps, thermo_rows, with_local_labeler, workdir, write_quartz)

pytestmark = NEEDS_MPI_LAMMPS
SHARED_FIXTURES = (classifier, common_vars, quartz, workdir)  # module-scoped, from lammps_runs


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


@pytest.mark.parametrize("extra, ghost, chosen, falls_back", [
    ("", 8.0, "mode local (auto: 432 atoms on 2 rank(s), 1 node(s), >= 0 atoms", False),  # several ranks: local
    ("", None, "mode local (auto:", True),  # local wanted, but Tersoff's ghost shell is too thin for the rows
    ("auto_local_atoms=1000", None, "mode gather (auto: 432 atoms on 2 rank(s), 1 node(s), < 1000 atoms", False),
])
def test_mode_auto_says_what_it_chose_and_labels_like_gather(extra, ghost, chosen, falls_back, workdir, quartz,
                                                              common_vars, classifier):
    args = '"${checkpoint}", types="Si O", mode="auto"' + (f", {extra}" if extra else "")
    name = f"auto_{len(extra)}_{ghost}"
    rc, screen, _, cwd = run_deck(workdir, name, error_deck(args, ghost=ghost), quartz, common_vars)
    assert rc == 0, screen[-3000:]
    assert chosen in screen, screen[-3000:]
    fallback = [line for line in screen.splitlines() if "mode auto falls back to gather" in line]
    assert bool(fallback) == falls_back and (not falls_back or "comm_modify cutoff" in fallback[0])
    frames = list(formats.read_dump(cwd / "dump.phase"))
    assert [f.timestep for f in frames] == [0, 5, 10]
    assert_matches_offline(classifier, frames, columns=("phase",))


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


def test_an_ensemble_labels_in_gather_mode_like_offline(workdir, quartz, common_vars, tmp_path):
    """An ensemble file in situ: gather mode (also when "auto" would pick local), labels as the offline ensemble's;
    local mode asked for by name stops the run with the reason."""
    from conftest import make_random_checkpoint
    from lammps_phase.inference.classify import Classifier
    from lammps_phase.inference.ensemble import write_ensemble

    second = make_random_checkpoint(tmp_path / "second.pt", seed=9)  # with the first: two classes on this quartz
    ensemble = tmp_path / "pair.toml"
    write_ensemble(ensemble, [common_vars["checkpoint"], second])
    deck = error_deck("'${checkpoint}', types='Si O', mode='auto'", ghost=8.0)
    rc, screen, _, cwd = run_deck(workdir, "ensemble", deck, quartz, {**common_vars, "checkpoint": ensemble})
    assert rc == 0, screen[-3000:]
    assert "mode gather (an ensemble: rank 0 labels the whole box)" in screen
    assert_matches_offline(Classifier.load(ensemble, device="cpu"), list(formats.read_dump(cwd / "dump.phase")),
                           columns=("phase",))
    deck = error_deck("'${checkpoint}', types='Si O', mode='local'", ghost=8.0)
    rc, screen, _, _ = run_deck(workdir, "ensemble_local", deck, quartz, {**common_vars, "checkpoint": ensemble})
    assert rc != 0 and "is an ensemble, which labels in gather mode" in screen


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


def test_every_atom_deleted_both_modes_carry_on(workdir, quartz, common_vars):
    """Labels for zero atoms, in gather mode as in local mode: the run goes on and the fractions are 0."""
    deck = with_local_labeler(error_deck('"${checkpoint}", types="Si O"', ghost=19.0)).replace(
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


# ------------------------------------------------------------------------------------------ shipped decks


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
