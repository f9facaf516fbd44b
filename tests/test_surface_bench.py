"""benchmarks/surfaces.py makes its independent structures as the training config makes its own (no MD here)."""

from pathlib import Path

import pytest

from conftest import load_benchmark
from lammps_phase.training.config import load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("surfaces.py", "surface_bench")


@pytest.fixture(scope="module")
def surfaces():
    """The training config whose Tersoff and Vashishta 1990 blocks the benchmark must match (read once)."""
    return load_config(REPO / "inputs" / "train_sio2_surfaces.toml")


@pytest.mark.parametrize("potential", ["tersoff_munetoh", "vashishta_1990"])
def test_glass_is_melted_and_quenched_as_the_training_config_does_it(bench, surfaces, potential):
    """A glass the training never made (another quench) would test the quench, not the model."""
    glass = [p for p in surfaces.phases if p.potential == potential and p.name == "amorphous" and p.variant == "bulk"]
    interface = [p for p in surfaces.phases if p.potential == potential and p.variant == "interface"]
    assert glass and len(interface) == 1  # Tersoff: glass at 0 and at 10 GPa (session 17)
    setting = bench.POTENTIALS[potential]
    for block in glass:
        assert setting["glass_melt"] == block.temperature and setting["quench"] == block.quench_rate
    assert setting["interface_melt"] == interface[0].temperature
    assert interface[0].quench_rate == glass[0].quench_rate


def test_each_potential_gets_only_the_phases_that_hold_in_it(bench, surfaces):
    """docs/potentials.md: no 6-fold phase survives in Vashishta 1990; only BKS trains a crystal | melt interface."""
    with_melt = {p.potential or surfaces.potential for p in surfaces.phases if p.variant == "interface" and p.partner == "melt"}
    assert with_melt == {"bks_dsf"}
    cases = {p: set(bench.make_cases(20.0, p)) for p in bench.POTENTIALS}
    assert "stishovite slab ⊥z" in cases["bks_dsf"] and "stishovite slab ⊥z" in cases["tersoff_munetoh"]
    assert "stishovite slab ⊥z" not in cases["vashishta_1990"]
    assert ["quartz | melt" in cases[p] for p in ("bks_dsf", "tersoff_munetoh", "vashishta_1990")] == [True, False, False]
    # the BKS cases keep their names, so the cache of earlier sessions' structures stays valid
    assert {"glass 20 GPa 2000 K", "glass 50 GPa 2500 K", "quartz | glass", "quartz sphere r=14"} <= cases["bks_dsf"]
    for p in ("tersoff_munetoh", "vashishta_1990"):
        assert {"quartz slab ⊥y", "quartz | glass", "quartz strained 15% ⊥y", "glass 0 GPa 1000 K"} <= cases[p]
