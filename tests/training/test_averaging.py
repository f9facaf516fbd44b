"""The weight average: the moving-average formula, and a training that ships it without changing its own course."""

import pytest
import torch

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.model.network import build_model
from lammps_phase.training.averaging import WeightAverage, refresh_batch_norm
from lammps_phase.training.loop import TrainConfig, evaluate, train_model

from small_cu import cu_split, small_cu_model


def test_the_average_follows_the_moving_average_formula():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    average = WeightAverage(model, horizon_epochs=2.0, steps_per_epoch=5)
    beta = 1.0 - 1.0 / 10.0
    assert average.decay == pytest.approx(beta)
    expected = start["0.weight"].clone()
    for step in range(4):
        with torch.no_grad():
            model[0].weight.add_(1.0 + step)
        model[1].num_batches_tracked += 3
        average.update(model)
        expected = beta * expected + (1.0 - beta) * model[0].weight.detach()
    assert torch.allclose(average.state_dict()["0.weight"], expected)
    assert not torch.allclose(expected, model[0].weight)  # the average lags the weights
    assert average.state_dict()["1.num_batches_tracked"] == model[1].num_batches_tracked  # counters are copied
    shown = average.model()
    assert shown is not model and torch.allclose(shown[0].weight, expected)
    with pytest.raises(ValueError, match="horizon must be positive"):
        WeightAverage(model, 0.0, 5)


def test_batch_norms_are_remeasured_as_the_mean_over_the_refresh_batches():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    model[1].running_mean.fill_(50.0)  # statistics of other weights: must not survive
    model[1].running_var.fill_(50.0)
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(8, 3, generator=gen) * (1 + i) + i for i in range(5)]
    refresh_batch_norm(model, lambda m: [m(b) for b in batches])
    with torch.no_grad():
        outs = [model[0](b) for b in batches]
    assert torch.allclose(model[1].running_mean, torch.stack([o.mean(0) for o in outs]).mean(0), atol=1e-5)
    assert torch.allclose(model[1].running_var, torch.stack([o.var(0) for o in outs]).mean(0), atol=1e-4)
    assert model[1].momentum == 0.1 and not model.training  # left as the evaluation expects it


def test_a_negative_horizon_is_refused_with_its_name():
    with pytest.raises(LammpsPhaseError, match="average_epochs"):
        TrainConfig(average_epochs=-1.0)


def test_training_ships_the_average_and_keeps_its_own_course():
    """Same seed with and without the average: identical training losses (the average never feeds back), other
    shipped weights, and the shipped weights score what the history says for the best epoch."""
    train, val = cu_split()
    mcfg = small_cu_model()
    base = dict(epochs=3, batch_size=4, lr=5e-3, progress=False, seed=3)
    plain, plain_hist = train_model(train, val, mcfg, TrainConfig(**base))
    averaged, averaged_hist = train_model(train, val, mcfg, TrainConfig(**base, average_epochs=1.0))
    assert averaged_hist.train_loss == plain_hist.train_loss
    assert any(not torch.equal(averaged.state_dict[k], plain.state_dict[k]) for k in plain.state_dict)
    model = build_model(mcfg, "segmentation")
    model.load_state_dict(averaged.state_dict)
    score = evaluate(model, val, batch_size=64)["accuracy"]
    assert score == pytest.approx(averaged_hist.val_accuracy[averaged_hist.best_epoch])
