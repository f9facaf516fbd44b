"""Checkpoints: save/load round trip, metadata, version and type checks, one clear error per kind of bad file."""

import json

import numpy as np
import pytest
import torch

from lammps_phase import __version__
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.model import checkpoint as ckpt_io
from lammps_phase.model.network import ModelConfig, build_model

CLASSES = ["alpha_quartz", "liquid", "other"]


def tiny_checkpoint(kind: str = "segmentation", **extra) -> ckpt_io.Checkpoint:
    torch.manual_seed(0)
    cfg = ModelConfig(elements=["Si", "O"], num_classes=len(CLASSES), k=8, channels=[8, 8], head=[8], embed_dim=4)
    model = build_model(cfg, kind)
    return ckpt_io.Checkpoint(kind, cfg, model.state_dict(), list(CLASSES), **extra)


@pytest.fixture
def saved(tmp_path):
    ckpt = tiny_checkpoint(data_fingerprint="abc123", metrics={"accuracy": 0.97, "per_class": {"liquid": 1.0}})
    path = tmp_path / "sub" / "m.pt"
    ckpt_io.save(ckpt, path)
    return ckpt, path


def rewrite(path, tmp_path, **changes):
    """A copy of the checkpoint at ``path`` with some payload fields replaced (None deletes the field)."""
    payload = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is None:
            payload.pop(key)
        else:
            payload[key] = value
    out = tmp_path / "edited.pt"
    torch.save(payload, out)
    return out


@pytest.mark.parametrize("kind", ["segmentation", "erhard"])
def test_round_trip_keeps_weights_config_and_metadata(tmp_path, kind):
    ckpt = tiny_checkpoint(kind, data_fingerprint="f00d", metrics={"loss": 0.25})
    path = tmp_path / f"{kind}.pt"
    ckpt_io.save(ckpt, path)
    back = ckpt_io.load(path, type_map=["O", "Si"])
    assert back.kind == kind and back.classes == CLASSES
    assert back.config == ckpt.config and back.elements == ["Si", "O"] and back.k == 8
    assert back.data_fingerprint == "f00d" and back.metrics == {"loss": 0.25}
    assert back.package_version == __version__
    assert back.state_dict.keys() == ckpt.state_dict.keys()
    for name, tensor in ckpt.state_dict.items():
        assert torch.equal(back.state_dict[name], tensor)
    model = back.build()
    assert not model.training
    reference = build_model(ckpt.config, kind)
    reference.load_state_dict(ckpt.state_dict)
    for (name, p), q in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(p, q), name


def test_save_writes_the_documented_payload(saved):
    ckpt, path = saved
    payload = torch.load(path, weights_only=True)
    assert set(ckpt_io.REQUIRED_KEYS) <= set(payload)
    assert payload["format_version"] == ckpt_io.FORMAT_VERSION
    assert payload["elements"] == ["Si", "O"] and payload["k"] == 8 and payload["classes"] == CLASSES
    assert json.loads(payload["metrics_json"]) == {"accuracy": 0.97, "per_class": {"liquid": 1.0}}
    assert not list(path.parent.glob("*.tmp*"))  # the atomic write leaves no temp file


