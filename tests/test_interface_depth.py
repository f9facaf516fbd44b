"""benchmarks/interface_depth.py: its variants are the depths their names say, and scores stay held out."""

import pytest

from conftest import load_benchmark
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.model.network import ModelConfig
from lammps_phase.training.config import load_config

CONFIG = "inputs/train_sio2_averaged.toml"


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("interface_depth.py", "interface_depth")


def test_each_variant_reaches_as_many_hops_as_its_name_says(bench):
    cfg = load_config(CONFIG)
    variants = bench.depth_variants(cfg)
    hops = {name: ModelConfig(elements=cfg.elements, num_classes=len(cfg.classes),
                              **{**cfg.model, **change}).receptive_hops
            for name, change in variants.items() if "_h" in name}
    assert hops == {"k16_h4": 4, "k16_h5": 5, "k12_h3": 3, "k12_h2": 2}
    # the deeper variant adds one layer like the config's last one, nothing else
    deeper = variants["k16_h5"]["channels"]
    assert deeper[:-1] == list(cfg.model["channels"]) and deeper[-1] == cfg.model["channels"][-1]


@pytest.mark.parametrize("split", ["val", "train"])
def test_scoring_on_the_runs_it_learnt_or_chose_from_is_refused(bench, capsys, split):
    with pytest.raises(SystemExit):
        bench.main([CONFIG, "--workdir", "cache/none", "--train-split", "train", "--select-split", "val",
                    "--score-split", split])
    assert "neither trained on nor used to choose" in capsys.readouterr().err


def test_unknown_variant_is_named(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main([CONFIG, "--workdir", "cache/none", "--only", "k16_h9"])
    assert "k16_h9" in capsys.readouterr().err


def test_missing_runs_or_no_interfaces_are_named(bench, tmp_path):
    with pytest.raises(LammpsPhaseError, match="interface.*seed3 is missing: run the heating stage"):
        bench.interface_samples(load_config(CONFIG), tmp_path, "val")
    with pytest.raises(LammpsPhaseError, match="has no interface blocks"):
        bench.interface_samples(load_config("inputs/train_cu.toml"), tmp_path, "val")
