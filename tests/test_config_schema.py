"""The training-config schema (lammps_phase.config_schema): read from the dataclasses, checked before any MD."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from lammps_phase import config_schema
from lammps_phase.training import config as training_config, pipeline
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.model.network import ModelConfig
from lammps_phase.training.config import load_config
from lammps_phase.training.loop import TrainConfig

from conftest import TINY

ROOT = Path(__file__).resolve().parents[1]


def _load(tmp_path, text: str):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load_config(path)


def test_the_allowed_keys_are_the_dataclass_fields():
    sections = config_schema._sections()
    assert set(sections["train"][0]) == {f.name for f in dataclasses.fields(TrainConfig)} - {"progress"}
    assert set(sections["model"][0]) == {f.name for f in dataclasses.fields(ModelConfig)} - {"elements", "num_classes"}
    assert set(config_schema.phase_schema()) == ({f.name for f in dataclasses.fields(training_config.PhaseSpec)}
                                                 - {"pressures"}) | {"pressure_gpa"}
    assert {"seeds", "ranks", "supercell_min_length", "snapshot_every_ps"} <= set(sections["runs"][0])


def test_a_field_added_later_is_accepted_and_type_checked(tmp_path, monkeypatch):
    """A new PhaseSpec field needs no schema edit: its name is allowed and its type enforced at once."""
    extended = dataclasses.make_dataclass("PhaseSpec", [("skin_depth", float, dataclasses.field(default=2.0))],
                                          bases=(training_config.PhaseSpec,))
    monkeypatch.setattr(training_config, "PhaseSpec", extended)
    text = TINY.replace("ps = 0.4", "ps = 0.4\nskin_depth = 3.5", 1)
    assert _load(tmp_path, text).phases[0].skin_depth == 3.5
    with pytest.raises(LammpsPhaseError, match=r'skin_depth = "thick" must be a number'):
        _load(tmp_path, text.replace("skin_depth = 3.5", 'skin_depth = "thick"'))
    with pytest.raises(LammpsPhaseError, match="has no setting 'skin_dept'.*did you mean 'skin_depth'"):
        _load(tmp_path, text.replace("skin_depth", "skin_dept"))


def test_a_new_temperature_or_duration_field_gets_its_bounds_by_name(tmp_path, monkeypatch):
    extended = dataclasses.make_dataclass("PhaseSpec", [("anneal_temperature", float, dataclasses.field(default=900.0)),
                                                        ("anneal_ps", float, dataclasses.field(default=1.0))],
                                          bases=(training_config.PhaseSpec,))
    monkeypatch.setattr(training_config, "PhaseSpec", extended)
    with pytest.raises(LammpsPhaseError, match=r"anneal_temperature = -5: must be greater than 0 \(kelvin\)"):
        _load(tmp_path, TINY.replace("ps = 0.4", "ps = 0.4\nanneal_temperature = -5", 1))
    with pytest.raises(LammpsPhaseError, match=r"anneal_ps = 0: must be greater than 0 \(ps\)"):
        _load(tmp_path, TINY.replace("ps = 0.4", "ps = 0.4\nanneal_ps = 0", 1))


@pytest.mark.parametrize("change, message", [
    (('output = "tiny.pt"', 'ouput = "tiny.pt"'), r"config .*c\.toml has no top-level key or table 'ouput'"),
    (("epochs = 8", "epoch = 8"), r"\[train\] has no setting 'epoch' \(did you mean 'epochs'"),
    (("channels = [16, 16, 16]", "chanels = [16, 16, 16]"), r"\[model\] has no setting 'chanels'"),
    (("batch_size = 2", "batch_size = 0"), r"\[train\] batch_size = 0: must be at least 1"),
    (("lr = 0.005", "lr = -1"), r"\[train\] lr = -1: must be greater than 0"),
    (("epochs = 8", "epochs = 0"), r"\[train\] epochs = 0: must be at least 1"),
    (("t_start = 300", "t_start = -1"), r"\[\[phase\]\] #1 \(alpha_quartz\) t_start = -1"),
    (('potential = "bks_dsf"', 'potential = "lj"'), r"potential = \"lj\" is unknown"),
    (('name = "stishovite"', 'name = "stishovit"'), r"did you mean 'stishovite'"),
    (("k = 12", "k = 12\nradial_max = 0"), r"\[model\] radial_max = 0: must be greater than 0"),
    (("lr = 0.005", "lr = 0.005\nclass_balance = 3"), r"\[train\] class_balance must lie in \[0, 1\]"),
    (("epochs = 8", "epochs = true"), r"epochs = true must be an integer, not true/false"),
    (("lr = 0.005", 'lr = 0.005\njitter = 0.1\njitter_classes = ["quartz"]'),
     r"\[train\] jitter_classes names \['quartz'\], which no \[\[phase\]\] block labels"),
    (("lr = 0.005", "lr = 0.005\njitter = 0.1"), r"jitter needs both jitter > 0"),
    (("k = 12", 'k = 12\naggregate = "sum"'), r"aggregate must be one of 'max', 'max_mean'"),
    (("consensus = 0.5", "consensus = 1.5"), r"\[calibrate\] consensus = 1.5: must be at most 1"),
    (("consensus = 0.5", "consensus = -0.1"), r"\[calibrate\] consensus = -0.1: must be at least 0"),
    (("consensus = 0.5", "consensus = 0.5\npooling = 65"), r"\[calibrate\] pooling = 65: must be at most 64"),
    (("consensus = 0.5", "consensus = 0.5\npooling = 2.5"), r"\[calibrate\] pooling = 2.5 must be an integer"),
])
def test_each_mistake_names_the_file_and_the_key(tmp_path, change, message):
    with pytest.raises(LammpsPhaseError, match=message) as err:
        _load(tmp_path, TINY.replace(*change, 1))
    assert str(tmp_path / "c.toml") in str(err.value)


def test_the_shipped_configs_load():
    from lammps_phase.training.config import block_seeds

    paths = sorted((ROOT / "inputs").glob("train_*.toml"))
    assert len(paths) >= 12  # every SiO2 and Cu config in inputs/
    for path in paths:
        cfg = load_config(path)
        assert cfg.classes and cfg.source.endswith(path.name)
        assert len(cfg.classes) == len(set(cfg.classes))
        json.dumps(cfg.model)
    glass_seeds = load_config(ROOT / "inputs" / "train_sio2_glass_seeds.toml")
    extra = {(spec.kind, spec.variant): block_seeds(glass_seeds, spec, "train") for spec in glass_seeds.phases}
    assert extra[("glass", "bulk")] == extra[("glass", "slab")] == extra[("crystal", "interface")] == [1, 2, 5, 6]
    assert extra[("crystal", "bulk")] == extra[("melt", "bulk")] == [1, 2]


def test_the_shipped_config_is_the_bks_config_plus_its_other_potentials():
    bks = load_config(ROOT / "inputs" / "train_sio2_bks.toml")
    multi = load_config(ROOT / "inputs" / "train_sio2.toml")
    assert multi.phases[:len(bks.phases)] == bks.phases
    added = multi.phases[len(bks.phases):]
    assert added and {spec.potential for spec in added} == {"tersoff_munetoh", "vashishta_1990"}
    assert (multi.model, multi.train, multi.report["rotations"]) == (bks.model, bks.train, bks.report["rotations"])
    assert bks.report["dropped"].items() <= multi.report["dropped"].items() and "vashishta_1997" in multi.report["dropped"]
    assert multi.report["notes"].keys() == bks.report["notes"].keys()  # the quartz notes add the other potentials
    assert all(bks.report["notes"][c] in multi.report["notes"][c] for c in ("alpha_quartz", "beta_quartz"))
    assert (multi.name, multi.output) == ("sio2", "checkpoints/sio2.pt")
    assert (bks.name, bks.output) == ("sio2_bks", "checkpoints/sio2_bks.pt")


def test_a_base_config_gives_blocks_first_and_settings_key_by_key(tmp_path):
    (tmp_path / "c.toml").write_text(TINY)
    extra = tmp_path / "more" / "extra.toml"
    extra.parent.mkdir()
    extra.write_text('base = "../c.toml"\nname = "more"\n\n[train]\nepochs = 3\n\n'
                     '[[phase]]\nname = "coesite"\nt_start = 300\nt_end = 600\nps = 0.4\n')
    base, cfg = load_config(tmp_path / "c.toml"), load_config(extra)
    assert [p.name for p in cfg.phases] == [p.name for p in base.phases] + ["coesite"]
    assert cfg.name == "more" and cfg.output == base.output and cfg.elements == base.elements
    assert cfg.train == {**base.train, "epochs": 3} and cfg.model == base.model
    assert cfg.source == str(extra)


def test_a_base_config_that_is_missing_or_loops_is_refused(tmp_path):
    (tmp_path / "a.toml").write_text('base = "b.toml"\n' + TINY)
    with pytest.raises(LammpsPhaseError, match=r"b\.toml does not exist"):
        load_config(tmp_path / "a.toml")
    (tmp_path / "b.toml").write_text('base = "a.toml"\n')
    with pytest.raises(LammpsPhaseError, match="base configs form a loop"):
        load_config(tmp_path / "a.toml")
    (tmp_path / "b.toml").write_text("base = 3\n")
    with pytest.raises(LammpsPhaseError, match="base must be the path of another config"):
        load_config(tmp_path / "a.toml")
    (tmp_path / "b.toml").write_text(TINY.replace("epochs = 8", "epoch = 8"))
    with pytest.raises(LammpsPhaseError, match=r"a\.toml \(on top of b\.toml\).*has no setting 'epoch'"):
        load_config(tmp_path / "a.toml")


def test_config_schema_refuses_before_the_heating_stage(tmp_path, monkeypatch):
    """The pipeline loads (and checks) the config before it runs anything."""
    from lammps_phase.cli import train_main

    def tripwire(*args, **kwargs):
        raise AssertionError("heating started")

    monkeypatch.setattr(pipeline, "stage_heating", tripwire)
    (tmp_path / "bad.toml").write_text(TINY.replace("lr = 0.005", "lr = -1"))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert train_main(["bad.toml", "-q"]) == 2
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "cache").exists()


def test_the_surfaces_config_is_the_shipped_config_plus_places_in_the_other_potentials():
    multi = load_config(ROOT / "inputs" / "train_sio2.toml")
    surfaces = load_config(ROOT / "inputs" / "train_sio2_surfaces.toml")
    assert surfaces.phases[:len(multi.phases)] == multi.phases
    added = surfaces.phases[len(multi.phases):]
    assert {spec.potential for spec in added} == {"tersoff_munetoh", "vashishta_1990"}
    assert {spec.variant for spec in added} == {"slab", "sphere", "interface", "strained", "bulk"}
    # the one bulk block is Tersoff glass at 10 GPa (session 17: the base trains Tersoff glass at 0 GPa only)
    dense = [spec for spec in added if spec.variant == "bulk"]
    assert [(s.name, s.potential, s.pressures) for s in dense] == [("amorphous", "tersoff_munetoh", [10.0])]
    assert (surfaces.train, surfaces.classes) == (multi.train, multi.classes)
    # the same network but wider (session 15: the base's width underfits voids, clusters and interface glass)
    width = ("channels", "head")
    assert {k: v for k, v in surfaces.model.items() if k not in width} == {k: v for k, v in multi.model.items()
                                                                          if k not in width}
    assert (surfaces.model["channels"], surfaces.model["head"]) == ([64, 64, 64], [128])
    assert (surfaces.name, surfaces.output) == ("sio2_surfaces", "checkpoints/sio2_surfaces.pt")