def test_save_refuses_a_class_list_that_does_not_fit_the_outputs(tmp_path):
    ckpt = tiny_checkpoint()
    ckpt.classes = CLASSES[:2]
    with pytest.raises(LammpsPhaseError, match="2 class names for a model with 3 outputs"):
        ckpt_io.save(ckpt, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_metrics_with_numpy_numbers_are_saved_as_floats(tmp_path):
    ckpt = tiny_checkpoint(metrics={"accuracy": np.float32(0.5)})
    ckpt_io.save(ckpt, tmp_path / "m.pt")
    assert ckpt_io.load(tmp_path / "m.pt").metrics == {"accuracy": 0.5}


def test_fingerprint_is_a_short_stable_content_hash():
    a = np.arange(10, dtype=np.int64)
    fp = ckpt_io.fingerprint(a, "bks_dsf")
    assert len(fp) == 16 and all(c in "0123456789abcdef" for c in fp)
    assert fp == ckpt_io.fingerprint(a.copy(), "bks_dsf")
    assert fp != ckpt_io.fingerprint(a + 1, "bks_dsf") and fp != ckpt_io.fingerprint(a, "tersoff")
    assert ckpt_io.fingerprint("x", "y") != ckpt_io.fingerprint("y", "x")


def test_unknown_elements_in_the_type_map_are_refused(saved):
    _, path = saved
    with pytest.raises(LammpsPhaseError, match='knows elements Si O but the type map names Cu.*types="Si O"'):
        ckpt_io.load(path, type_map=["Si", "Cu"])


def test_a_folder_or_a_file_of_another_kind_is_refused(tmp_path):
    with pytest.raises(LammpsPhaseError, match="is a folder"):
        ckpt_io.load(tmp_path)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(LammpsPhaseError, match="not a torch archive"):
        ckpt_io.load(text)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(LammpsPhaseError, match="not a torch archive"):
        ckpt_io.load(empty)


def test_a_torch_archive_that_is_not_a_dict_is_refused(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(LammpsPhaseError, match="top level is list"):
        ckpt_io.load(tmp_path / "list.pt")


def test_missing_fields_are_named(saved, tmp_path):
    _, path = saved
    with pytest.raises(LammpsPhaseError, match="lacks classes, k: it is not a complete"):
        ckpt_io.load(rewrite(path, tmp_path, classes=None, k=None))


def test_another_format_version_names_the_writer(saved, tmp_path):
    _, path = saved
    old = rewrite(path, tmp_path, format_version=0, package_version="0.0.1")
    with pytest.raises(LammpsPhaseError, match=r"format version 0, .* reads version 1: .*\(0\.0\.1\)"):
        ckpt_io.load(old)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"format_version": True}, "format_version is bool, expected an integer"),  # True == 1 passes the version test
        ({"kind": 3}, "kind is int, expected a string"),
        ({"config": ["k", 8]}, "config is list, expected a dict"),
        ({"state_dict": {"w": [1.0]}}, "state_dict is dict, expected a dict of parameter names to tensors"),
        ({"classes": ["a", 1, "b"]}, "classes is list, expected a list of names"),
        ({"metrics_json": {"a": 1}}, "metrics_json is dict, expected a JSON string"),
        ({"data_fingerprint": 7}, "data_fingerprint is int, expected a string"),
    ],
)
def test_fields_of_the_wrong_type_are_damage(saved, tmp_path, changes, message):
    _, path = saved
    with pytest.raises(LammpsPhaseError, match=f"is damaged: {message}"):
        ckpt_io.load(rewrite(path, tmp_path, **changes))


def test_a_damaged_model_config_is_refused(saved, tmp_path):
    ckpt, path = saved
    config = dict(ckpt.config.to_dict(), k="eight")
    with pytest.raises(LammpsPhaseError, match="is damaged: model config"):
        ckpt_io.load(rewrite(path, tmp_path, config=config))
    invalid = dict(ckpt.config.to_dict(), graph="spherical")
    with pytest.raises(LammpsPhaseError, match="has an invalid model config: graph must be"):
        ckpt_io.load(rewrite(path, tmp_path, config=invalid))


def test_class_and_element_lists_must_match_the_config(saved, tmp_path):
    _, path = saved
    with pytest.raises(LammpsPhaseError, match="is inconsistent"):
        ckpt_io.load(rewrite(path, tmp_path, classes=CLASSES[:2]))
    with pytest.raises(LammpsPhaseError, match="is inconsistent"):
        ckpt_io.load(rewrite(path, tmp_path, elements=["O", "Si"]))


@pytest.mark.parametrize("metrics, message", [("{not json", "its metrics are not JSON"),
                                               ("[1, 2]", "its metrics are list, not a JSON object")])
def test_damaged_metrics_are_refused(saved, tmp_path, metrics, message):
    _, path = saved
    with pytest.raises(LammpsPhaseError, match=message):
        ckpt_io.load(rewrite(path, tmp_path, metrics_json=metrics))


def test_old_checkpoints_without_optional_fields_load(saved, tmp_path):
    _, path = saved
    back = ckpt_io.load(rewrite(path, tmp_path, metrics_json=None, data_fingerprint=None))
    assert back.metrics == {} and back.data_fingerprint == ""


def test_weights_that_do_not_fit_the_config_are_refused_at_build(saved):
    ckpt, _ = saved
    state = dict(ckpt.state_dict)
    state.pop("embed.weight")
    broken = ckpt_io.Checkpoint(ckpt.kind, ckpt.config, state, ckpt.classes)
    with pytest.raises(LammpsPhaseError, match="weights do not fit its model config"):
        broken.build()


def test_an_unbuildable_config_is_reported_as_damage():
    ckpt = tiny_checkpoint()
    ckpt.config.channels = [-4, 8]
    with pytest.raises(LammpsPhaseError, match="cannot be built .*the checkpoint is damaged"):
        ckpt.build()
