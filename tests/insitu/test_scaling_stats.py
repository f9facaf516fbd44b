"""The labeler's statistics (PhaseLabeler.stats, .report): atoms owned and labelled, bytes per labelling, on 2 ranks
under ``mpirun … lmp``. They feed benchmarks/scaling.py and docs/scaling.md, so they must be exact where they can be:
gather mode moves 36 B per atom to rank 0 (x, type, id) and 12 B back (label, confidence) and rank 0 labels every
atom; local mode labels exactly the atoms each rank owns and moves only its halo's features, layer by layer."""

from __future__ import annotations

import json
import re

import pytest

from lammps_phase.insitu.statistics import recording_deck_code
from lammps_runs import NEEDS_MPI_LAMMPS, classifier, common_vars, error_deck, quartz, run_deck, workdir

pytestmark = NEEDS_MPI_LAMMPS
SHARED_FIXTURES = (classifier, common_vars, quartz, workdir)  # module-scoped, from lammps_runs

GATHER_IN, GATHER_OUT = 24 + 4 + 8, 4 + 8  # bytes per atom: x, type, id to rank 0; label, confidence back
CONTROL_MAX = 256  # bytes per labelling of the small collectives (counts, error agreement, class counts)


def stats_deck(mode: str, ghost: float | None) -> str:
    """error_deck (labels at steps 0, 5, 10 on 2 ranks) that keeps every call's stats and reports after the run."""
    deck = error_deck(f'"${{checkpoint}}", types="Si O", mode="{mode}"', ghost=ghost)
    deck = deck.replace("def phase_step(ptr): labeler(ptr)", recording_deck_code("stats.{rank}.json"))
    return deck + "python dump_stats input 1 SELF format p exists\npython dump_stats invoke\n"


def run_stats(workdir, name, mode, ghost, quartz, common_vars):
    rc, screen, log, cwd = run_deck(workdir, name, stats_deck(mode, ghost), quartz, common_vars)
    assert rc == 0, screen[-3000:]
    ranks = [json.loads((cwd / f"stats.{r}.json").read_text()) for r in range(2)]
    assert [len(calls) for calls in ranks] == [3, 3]  # steps 0, 5, 10
    natoms = int(re.search(r"^\s*(\d+) atoms$", log, re.M).group(1))
    return ranks, natoms, log


def test_gather_mode_rank0_labels_all_and_bytes_are_the_arrays(workdir, quartz, common_vars):
    ranks, natoms, log = run_stats(workdir, "stats_gather", "gather", None, quartz, common_vars)
    for root, other in zip(*ranks):
        assert root["mode"] == other["mode"] == "gather" and root["step"] == other["step"]
        assert root["owned"] + other["owned"] == natoms and other["owned"] > 0
        assert root["labelled"] == natoms and other["labelled"] == 0
        # rank 1 sends its atoms' x/type/id and gets their labels/confidences; rank 0 the mirror image
        assert other["atom_sent"] == GATHER_IN * other["owned"] == root["atom_received"]
        assert other["atom_received"] == GATHER_OUT * other["owned"] == root["atom_sent"]
        for r in (root, other):
            assert 0 < r["sent"] - r["atom_sent"] <= CONTROL_MAX and 0 < r["received"] - r["atom_received"] <= CONTROL_MAX
            assert r["seconds"] > 0
    # one report line per rank, in rank order, in the log (called outside a run)
    lines = [line for line in log.splitlines() if line.startswith("lammps-phase: stats rank")]
    assert [line.split(",")[0] for line in lines] == ["lammps-phase: stats rank 0 of 2", "lammps-phase: stats rank 1 of 2"]
    assert f"labelled {natoms} (" in lines[0] and "labelled 0 (0.00 x owned)" in lines[1]
    assert "3 labelling(s)" in lines[0]


def test_local_mode_labels_its_own_atoms_and_moves_only_halo_features(workdir, quartz, common_vars, classifier):
    ranks, natoms, log = run_stats(workdir, "stats_local", "local", 8.0, quartz, common_vars)
    per_halo_atom = 4 * sum(classifier.fast.layer_input_widths)  # float32 layer inputs, one exchange per layer
    calls = list(zip(*ranks))
    # the initial labelling (python … invoke, before the run: no ghost atoms yet) is gathered; the rest are local
    assert [c[0]["mode"] for c in calls] == ["gather", "local", "local"]
    for first, second in calls[1:]:
        assert first["owned"] + second["owned"] == natoms
        # what one rank sends of its atoms' features is what the other receives, whole halo rows of every layer
        assert first["atom_sent"] == second["atom_received"] and second["atom_sent"] == first["atom_received"]
        for c in (first, second):
            assert c["mode"] == "local" and c["owned"] > 0
            assert c["labelled"] == c["owned"]  # no receptive halo put through the model: its features arrive
            assert c["atom_received"] > 0 and c["atom_received"] % per_halo_atom == 0
            halo = c["atom_received"] // per_halo_atom
            assert halo < c["owned"]
            # besides the features: the small collectives and, when the plan is (re)built, 8 B per atom ID asked
            # and 1 B per answer, both ways
            control = c["sent"] - c["atom_sent"]
            assert 0 < control <= CONTROL_MAX + 9 * (halo + c["atom_sent"] // per_halo_atom)
    lines = [line for line in log.splitlines() if line.startswith("lammps-phase: stats rank")]
    # per rank: one line for the gathered initial call, one for the local ones
    assert len(lines) == 4 and sum("mode local: 2 labelling(s)" in line for line in lines) == 2
    assert sum("(1.00 x owned)" in line for line in lines) == 2
