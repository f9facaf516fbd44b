"""Temperature and MSD behind a shock front, on synthetic dumps whose temperature and diffusion are known.

Si atoms on planes 2 Å apart along x, 6 x 6 per plane in a 12 Å periodic cross-section. A front runs at
100 Å/ps; atoms it has passed move at u_p = 10 Å/ps (velocity column) with thermal velocities of T_BEHIND,
the others of T_AHEAD. Passed atoms either random-walk with diffusion coefficient D (a liquid: they cross the
periodic y/z faces, which the MSD must unwrap) or vibrate about their sites (a solid).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lammps_phase.analysis import thermal_state as ts
from lammps_phase.analysis.shock import shock_report
from lammps_phase.inference.formats import DumpWriter, Frame

LENGTH, SPACING, NT = 200.0, 2.0, 6
U_S, U_P = 100.0, 10.0  # Å/ps
T_BEHIND, T_AHEAD = 2000.0, 300.0  # K
D_LIQUID = 1.0  # Å²/ps
VIBRATION = 0.1  # Å, rms per axis about the site in the solid
STEPS_PER_FRAME, TIMESTEP_FS, FRAMES = 100, 1.0, 11
CLASSES = ["alpha_quartz", "amorphous", "melt"]


def sigma_v(temperature: float) -> float:
    """Thermal velocity spread per axis (Å/ps) of Si at `temperature`: m σ² = k_B T."""
    return float(np.sqrt(temperature / (ts.KELVIN_PER_AMU_VELOCITY2["metal"] * 28.0855)))


def write_dump(folder, *, liquid: bool, behind_label: int, same_atoms: bool = True):
    rng = np.random.default_rng(5)
    planes = np.arange(1.0, LENGTH, SPACING)
    iy, iz = np.meshgrid(np.arange(NT), np.arange(NT), indexing="ij")
    sites = np.column_stack([np.repeat(planes, NT * NT), np.tile(iy.ravel(), len(planes)) * SPACING + 1.0,
                             np.tile(iz.ravel(), len(planes)) * SPACING + 1.0])
    n = len(sites)
    walk = np.zeros((n, 3))
    box_hi = np.array([LENGTH, NT * SPACING, NT * SPACING])
    dt = STEPS_PER_FRAME * TIMESTEP_FS * 1e-3
    path = folder / "dump.thermal"
    with DumpWriter(path) as writer:
        for k in range(FRAMES):
            front = U_S * k * dt
            passed = sites[:, 0] < front
            if liquid:
                walk[passed] += rng.normal(0.0, np.sqrt(2 * D_LIQUID * dt), (int(passed.sum()), 3))
                positions = sites + walk
            else:
                positions = sites + np.where(passed[:, None], rng.normal(0.0, VIBRATION, (n, 3)), 0.0)
            positions[:, 0] = np.clip(positions[:, 0], 0.0, LENGTH - 1e-6)
            positions[:, 1:] %= box_hi[1:]  # wrapped into the periodic cross-section, as LAMMPS dumps them
            velocity = rng.normal(0.0, 1.0, (n, 3)) * np.where(passed, sigma_v(T_BEHIND), sigma_v(T_AHEAD))[:, None]
            velocity[passed, 0] += U_P
            keep = slice(None) if same_atoms or k == 0 else slice(1, None)
            columns = {"id": np.arange(1, n + 1)[keep], "type": np.ones(n, dtype=np.int64)[keep],
                       "x": positions[keep, 0], "y": positions[keep, 1], "z": positions[keep, 2],
                       "vx": velocity[keep, 0], "vy": velocity[keep, 1], "vz": velocity[keep, 2],
                       "i_phase": np.where(passed, behind_label, 0).astype(np.int64)[keep]}
            writer.write(Frame(k * STEPS_PER_FRAME, np.zeros(3), box_hi, np.zeros(3), (False, True, True), columns))
    (folder / "dump.thermal.classes.json").write_text(json.dumps(
        {"classes": CLASSES, "timestep_fs": TIMESTEP_FS, "types": ["Si"]}))
    return path


@pytest.fixture(scope="module")
def liquid(tmp_path_factory):
    folder = tmp_path_factory.mktemp("liquid")
    return shock_report(write_dump(folder, liquid=True, behind_label=2), folder / "out", piston="low")


@pytest.fixture(scope="module")
def solid(tmp_path_factory):
    folder = tmp_path_factory.mktemp("solid")
    return shock_report(write_dump(folder, liquid=False, behind_label=1), folder / "out", piston="low")


def test_temperature_is_measured_with_the_flow_removed(liquid, solid):
    for summary in (liquid, solid):
        assert summary["temperature_behind_K"] == pytest.approx(T_BEHIND, rel=0.05)  # u_p = 10 Å/ps would add ~1.2e4 K
        assert summary["temperature_ahead_K"] == pytest.approx(T_AHEAD, rel=0.08)


def test_a_diffusing_shocked_state_is_a_liquid_and_melt_labels_agree(liquid):
    assert liquid["diffusion_behind_angstrom2_per_ps"] == pytest.approx(D_LIQUID, rel=0.3)
    assert liquid["flow_behind"] == "liquid"
    assert liquid["labels_vs_diffusion"].startswith("consistent")
    profile = liquid["thermal_profile"]
    msd, waited = np.array(profile["msd_since_front_angstrom2"], dtype=float), np.array(
        profile["time_since_front_ps"], dtype=float)
    ok = np.isfinite(msd) & np.isfinite(waited) & (waited > 0.2)
    # MSD since the front passed grows as 6 D t: unwrapped across the periodic faces, or it would be ~ box size²
    assert np.allclose(msd[ok], 6 * D_LIQUID * waited[ok], rtol=0.45)


def test_a_vibrating_shocked_state_is_a_solid_and_amorphous_labels_agree(solid):
    assert solid["diffusion_behind_angstrom2_per_ps"] < ts.SOLID_DIFFUSION
    assert solid["flow_behind"] == "solid"
    assert solid["msd_since_front_behind_angstrom2"] == pytest.approx(2 * 3 * VIBRATION**2, rel=0.3)
    assert solid["labels_vs_diffusion"].startswith("consistent")
    text = (solid["outputs"]["summary_txt"])
    assert "temperature" in open(text, encoding="utf-8").read()


def test_a_solid_labelled_melt_is_called_inconsistent(tmp_path):
    summary = shock_report(write_dump(tmp_path, liquid=False, behind_label=2), tmp_path / "out", piston="low")
    assert summary["flow_behind"] == "solid"
    assert summary["labels_vs_diffusion"].startswith("INCONSISTENT")


def test_atoms_that_change_between_frames_leave_the_rest_of_the_report(tmp_path):
    summary = shock_report(write_dump(tmp_path, liquid=True, behind_label=2, same_atoms=False), tmp_path / "out", piston="low")
    assert "atom ids change" in summary["thermal_state"]
    assert summary["front_speed_km_s"] == pytest.approx(U_S * 0.1, rel=0.1)


def test_bin_temperature_of_a_maxwell_gas_with_flow():
    rng = np.random.default_rng(0)
    n = 20000
    masses = np.full(n, 15.9994)
    spread = np.sqrt(1500.0 / (ts.KELVIN_PER_AMU_VELOCITY2["metal"] * 15.9994))
    bins = rng.integers(0, 4, n)
    velocities = rng.normal(0.0, spread, (n, 3)) + np.array([[30.0, -5.0, 2.0]]) * bins[:, None]
    temperature = ts.bin_temperature(bins, 5, masses, velocities, "metal")
    assert np.allclose(temperature[:4], 1500.0, rtol=0.05) and np.isnan(temperature[4])  # bin 4 is empty
