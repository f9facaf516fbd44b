"""An interrupted training resumes where it stopped and ends with the weights of one that never stopped."""

import dataclasses

import pytest
import torch

from lammps_phase.data.synthetic import synthetic_samples
from lammps_phase.training.loop import TrainConfig, train_model

from small_cu import CU_CLASSES, cu_split, small_cu_model as small_model


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def data():
    return cu_split()


def settings(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(epochs=3, batch_size=4, lr=5e-3, progress=False, seed=3), **kw})


def interrupt_after(epochs: int, lines: list):
    def log(line: str) -> None:
        lines.append(line)
        if line.startswith(f"epoch {epochs}/"):
            raise Interrupted(line)
    return log


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("average_epochs", [0.0, 1.0], ids=["weights", "weight average"])
def test_resumed_training_ends_with_the_weights_of_an_uninterrupted_one(data, tmp_path, average_epochs):
    train, val = data
    cfg = settings(average_epochs=average_epochs)
    whole, whole_hist = train_model(train, val, small_model(), cfg, state_path=tmp_path / "whole.pt")
    state = tmp_path / "state.pt"
    lines: list[str] = []
    with pytest.raises(Interrupted):
        train_model(train, val, small_model(), cfg, log=interrupt_after(2, lines), state_path=state)
    assert state.exists()
    lines.clear()
    resumed, resumed_hist = train_model(train, val, small_model(), cfg, log=lines.append, state_path=state)
    assert lines[0].startswith("[train] resuming after epoch 2")
    assert [line.split(":")[0] for line in lines[1:]] == ["epoch 3/3"]
    assert same_weights(whole.state_dict, resumed.state_dict)
    assert resumed_hist.val_accuracy == whole_hist.val_accuracy
    assert resumed_hist.train_loss == whole_hist.train_loss
    assert resumed_hist.best_epoch == whole_hist.best_epoch
    assert resumed_hist.seconds > 0


def test_a_state_from_other_settings_is_not_resumed(data, tmp_path):
    train, val = data
    state = tmp_path / "state.pt"
    with pytest.raises(Interrupted):
        train_model(train, val, small_model(), settings(), log=interrupt_after(1, []), state_path=state)
    lines: list[str] = []
    fresh, _ = train_model(train, val, small_model(), settings(lr=4e-3), log=lines.append, state_path=state)
    assert "belongs to other settings or data; training starts afresh" in lines[0]
    assert [line.split(":")[0] for line in lines[1:]] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    # the thread count and the progress bar change no arithmetic: such a state is resumed
    with pytest.raises(Interrupted):
        train_model(train, val, small_model(), settings(), log=interrupt_after(1, []), state_path=state)
    lines.clear()
    train_model(train, val, small_model(), settings(threads=2, progress=False), log=lines.append, state_path=state)
    assert lines[0].startswith("[train] resuming after epoch 1")


def test_a_state_from_other_data_is_not_resumed(data, tmp_path):
    train, val = data
    state = tmp_path / "state.pt"
    with pytest.raises(Interrupted):
        train_model(train, val, small_model(), settings(), log=interrupt_after(1, []), state_path=state)
    other = synthetic_samples(CU_CLASSES, 12, per_class=3, seed=5, min_length=9.0)
    lines: list[str] = []
    train_model(other, val, small_model(), settings(), log=lines.append, state_path=state)
    assert "training starts afresh" in lines[0]


def test_an_unreadable_state_starts_afresh_with_a_message(data, tmp_path):
    train, val = data
    state = tmp_path / "state.pt"
    state.write_bytes(b"half a file")
    lines: list[str] = []
    ckpt, hist = train_model(train, val, small_model(), settings(epochs=1), log=lines.append, state_path=state)
    assert "cannot be read" in lines[0] and "training starts afresh" in lines[0]
    assert len(hist.val_accuracy) == 1
    assert state.exists()  # rewritten whole after the epoch


def test_the_state_is_written_whole(data, tmp_path, monkeypatch):
    """A save that fails half-way leaves the previous state, never a torn file."""
    train, val = data
    state = tmp_path / "state.pt"
    with pytest.raises(Interrupted):
        train_model(train, val, small_model(), settings(), log=interrupt_after(1, []), state_path=state)
    before = state.read_bytes()
    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        train_model(train, val, small_model(), settings(), state_path=state)
    assert state.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_train_config_fields_are_all_known_to_the_signature():
    """A new TrainConfig field changes the signature unless it is listed as neutral: a reminder to decide."""
    from lammps_phase.training import resume

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(resume._NEUTRAL_SETTINGS) <= names
