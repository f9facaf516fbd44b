"""benchmarks/place_spread.py: the ensemble's rule and the spread it prints."""

from pathlib import Path

import numpy as np
import pytest

from conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("place_spread.py", "place_spread")


def test_the_ensemble_takes_the_largest_mean_probability_not_a_vote(bench):
    sure_b = np.array([[0.05, 0.95, 0.0], [0.2, 0.0, 0.8]])
    hesitant_a = np.array([[0.55, 0.45, 0.0], [0.1, 0.5, 0.4]])
    first, second, third, ensemble = bench.predictions([sure_b, hesitant_a, hesitant_a])
    assert first.tolist() == [1, 2] and second.tolist() == [0, 1] == third.tolist()
    # atom 0: two of three say class 0, but the mean (0.383, 0.617, 0) says 1; atom 1: mean (0.133, 0.333, 0.533)
    assert ensemble.tolist() == [1, 2]


def test_the_table_gives_each_figure_the_spread_and_the_ensemble(bench):
    scores = {"a.pt": {"bulk": 0.99, "void, depth 0-2 Å": 0.80,
                       "interface, atoms ≤ 3 Å from it: share without a label": 0.12},
              "b.pt": {"bulk": 0.98, "void, depth 0-2 Å": 0.53,
                       "interface, atoms ≤ 3 Å from it: share without a label": 0.12},
              bench.ENSEMBLE: {"bulk": 0.995, "void, depth 0-2 Å": 0.76,
                               "interface, atoms ≤ 3 Å from it: share without a label": 0.12}}
    lines = bench.table(scores)
    void = next(line for line in lines if line.startswith("void, depth 0-2 Å"))
    assert void.split()[-4:] == ["0.8000", "0.5300", "0.2700", "0.7600"]
    assert not any("share without a label" in line for line in lines)  # not an accuracy
    assert lines[-2:] == ["1: a.pt", "2: b.pt"]


def test_one_checkpoint_is_refused(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["inputs/train_sio2.toml", "checkpoints/sio2.pt", "--workdir", "cache/none"])
    assert "at least two checkpoints" in capsys.readouterr().err
