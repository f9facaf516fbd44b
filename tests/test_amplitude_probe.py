"""benchmarks/amplitude_probe.py: shaken frames, the tilt beside the labels, and a missing run named."""

from pathlib import Path

import numpy as np
import pytest

from conftest import load_benchmark
from lammps_phase.data.structures import build, supercell
from lammps_phase.inference.classify import Classifier

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("amplitude_probe.py", "amplitude_probe")


def test_a_missing_run_is_named_with_the_fix(bench, tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--workdir", str(tmp_path), "--checkpoint", "checkpoints/sio2.pt", "--phases", "coesite"])
    err = capsys.readouterr().err
    assert "coesite_0GPa_seed4.npz" in err and "--stage heating" in err


def test_each_frame_is_shaken_and_its_tilt_read(bench, tmp_path):
    quartz = supercell(build("alpha_quartz"), 14.0, orthogonal=True)
    frames = np.stack([quartz.positions, quartz.positions + 0.01])
    run = tmp_path / "alpha_quartz_0GPa_seed4.npz"
    np.savez(run, positions=frames.astype(np.float32), cells=np.stack([quartz.cell] * 2),
             origins=np.zeros((2, 3)), species=np.array(quartz.symbols), temperature=np.array([300.0, 310.0]))
    clf = Classifier.load(ROOT / "checkpoints" / "sio2.pt", device="cpu")
    lines = bench.probe(clf, run, [0.0, 0.3], np.random.default_rng(0))
    assert len(lines) == 2 and lines[0].startswith("  alpha_quartz_0GPa_seed4 300 K |")
    unshaken, shaken = lines[0].split(" | ")[1:]
    assert unshaken.startswith("σ 0: alpha_quartz 1.00 (tilt ")  # ideal α, read α
    assert float(unshaken.split("(tilt ")[1].rstrip(")")) > 0.95  # and fully tilted
    assert shaken.startswith("σ 0.3: ") and "alpha_quartz 1.00" not in shaken  # 0.3 Å: no longer confidently α
