"""Variant blocks of a training config: checked on load, keyed and parametrised as heating runs, and their
per-atom labels read back for the datasets (lammps_phase.training.config / lammps_phase.training.runs)."""

from __future__ import annotations

import json
import numpy as np
import pytest

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.training.config import load_config
from lammps_phase.training.runs import decode_run_id, iter_snapshots, run_key


BASE = """
name = "v"
elements = ["Si", "O"]
potential = "bks_dsf"
output = "{out}"
[runs]
seeds = {{ train = [1], val = [2], test = [3] }}
"""


def _config(tmp_path, blocks: str):
    path = tmp_path / "v.toml"
    path.write_text(BASE.format(out=tmp_path / "v.pt") + blocks)
    return path


def test_config_variants_are_checked(tmp_path):
    ok = '[[phase]]\nname = "alpha_quartz"\nvariant = "slab"\naxis = "x"\n[[phase]]\nname = "alpha_quartz"\n'
    cfg = load_config(_config(tmp_path, ok))
    assert [run_key(p, 0.0, 1) for p in cfg.phases] == ["alpha_quartz_slab-x_0GPa_seed1", "alpha_quartz_0GPa_seed1"]
    for block, message in [
        ('variant = "slab"\naxis = "q"', "axis must be x, y or z"),
        ('variant = "sheared"', "variant 'sheared'"),
        ('variant = "strained"\nkind = "melt"', "variant strained takes kind crystal"),
        ('variant = "strained"\nstrain = 0.6', "strain must be a compression"),
        ('variant = "slab"\nvacuum = 5.0', "vacuum 5.0"),
        ('variant = "interface"\npartner = "magic"', "partner must be"),
        ('variant = "interface"\npartner = "coesite"', "partner 'coesite' is not a class of this config"),
    ]:
        with pytest.raises(LammpsPhaseError, match=message):
            load_config(_config(tmp_path, f'[[phase]]\nname = "alpha_quartz"\n{block}\n'))
    twice = '[[phase]]\nname = "alpha_quartz"\nvariant = "slab"\n' * 2
    with pytest.raises(LammpsPhaseError, match=r"alpha_quartz at 0 GPa \(slab-z\) appears in two"):
        load_config(_config(tmp_path, twice))


def test_per_atom_labels_of_an_interface_run_reach_the_datasets(tmp_path):
    blocks = ('[[phase]]\nname = "alpha_quartz"\nvariant = "interface"\npartner = "melt"\n'
              '[[phase]]\nname = "melt"\nkind = "melt"\nstructure = "alpha_quartz"\n')
    cfg = load_config(_config(tmp_path, blocks))
    assert cfg.classes == ["alpha_quartz", "melt"]
    runs = tmp_path / "work" / "runs"
    runs.mkdir(parents=True)
    n = 6
    for spec in cfg.phases:
        for seed in (1, 2, 3):
            arrays = dict(positions=np.zeros((1, n, 3), np.float32), cells=np.eye(3)[None] * 10, origins=np.zeros((1, 3)),
                          temperature=np.array([300.0], np.float32), pressure=np.zeros(1, np.float32),
                          species=np.array(["Si", "O", "O"] * 2))
            if spec.variant == "interface":
                arrays["atom_labels"] = np.array([[0, 0, -1, 1, 1, 1]], np.int8)
            np.savez(runs / f"{run_key(spec, 0.0, seed)}.npz", **arrays)
    frames = list(iter_snapshots(cfg, tmp_path / "work", "test"))
    assert frames[0][4].tolist() == [0, 0, -1, 1, 1, 1]  # crystal, unlabelled, melt
    assert frames[1][4].tolist() == [1] * n
    assert frames[0][7] != frames[1][7]  # run ids differ
    # only some blocks: the others' runs need not exist; labels and run ids stay the whole config's
    next(runs.glob("melt_*seed1.npz")).unlink()
    (melt_only,) = iter_snapshots(cfg, tmp_path / "work", "train", lambda spec: spec.variant == "interface")
    assert melt_only[4].tolist() == [0, 0, -1, 1, 1, 1] and decode_run_id(melt_only[7])[1] == 0


