"""Local mode (lammps_phase.insitu.local_mode): the receptive graph of owned + ghost atoms labels exactly like
the whole periodic sample, and the ghost shell is checked, offline and inside LAMMPS under MPI."""

from __future__ import annotations

import numpy as np
import pytest

from lammps_phase.inference import formats
from lammps_phase.data import structures
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.classify import Classifier
from lammps_phase.insitu.local_mode import GhostShell, label_owned, local_ghost_cutoff, receptive_graph
from lammps_runs import (TYPE_MAP, common_vars, error_deck, needs_mpi_lammps, quartz, run_deck, with_local_labeler,
                         workdir)

SHARED_FIXTURES = (common_vars, quartz, workdir)  # module-scoped, from lammps_runs


# ------------------------------------------------------------------------------------------ offline: one rank


class OneRank:
    """The few calls GhostShell makes of a ``lammps`` object: one rank owning a whole orthogonal periodic box."""

    def __init__(self, cell: np.ndarray) -> None:
        self.cell = cell

    def extract_box(self):
        return [0.0, 0.0, 0.0], list(np.diag(self.cell)), 0.0, 0.0, 0.0, [1, 1, 1], 0

    def extract_global(self, name: str):
        return {"triclinic": 0, "sublo": [0.0, 0.0, 0.0], "subhi": list(np.diag(self.cell))}[name]


@pytest.fixture(scope="module", params=["all k", "layer_k"])
def classifier(request, random_sio2_checkpoint, tmp_path_factory) -> Classifier:
    """The random k = 12 model, and one whose layers read fewer neighbours (hops of 4, 6 and 12 nearest, then a
    k row): its receptive graph takes a different frontier at every hop."""
    if request.param == "all k":
        return Classifier.load(random_sio2_checkpoint, device="cpu")
    from conftest import make_random_checkpoint

    path = make_random_checkpoint(tmp_path_factory.mktemp("lk") / "lk.pt", channels=(16, 16, 16), layer_k=[12, 6, 4])
    return Classifier.load(path, device="cpu")


@pytest.fixture(scope="module")
def crystal():
    """A jittered α-quartz box (orthogonal), atoms wrapped into it, with LAMMPS types."""
    c = structures.supercell(structures.build("alpha_quartz"), 15.0)
    rng = np.random.default_rng(5)
    cell = np.asarray(c.cell)
    frac = ((c.positions + rng.normal(scale=0.08, size=c.positions.shape)) @ np.linalg.inv(cell)) % 1.0
    types = np.array([TYPE_MAP.index(s) + 1 for s in c.symbols], dtype=np.int32)
    return frac @ cell, cell, types


def owned_and_ghosts(positions: np.ndarray, cell: np.ndarray, types: np.ndarray, width: float):
    """Every atom owned, followed by the periodic images within ``width`` Å of the box as ghosts (as LAMMPS has them)."""
    layers = int(np.ceil(width / np.diag(cell).min()))
    steps = np.arange(-layers, layers + 1)
    shifts = np.array([(a, b, c) for a in steps for b in steps for c in steps if (a, b, c) != (0, 0, 0)])
    images = (positions[None, :, :] + (shifts @ cell)[:, None, :]).reshape(-1, 3)
    frac = images @ np.linalg.inv(cell)
    pad = width / np.diag(cell)
    near = np.all((frac >= -pad) & (frac < 1.0 + pad), axis=1)
    return np.concatenate([positions, images[near]]), np.concatenate([types, np.tile(types, len(shifts))[near]])


def test_owned_atoms_label_like_the_whole_periodic_sample(classifier, crystal):
    positions, cell, types = crystal
    ref = classifier.classify(positions, cell, types, type_map=TYPE_MAP)
    assert len(np.unique(ref.labels)) > 1  # the comparison is not vacuous
    x, all_types = owned_and_ghosts(positions, cell, types, local_ghost_cutoff(classifier, positions, cell))
    shell = GhostShell(OneRank(cell), x, len(positions))
    labels, confidence, rows = label_owned(classifier, shell, x, all_types, len(positions), TYPE_MAP, with_margin=True)
    assert rows >= len(positions)  # the owned atoms and the halo the graph needed
    assert np.array_equal(labels, ref.labels)
    np.testing.assert_allclose(confidence, ref.confidence, atol=1e-5)


def test_receptive_graph_rows_are_the_true_neighbours(classifier, crystal):
    positions, cell, types = crystal
    x, _ = owned_and_ghosts(positions, cell, types, local_ghost_cutoff(classifier, positions, cell))
    k, hops = classifier.k, classifier.hop_neighbors
    graph = receptive_graph(x, 10, k, hops)
    assert np.array_equal(graph.atoms[:10], np.arange(10)) and len(np.unique(graph.atoms)) == len(graph.atoms)
    rows = graph.atoms[: graph.n_rows]
    brute = np.sort(np.linalg.norm(x[None, :, :] - x[rows, None, :], axis=2), axis=1)[:, 1 : k + 1]
    np.testing.assert_allclose(graph.neighbors.distances[: graph.n_rows], brute, rtol=1e-6)
    vectors = x[graph.atoms[graph.neighbors.index[: graph.n_rows]]] - x[rows, None, :]
    np.testing.assert_allclose(graph.neighbors.vectors[: graph.n_rows], vectors, atol=1e-5)
    # the atoms after the true rows enter only through the last hop's rows: self-loop placeholders
    assert np.array_equal(graph.neighbors.index[graph.n_rows:, 0], np.arange(graph.n_rows, len(graph.atoms)))


def test_a_thin_ghost_shell_asks_for_the_cutoff_local_ghost_cutoff_gives(classifier, crystal):
    positions, cell, types = crystal
    cutoff = local_ghost_cutoff(classifier, positions, cell)
    x, all_types = owned_and_ghosts(positions, cell, types, 6.0)
    shell = GhostShell(OneRank(cell), x, len(positions))
    with pytest.raises(LammpsPhaseError, match=f"add `comm_modify cutoff {cutoff:g}` before the run"):
        label_owned(classifier, shell, x, all_types, len(positions), TYPE_MAP, with_margin=True)


# ------------------------------------------------------------------------------------------ inside LAMMPS


@needs_mpi_lammps
def test_compact_model_labels_locally_within_the_pair_styles_own_ghost_shell(workdir, quartz, common_vars, tmp_path):
    """A 2-hop model (1 EdgeConv + bond-order inputs, k = 12) reaches ≈ 2 × 3.6 Å: the ghost atoms a 10 Å pair
    style keeps anyway (cutoff + 2 Å skin) suffice, so mode='local' runs without `comm_modify cutoff` and labels
    exactly as gather mode. (A zero-strength lj/cut 10.0 overlaid on Tersoff stands in for BKS's 10 Å cutoff.)"""
    from conftest import make_random_checkpoint

    compact = make_random_checkpoint(tmp_path / "compact.pt", channels=(32,))
    deck = with_local_labeler(error_deck('"${checkpoint}", types="Si O"').replace(
        "pair_style tersoff\npair_coeff * * ${potfile} Si O",
        "pair_style hybrid/overlay tersoff lj/cut 10.0\npair_coeff * * tersoff ${potfile} Si O\n"
        "pair_coeff * * lj/cut 0.0 1.0",
    )).replace("i_phase d_phase_conf\ndump_modify", "i_phase d_phase_conf i_phase_local d_phase_local_conf\ndump_modify")
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
