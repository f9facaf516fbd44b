"""Neighbour consensus inside LAMMPS (PhaseLabeler consensus=...): gather mode and local mode, whose rows read the
probabilities of neighbours other ranks own through one more halo exchange, label as the offline Classifier; the
same for the α/β order pooling after it (pooling=..., one small exchange per round). The blend itself:
tests/inference/test_consensus.py; the pooling: tests/inference/test_order_pooling.py."""

from __future__ import annotations

import numpy as np

from lammps_phase.inference import formats
from lammps_phase.inference.classify import Classifier
from lammps_phase.model import checkpoint as ckpt_io
from lammps_runs import (TYPE_MAP, classifier, common_vars, error_deck, hot_run, needs_mpi_lammps, offline, quartz,
                         run_deck, with_local_labeler, workdir)

SHARED_FIXTURES = (classifier, common_vars, quartz, workdir)  # module-scoped, from lammps_runs


def consensus_deck(weight: float, pooling: int = 0) -> str:
    """A hot run (atoms cross between the 2 ranks) labelled with a consensus (and ``pooling`` rounds of order
    pooling) in gather and in local mode."""
    options = f"consensus={weight}, pooling={pooling}"
    deck = with_local_labeler(error_deck(f'"${{checkpoint}}", types="Si O", {options}', ghost=8.0))
    deck = deck.replace("confidence='d_phase_local_conf')", f"confidence='d_phase_local_conf', {options})")
    deck = deck.replace("i_phase d_phase_conf\ndump_modify", "i_phase d_phase_conf i_phase_local d_phase_local_conf\ndump_modify")
    return hot_run(deck, 30)


@needs_mpi_lammps
def test_in_situ_consensus_is_the_offline_one_in_both_modes(workdir, quartz, common_vars, classifier):
    """Both modes on 2 ranks give the offline Classifier's consensus labels and confidences, frame by frame; the
    consensus changed labels (else the local mode's extra exchange would go untested)."""
    rc, screen, _, cwd = run_deck(workdir, "consensus", consensus_deck(0.5), quartz, common_vars)
    assert rc == 0, screen[-3000:]
    blended = Classifier.load(common_vars["checkpoint"], device="cpu", consensus=0.5)
    frames = list(formats.read_dump(cwd / "dump.phase"))
    assert [f.timestep for f in frames] == list(range(0, 31, 5))
    changed = 0
    for frame in frames:
        ref = blended.classify(frame.positions(), frame.cell(), frame.species(TYPE_MAP), pbc=frame.pbc,
                               origin=frame.boxlo)
        for name in ("phase", "phase_local"):
            assert np.array_equal(frame.columns[f"i_{name}"], ref.labels), (name, frame.timestep)
            np.testing.assert_allclose(frame.columns[f"d_{name}_conf"], ref.confidence, atol=1e-5)
        changed += int((ref.labels != offline(classifier, frame).labels).sum())
    assert changed > 0, "the consensus never changed a label: the test proves nothing"


@needs_mpi_lammps
def test_the_weight_may_come_from_a_lammps_variable_and_a_wrong_one_stops_the_run(workdir, quartz, common_vars):
    """consensus="${name}" (inputs/phase_labels.lmp's phase_consensus) is read at set-up; "checkpoint" is the weight
    the checkpoint was calibrated with; outside [0, 1] the run stops with one message that says what the weight is."""
    blended = Classifier.load(common_vars["checkpoint"], device="cpu", consensus=0.5)
    calibrated = ckpt_io.load(common_vars["checkpoint"])  # a checkpoint whose threshold was chosen with w = 0.5
    calibrated.calibration = {"temperature": 1.0, "threshold": 0.0, "consensus": 0.5}
    ckpt_io.save(calibrated, workdir / "calibrated_w05.pt")
    for value, ok in (("0.5", True), ("checkpoint", True), ("2", False)):
        deck = error_deck('"${checkpoint}", types="Si O", consensus="${phase_consensus}"').replace(
            "fix nve all nve", f"fix nve all nve\nvariable phase_consensus index {value}")
        given = dict(common_vars, checkpoint=workdir / "calibrated_w05.pt") if value == "checkpoint" else common_vars
        rc, screen, log, cwd = run_deck(workdir, f"consensus_variable_{value}", deck, quartz, given)
        if ok:
            assert rc == 0, screen[-3000:]
            assert "neighbour consensus 0.5," in screen  # the set-up line says which weight labels
            for frame in formats.read_dump(cwd / "dump.phase"):
                ref = blended.classify(frame.positions(), frame.cell(), frame.species(TYPE_MAP), pbc=frame.pbc,
                                       origin=frame.boxlo)
                assert np.array_equal(frame.columns["i_phase"], ref.labels), frame.timestep
        else:
            ours = [line for line in log.splitlines() if line.startswith("ERROR: lammps-phase:")]
            assert rc != 0 and len(ours) == 1 and "consensus 2 is outside [0, 1]" in ours[0], (ours, screen[-3000:])


@needs_mpi_lammps
def test_in_situ_order_pooling_is_the_offline_one_in_both_modes(workdir, quartz, common_vars):
    """Consensus then 3 rounds of α/β pooling on 2 ranks, both modes: the offline Classifier's labels frame by
    frame, with labels the pooling changed (a random network that reads this quartz as both quartzes)."""
    from conftest import make_random_checkpoint

    both = make_random_checkpoint(workdir / "quartzes.pt", classes=["alpha_quartz", "beta_quartz", "coesite",
                                                                    "amorphous"])
    given = dict(common_vars, checkpoint=both)
    rc, screen, _, cwd = run_deck(workdir, "pooling", consensus_deck(0.5, pooling=3), quartz, given)
    assert rc == 0, screen[-3000:]
    assert "alpha/beta-quartz pooling 3 rounds" in screen  # ASCII: the line goes through LAMMPS's output
    pooled = Classifier.load(both, device="cpu", consensus=0.5, pooling=3)
    blended = Classifier.load(both, device="cpu", consensus=0.5, pooling=0)
    changed = 0
    for frame in formats.read_dump(cwd / "dump.phase"):
        args = (frame.positions(), frame.cell(), frame.species(TYPE_MAP))
        ref = pooled.classify(*args, pbc=frame.pbc, origin=frame.boxlo)
        for name in ("phase", "phase_local"):
            assert np.array_equal(frame.columns[f"i_{name}"], ref.labels), (name, frame.timestep)
            np.testing.assert_allclose(frame.columns[f"d_{name}_conf"], ref.confidence, atol=1e-5)
        changed += int((ref.labels != blended.classify(*args, pbc=frame.pbc, origin=frame.boxlo).labels).sum())
    assert changed > 0, "the pooling never changed a label: the test proves nothing"