def test_a_quartz_void_run_labels_its_atoms_shell_by_shell(tmp_path):
    """A void run's codes (0: the block's phase, −1: a shell that lost its quartz tilt) reach the datasets in a
    config with no glass or melt class; such runs record the rule with their cache, a cluster's runs do not."""
    from lammps_phase.data.variants import VOID_LABELS
    from lammps_phase.training.runs import run_params

    blocks = ('[[phase]]\nname = "alpha_quartz"\nvariant = "sphere"\ngeometry = "void"\nradius = 8.0\n'
              '[[phase]]\nname = "alpha_quartz"\nvariant = "sphere"\ngeometry = "cluster"\n')
    cfg = load_config(_config(tmp_path, blocks))
    void, cluster = cfg.phases
    assert run_params(cfg, void, 0.0, 1)["labels"] == VOID_LABELS and "labels" not in run_params(cfg, cluster, 0.0, 1)
    # the rule follows the crystal the run is made of, whatever the block's class is called
    (renamed,) = load_config(_config(tmp_path, '[[phase]]\nname = "quartz"\nstructure = "alpha_quartz"\n'
                                                'variant = "sphere"\ngeometry = "void"\n')).phases
    assert run_params(cfg, renamed, 0.0, 1)["labels"] == VOID_LABELS
    runs = tmp_path / "work" / "runs"
    runs.mkdir(parents=True)
    for spec in cfg.phases:
        for seed in (1, 2, 3):
            arrays = dict(positions=np.zeros((1, 4, 3), np.float32), cells=np.eye(3)[None] * 10,
                          origins=np.zeros((1, 3)), temperature=np.array([600.0], np.float32),
                          pressure=np.zeros(1, np.float32), species=np.array(["Si", "O", "O", "O"]))
            if spec is void:
                arrays["atom_labels"] = np.array([[-1, -1, 0, 0]], np.int8)
            np.savez(runs / f"{run_key(spec, 0.0, seed)}.npz", **arrays)
    frames = list(iter_snapshots(cfg, tmp_path / "work", "test"))
    assert frames[0][4].tolist() == [-1, -1, 0, 0] and frames[1][4].tolist() == [0] * 4


def test_a_block_may_name_its_own_potential(tmp_path):
    """One class fed by two potentials (issue 12): the block's potential reaches its runs and their cache names."""
    from lammps_phase.training.config import potential_of
    from lammps_phase.training.runs import run_params

    blocks = ('[[phase]]\nname = "alpha_quartz"\n'
              '[[phase]]\nname = "alpha_quartz"\npotential = "tersoff_munetoh"\n')
    cfg = load_config(_config(tmp_path, blocks))
    bks, tersoff = cfg.phases
    assert [potential_of(cfg, p) for p in cfg.phases] == ["bks_dsf", "tersoff_munetoh"]
    assert run_key(bks, 0.0, 1) == "alpha_quartz_0GPa_seed1"
    assert run_key(tersoff, 0.0, 1) == "alpha_quartz_tersoff_munetoh_0GPa_seed1"  # no clash at one pressure
    assert run_params(cfg, tersoff, 0.0, 1)["potential"] == "tersoff_munetoh"
    shaped = ('[[phase]]\nname = "alpha_quartz"\nvariant = "sphere"\n'
              '[[phase]]\nname = "alpha_quartz"\nvariant = "sphere"\npotential = "tersoff_munetoh"\n'
              '[[phase]]\nname = "alpha_quartz"\nvariant = "interface"\npartner = "melt"\npotential = "tersoff_munetoh"\n'
              '[[phase]]\nname = "melt"\nkind = "melt"\nstructure = "alpha_quartz"\n')
    keys = [run_key(p, 0.0, 1) for p in load_config(_config(tmp_path, shaped)).phases]
    assert keys[:3] == ["alpha_quartz_cluster-r12_0GPa_seed1", "alpha_quartz_tersoff_munetoh_cluster-r12_0GPa_seed1",
                        "alpha_quartz_tersoff_munetoh_interface-melt-z_0GPa_seed1"]  # clusters, interfaces too
    with pytest.raises(LammpsPhaseError, match="potential = .*is unknown"):
        load_config(_config(tmp_path, '[[phase]]\nname = "alpha_quartz"\npotential = "bks_typo"\n'))


def test_strained_runs_judged_by_an_older_check_are_remade(tmp_path):
    """The strained check decides which snapshots a run keeps, so it is part of a strained run's cache parameters
    (and only of those: bulk runs made before it stay valid)."""
    from lammps_phase.data.variants import STRAINED_CHECK
    from lammps_phase.training.runs import _cached_run, run_params

    blocks = ('[[phase]]\nname = "alpha_quartz"\n'
              '[[phase]]\nname = "alpha_quartz"\nvariant = "strained"\naxis = "y"\n')
    cfg = load_config(_config(tmp_path, blocks))
    bulk, strained = cfg.phases
    params = run_params(cfg, strained, 0.0, 1)
    assert params["check"] == STRAINED_CHECK
    assert "check" not in run_params(cfg, bulk, 0.0, 1)
    # a run cached by the session-14 code recorded no check: it is remade, with the reason in the log
    npz = tmp_path / "alpha_quartz_strained-y_0GPa_seed1.npz"
    npz.write_bytes(b"")
    older = {k: v for k, v in params.items() if k != "check"}
    npz.with_suffix(".json").write_text(json.dumps({"params": older, "kept": 3}))
    said = []
    assert _cached_run(npz, params, said.append) is None
    assert "parameters changed" in said[0]
    assert _cached_run(npz, older, said.append)["kept"] == 3


