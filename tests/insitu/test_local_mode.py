"""Local mode (lammps_phase.insitu.local_mode): the receptive graph of owned + ghost atoms labels exactly like
the whole periodic sample, and the ghost shell is checked, offline and inside LAMMPS under MPI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lammps_phase.inference import formats
from lammps_phase.data import structures
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.classify import Classifier
from lammps_phase.insitu.halo import HaloExchange, HaloPlan
from lammps_phase.insitu.local_mode import ROW_SAFETY, GhostShell, local_ghost_cutoff, owned_rows
from lammps_runs import (TYPE_MAP, common_vars, error_deck, hot_run, needs_mpi_lammps, quartz, run_deck, with_local_labeler,
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
def model_path(request, random_sio2_checkpoint, tmp_path_factory) -> Path:
    """The random k = 12 model, and one whose layers read fewer neighbours (12, 6 and 4 nearest)."""
    if request.param == "all k":
        return Path(random_sio2_checkpoint)
    from conftest import make_random_checkpoint

    return make_random_checkpoint(tmp_path_factory.mktemp("lk") / "lk.pt", channels=(16, 16, 16), layer_k=[12, 6, 4])


@pytest.fixture(scope="module")
def classifier(model_path) -> Classifier:
    return Classifier.load(model_path, device="cpu")


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
    """Every atom owned, followed by the periodic images within ``width`` Å of the box as ghosts (as LAMMPS has
    them): positions, types and atom IDs (index + 1)."""
    layers = int(np.ceil(width / np.diag(cell).min()))
    steps = np.arange(-layers, layers + 1)
    shifts = np.array([(a, b, c) for a in steps for b in steps for c in steps if (a, b, c) != (0, 0, 0)])
    images = (positions[None, :, :] + (shifts @ cell)[:, None, :]).reshape(-1, 3)
    frac = images @ np.linalg.inv(cell)
    pad = width / np.diag(cell)
    near = np.all((frac >= -pad) & (frac < 1.0 + pad), axis=1)
    ids = np.arange(1, len(positions) + 1, dtype=np.int64)
    return (np.concatenate([positions, images[near]]), np.concatenate([types, np.tile(types, len(shifts))[near]]),
            np.concatenate([ids, np.tile(ids, len(shifts))[near]]))


def label_one_rank(classifier: Classifier, x: np.ndarray, ids: np.ndarray, types: np.ndarray, nlocal: int,
                   cell: np.ndarray):
    """What the labeler does in local mode on a single rank (COMM_SELF): rows, ghost check, halo plan, labels."""
    from mpi4py import MPI

    shell = GhostShell(OneRank(cell), x, nlocal)
    rows = owned_rows(x, ids, types, nlocal, classifier.k)
    shell.require(float(rows.kth.max()) * ROW_SAFETY, classifier.k)
    shell.require_exact(rows.kth, classifier.k)
    plan = HaloPlan(MPI.COMM_SELF, ids[:nlocal], rows.halo_ids, shell.fractional(rows.halo_x),
                    (shell.sub_lo, shell.sub_hi), shell.spacing, shell.periodic)
    exchange = HaloExchange(plan, classifier.fast.layer_input_widths)
    species = classifier.species_indices(np.concatenate([types[:nlocal], rows.halo_types]), TYPE_MAP)
    result = classifier.classify_neighbors(species, rows.neighbors, labelled=nlocal, halo=exchange)
    assert exchange.calls == len(classifier.checkpoint.config.channels)
    return result, rows


def test_owned_atoms_label_like_the_whole_periodic_sample(classifier, crystal):
    positions, cell, types = crystal
    ref = classifier.classify(positions, cell, types, type_map=TYPE_MAP)
    assert len(np.unique(ref.labels)) > 1  # the comparison is not vacuous
    x, all_types, ids = owned_and_ghosts(positions, cell, types, local_ghost_cutoff(classifier, positions, cell))
    result, rows = label_one_rank(classifier, x, ids, all_types, len(positions), cell)
    assert len(rows.halo_ids) == 0  # one rank: every ghost is an image of an owned atom
    assert np.array_equal(result.labels, ref.labels)
    np.testing.assert_allclose(result.confidence, ref.confidence, atol=1e-5)


def test_owned_rows_are_the_true_neighbours_and_the_halo_one_entry_per_atom(classifier, crystal):
    positions, cell, types = crystal
    x, all_types, ids = owned_and_ghosts(positions, cell, types, local_ghost_cutoff(classifier, positions, cell))
    k, nlocal = classifier.k, 10
    ids = ids.copy()
    ids[nlocal:len(positions)] += 10**6  # pretend atoms 10… are another rank's: their own rows are not built here
    rows = owned_rows(x, ids, all_types, nlocal, k)
    brute = np.sort(np.linalg.norm(x[None, :, :] - x[:nlocal, None, :], axis=2), axis=1)[:, 1 : k + 1]
    np.testing.assert_allclose(rows.neighbors.distances, brute, rtol=1e-6)
    assert len(np.unique(rows.halo_ids)) == len(rows.halo_ids) and (rows.halo_ids > 0).all()
    # each entry points at an owned atom or a halo slot of the same atom ID, whatever image the row found
    target_ids = np.concatenate([ids[:nlocal], rows.halo_ids])[rows.neighbors.index]
    raw = knn_rows(x, nlocal, k)
    assert np.array_equal(target_ids, ids[raw])
    assert rows.neighbors.index.max() < nlocal + len(rows.halo_ids)


def knn_rows(x: np.ndarray, nlocal: int, k: int) -> np.ndarray:
    d = np.linalg.norm(x[None, :, :] - x[:nlocal, None, :], axis=2)
    return np.argsort(d, axis=1, kind="stable")[:, 1 : k + 1]


def test_a_thin_ghost_shell_asks_for_the_cutoff_local_ghost_cutoff_gives(classifier, crystal):
    positions, cell, types = crystal
    cutoff = local_ghost_cutoff(classifier, positions, cell)
    assert cutoff < 10.0  # one neighbour row, not the receptive field: within a typical pair cutoff + skin
    x, all_types, ids = owned_and_ghosts(positions, cell, types, 4.0)
    with pytest.raises(LammpsPhaseError, match=f"add `comm_modify cutoff {cutoff:g}` before the run"):
        label_one_rank(classifier, x, ids, all_types, len(positions), cell)


@needs_mpi_lammps
@pytest.mark.parametrize("ranks, boxes", [(2, "right"), (4, "right"), (3, "wrong")])
def test_ranks_exchanging_halo_features_label_like_the_whole_sample(classifier, model_path, tmp_path, ranks, boxes):
    """Without LAMMPS: N ranks own slabs of a periodic crystal and exchange each layer's halo features
    (tests/insitu/halo_ranks.py). With the wrong subdomains handed to the plan, owners are found by asking every
    rank: same labels."""
    import json
    import os
    import subprocess
    import sys

    out = tmp_path / "halo.json"
    cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", "--allow-run-as-root", sys.executable,
           str(Path(__file__).parent / "halo_ranks.py"), str(model_path), str(out)]
    if boxes == "wrong":
        cmd.append("--wrong-boxes")
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_MCA_rmaps_base_oversubscribe="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    got = json.loads(out.read_text())
    assert len(np.unique(got["reference"])) > 1
    assert got["labels"] == got["reference"]
    np.testing.assert_allclose(got["confidence"], got["reference_confidence"], atol=1e-5)
    assert got["exchanges"] == [len(classifier.checkpoint.config.channels)] * ranks
    assert all(h > 0 for h in got["halo"]) and got["unowned"] == [0] * ranks
    assert sum(got["owned"]) == len(got["labels"])  # every atom labelled once, by its owner
    assert (min(got["asked_everyone"]) > 0) if boxes == "wrong" else (got["asked_everyone"] == [0] * ranks)


# ------------------------------------------------------------------------------------------ inside LAMMPS


@needs_mpi_lammps
def test_local_mode_needs_no_ghosts_beyond_the_pair_styles_own(workdir, quartz, common_vars):
    """Each rank needs only its atoms' k nearest neighbours (≈ 3.6 Å here); the rest of the 4-hop receptive field
    arrives as halo features from the neighbouring ranks. So the ghost atoms a 10 Å pair style keeps anyway
    (cutoff + 2 Å skin) suffice: mode='local' runs without `comm_modify cutoff` and labels exactly as gather
    mode. (A zero-strength lj/cut 10.0 overlaid on Tersoff stands in for BKS's 10 Å cutoff.) Tersoff alone keeps
    ghosts to ≈ 5 Å, of which 2 Å skin are not guaranteed: too few, and the error names the cutoff to set."""
    plain = with_local_labeler(error_deck('"${checkpoint}", types="Si O"')).replace(
        "i_phase d_phase_conf\ndump_modify", "i_phase d_phase_conf i_phase_local d_phase_local_conf\ndump_modify")
    deck = plain.replace(
        "pair_style tersoff\npair_coeff * * ${potfile} Si O",
        "pair_style hybrid/overlay tersoff lj/cut 10.0\npair_coeff * * tersoff ${potfile} Si O\n"
        "pair_coeff * * lj/cut 0.0 1.0",
    )
    assert "comm_modify" not in deck and "lj/cut 10.0" in deck
    rc, screen, log, cwd = run_deck(workdir, "pair_ghosts_local", deck, quartz, common_vars)
    assert rc == 0, screen[-3000:]
    frames = list(formats.read_dump(cwd / "dump.phase"))
    assert [f.timestep for f in frames] == [0, 5, 10]
    for frame in frames:
        labels = frame.columns["i_phase"]
        assert np.array_equal(frame.columns["i_phase_local"], labels)
        np.testing.assert_allclose(frame.columns["d_phase_local_conf"], frame.columns["d_phase_conf"], atol=1e-5)
        assert len(np.unique(labels)) > 1  # non-trivial labels
    rc, screen, _, _ = run_deck(workdir, "tersoff_local", plain, quartz, common_vars)
    assert rc != 0 and "add `comm_modify cutoff" in screen and "k = 12 nearest neighbours" in screen


@needs_mpi_lammps
def test_local_labels_stay_exact_while_atoms_change_ranks(workdir, quartz, common_vars):
    """A hot run reneighbours every step and atoms cross between the ranks: every labelling rebuilds or reuses the
    halo plan, and local mode must still label exactly as gather mode at every step."""
    deck = with_local_labeler(error_deck('"${checkpoint}", types="Si O"', ghost=8.0)).replace(
        "i_phase d_phase_conf\ndump_modify", "i_phase d_phase_conf i_phase_local d_phase_local_conf\ndump_modify")
    deck = hot_run(deck, 60)
    deck = deck.replace("    local(ptr)", "    local(ptr)\n    owned.append(local.stats.last.owned)").replace(
        "def phase_step(ptr):", "owned = []\ndef phase_step(ptr):")
    deck += ("python dump_owned input 1 SELF format p here \"\"\"\ndef dump_owned(ptr):\n"
             "    from mpi4py import MPI\n    open(f'owned.{MPI.COMM_WORLD.Get_rank()}', 'w').write(' '.join(map(str, owned)))\n"
             "\"\"\"\npython dump_owned invoke\n")
    rc, screen, _, cwd = run_deck(workdir, "migration_local", deck, quartz, common_vars)
    assert rc == 0, screen[-3000:]
    owned = [[int(v) for v in (cwd / f"owned.{r}").read_text().split()] for r in range(2)]
    assert len(set(owned[0][1:])) > 1, owned  # atoms did move between the ranks during the run
    frames = list(formats.read_dump(cwd / "dump.phase"))
    assert [f.timestep for f in frames] == list(range(0, 61, 5))
    for frame in frames:
        assert np.array_equal(frame.columns["i_phase_local"], frame.columns["i_phase"]), frame.timestep
        np.testing.assert_allclose(frame.columns["d_phase_local_conf"], frame.columns["d_phase_conf"], atol=1e-5)
