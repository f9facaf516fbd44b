"""Fine-tuning ([train] init): a training starts from a trained checkpoint's weights, or refuses a start that is
not this network, before any step."""

import dataclasses

import pytest
import torch

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.model import checkpoint as ckpt_io
from lammps_phase.training.loop import TrainConfig, evaluate, train_model
from lammps_phase.training.resume import run_signature

from small_cu import cu_split, small_cu_model as small_model


def settings(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(epochs=2, batch_size=4, lr=5e-3, progress=False, seed=3), **kw})


@pytest.fixture(scope="module")
def data():
    return cu_split()


@pytest.fixture(scope="module")
def start(data, tmp_path_factory):
    train, val = data
    ckpt, _ = train_model(train, val, small_model(), settings(epochs=3))
    path = tmp_path_factory.mktemp("start") / "start.pt"
    ckpt_io.save(ckpt, path)
    return path, ckpt


def test_fine_tuning_starts_from_the_checkpoint_weights(data, start):
    train, val = data
    path, ckpt = start
    lines: list[str] = []
    # a learning rate too small to move a weight: the result is the start (batch-norm statistics aside)
    tuned, _ = train_model(train, val, small_model(), settings(epochs=1, lr=1e-12, init=str(path)), log=lines.append)
    params = dict(ckpt.build().named_parameters())
    for name, value in tuned.build().named_parameters():
        assert torch.allclose(value, params[name], atol=1e-8), name
    fresh, _ = train_model(train, val, small_model(), settings(epochs=1, lr=1e-12))
    assert any(not torch.allclose(v, params[n]) for n, v in fresh.build().named_parameters())
    score = evaluate(ckpt.build(), val, batch_size=64)["accuracy"]
    assert lines[0] == f"starting from {path}: val accuracy {score:.4f}"
    recorded = tuned.metrics["fine_tuned_from"]
    assert recorded["path"] == str(path) and recorded["val_accuracy"] == pytest.approx(score)
    assert recorded["fingerprint"] == ckpt_io.fingerprint(path.read_bytes())


@pytest.mark.parametrize("change, named", [
    (dict(model=dict(radial_basis=6)), "radial_basis = 8 there, 6 here"),
    (dict(model=dict(channels=[16, 24])), "channels"),
    (dict(classes=["bcc", "fcc", "hcp", "random_packing"]), "same classes, same order"),
])
def test_a_start_of_another_network_is_refused_before_any_step(data, start, change, named):
    train, val = data
    path, _ = start
    model = small_model(**change.get("model", {}))
    if "classes" in change:
        train, val = (dataclasses.replace(part, classes=change["classes"]) for part in (train, val))
    with pytest.raises(LammpsPhaseError, match="init checkpoint") as err:
        train_model(train, val, model, settings(init=str(path)))
    assert named in str(err.value)


def test_a_missing_start_names_the_setting(data, tmp_path):
    train, val = data
    with pytest.raises(LammpsPhaseError, match=r"\[train\] init = .*no such checkpoint"):
        train_model(train, val, small_model(), settings(init=str(tmp_path / "absent.pt")))


def test_a_replaced_start_is_not_resumed(data):
    train, val = data
    cfg = settings(init="start.pt")
    one = run_signature(small_model(), cfg, "segmentation", train, val, None, "aaaa")
    other = run_signature(small_model(), cfg, "segmentation", train, val, None, "bbbb")
    assert one != other
    assert run_signature(small_model(), settings(), "segmentation", train, val) == \
        run_signature(small_model(), settings(), "segmentation", train, val, None, "")


class Interrupted(Exception):
    pass


def test_a_resumed_fine_tuning_records_the_starts_score_not_the_resumed_weights(data, start, tmp_path, monkeypatch):
    """Validation scores the weights it is given: scored by a function of the weights themselves, the recorded start
    score of a run resumed after its first epoch must be the start's, not the resumed weights'."""
    from lammps_phase.training import loop

    def weight_sum(model, data, **_):
        total = float(sum(p.detach().double().sum() for p in model.parameters()))
        return {"loss": 0.0, "accuracy": total, "balanced_accuracy": total}

    monkeypatch.setattr(loop, "evaluate", weight_sum)
    train, val = data
    path, ckpt = start
    cfg = settings(epochs=2, init=str(path))

    def stop_after_first_epoch(line: str) -> None:
        if line.startswith("epoch 1/"):
            raise Interrupted(line)

    with pytest.raises(Interrupted):
        train_model(train, val, small_model(), cfg, log=stop_after_first_epoch, state_path=tmp_path / "state.pt")
    lines: list[str] = []
    resumed, _ = train_model(train, val, small_model(), cfg, log=lines.append, state_path=tmp_path / "state.pt")
    assert any(line.startswith("[train] resuming after epoch 1") for line in lines)
    start_score = weight_sum(ckpt.build(), val)["accuracy"]
    assert resumed.metrics["fine_tuned_from"]["val_accuracy"] == pytest.approx(start_score)
    assert weight_sum(resumed.build(), val)["accuracy"] != pytest.approx(weight_sum(ckpt.build(), val)["accuracy"])


def test_a_fine_tuning_that_beats_nothing_says_so(data, start, monkeypatch):
    from lammps_phase.training import loop

    scores = iter([0.9, 0.5, 0.6])  # the start, then each epoch: never better

    def falling(model, data, **_):
        value = next(scores)
        return {"loss": 1.0 - value, "accuracy": value, "balanced_accuracy": value}

    monkeypatch.setattr(loop, "evaluate", falling)
    train, val = data
    path, _ = start
    lines: list[str] = []
    train_model(train, val, small_model(), settings(epochs=2, init=str(path)), log=lines.append)
    assert lines[-1] == (f"[train] warning: no epoch beat the start's val accuracy (0.6000 <= 0.9000); {path} reads "
                         "the validation runs at least as well")