def test_interface_runs_labelled_by_an_older_rule_are_remade(tmp_path):
    """Crystal | glass and crystal | melt runs record how their atoms were labelled; a crystal | crystal run, labelled
    otherwise, does not, so its cached runs stay valid."""
    from lammps_phase.data.variants import INTERFACE_LABELS
    from lammps_phase.training.runs import run_params

    blocks = ('[[phase]]\nname = "alpha_quartz"\nvariant = "interface"\npartner = "amorphous"\n'
              '[[phase]]\nname = "alpha_quartz"\nvariant = "interface"\npartner = "stishovite"\n'
              '[[phase]]\nname = "amorphous"\nkind = "glass"\nstructure = "alpha_quartz"\n'
              '[[phase]]\nname = "stishovite"\n')
    cfg = load_config(_config(tmp_path, blocks))
    glass, bicrystal = cfg.phases[:2]
    assert run_params(cfg, glass, 0.0, 1)["labels"] == INTERFACE_LABELS
    assert "labels" not in run_params(cfg, bicrystal, 0.0, 1)


def test_the_relaxed_cell_of_a_strained_run_is_read_back(tmp_path):
    """Strain in the report is measured against the cell the run relaxed to, which the run file keeps."""
    from lammps_phase.training.runs import run_reference_cell

    cfg = load_config(_config(tmp_path, '[[phase]]\nname = "alpha_quartz"\nvariant = "strained"\naxis = "y"\n'))
    runs = tmp_path / "work" / "runs"
    runs.mkdir(parents=True)
    spec = cfg.phases[0]
    for seed, keep in ((1, True), (2, True), (3, True)):
        arrays = dict(positions=np.zeros((1, 3, 3), np.float32), cells=np.diag([10.0, 9.0, 10.0])[None],
                      origins=np.zeros((1, 3)), temperature=np.array([300.0], np.float32),
                      pressure=np.zeros(1, np.float32), species=np.array(["Si", "O", "O"]))
        if seed != 2:
            arrays["reference_cell"] = np.eye(3) * 10
        np.savez(runs / f"{run_key(spec, 0.0, seed)}.npz", **arrays)
    run_id = next(iter_snapshots(cfg, tmp_path / "work", "test"))[7]
    assert np.allclose(run_reference_cell(cfg, tmp_path / "work", run_id), np.eye(3) * 10)
    val_id = next(iter_snapshots(cfg, tmp_path / "work", "val"))[7]
    assert run_reference_cell(cfg, tmp_path / "work", val_id) is None  # a run saved before the cell was kept


def test_extra_training_seeds_add_runs_of_one_variant_or_kind_only(tmp_path):
    """[runs] extra_train_seeds: more training runs of the scarce places (here interfaces), none of the bulk, and
    never a seed that validation or test runs use."""
    from lammps_phase.training.config import block_seeds

    blocks = ('[[phase]]\nname = "alpha_quartz"\nvariant = "interface"\npartner = "melt"\n'
              '[[phase]]\nname = "melt"\nkind = "melt"\nstructure = "alpha_quartz"\n')

    def config(extra: str):
        path = tmp_path / "x.toml"
        path.write_text(BASE.format(out=tmp_path / "x.pt") + extra + "\n" + blocks)
        return load_config(path)

    cfg = config("extra_train_seeds = { interface = [5, 6] }")
    interface, melt = cfg.phases
    assert block_seeds(cfg, interface, "train") == [1, 5, 6] and block_seeds(cfg, melt, "train") == [1]
    assert block_seeds(cfg, interface, "val") == [2] and block_seeds(cfg, interface, "test") == [3]
    runs = tmp_path / "work" / "runs"
    runs.mkdir(parents=True)
    for spec in cfg.phases:
        for seed in block_seeds(cfg, spec, "train"):
            np.savez(runs / f"{run_key(spec, 0.0, seed)}.npz", positions=np.zeros((1, 3, 3), np.float32),
                     cells=np.eye(3)[None] * 10, origins=np.zeros((1, 3)), temperature=np.array([300.0], np.float32),
                     pressure=np.zeros(1, np.float32), species=np.array(["Si", "O", "O"]))
    seeds = [decode_run_id(frame[7])[0] for frame in iter_snapshots(cfg, tmp_path / "work", "train")]
    assert seeds == [1, 5, 6, 1]
    # a kind names blocks across variants; a block named by both its variant and its kind runs each seed once
    cfg = config("extra_train_seeds = { interface = [5, 6], melt = [6, 7] }")
    interface, melt = cfg.phases
    assert block_seeds(cfg, interface, "train") == [1, 5, 6] and block_seeds(cfg, melt, "train") == [1, 6, 7]
    cfg = config("extra_train_seeds = { interface = [5], crystal = [5, 8] }")
    assert block_seeds(cfg, cfg.phases[0], "train") == [1, 5, 8] and block_seeds(cfg, cfg.phases[1], "train") == [1]
    for extra, message in [("extra_train_seeds = { interface = [2] }", r"runs.seeds does not use \(\[2\]\)"),
                           ("extra_train_seeds = { interface = [5, 5] }", "distinct seeds"),
                           ("extra_train_seeds = { interfaces = [5] }", "names 'interfaces'"),
                           ('extra_train_seeds = { interface = "5" }', "extra_train_seeds")]:
        with pytest.raises(LammpsPhaseError, match=message):
            config(extra)
