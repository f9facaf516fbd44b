"""The shock demo deck (inputs/in.sio2_shock) end to end on a reduced slab, under ``mpirun -np 2 lmp``.

One short run (≈ 900 atoms, 0.4 ps of shock at up = 3 km/s) is followed by ``lammps-phase report``; the tests
check the live labels (every frame fully labelled, labels belong to the dumped positions), the shock physics
the report derives (front moving, particle velocity = up behind a momentum mirror, Rankine–Hugoniot momentum
balance between the stress-derived pressure and ρ0·Us·up, no Si–O collapse) and that the ahead-of-front
quartz is recognised as α-quartz by the shipped model.

The model is checkpoints/sio2.pt, or the file named by LP_SHOCK_TEST_CHECKPOINT (any SiO2 checkpoint with an
``alpha_quartz`` class; a random-weight one exercises everything except the α-quartz assertion).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lammps_phase.inference import formats
from lammps_phase.inference.classify import Classifier
from lammps_phase.inference.neighbors import knn
from lammps_phase.elements import ATOMIC_MASSES
from lammps_phase.analysis.shock import shock_report

pytestmark = [
    pytest.mark.mpi,
    pytest.mark.skipif(shutil.which("lmp") is None or shutil.which("mpirun") is None, reason="needs lmp and mpirun"),
]

REPO = Path(__file__).resolve().parents[2]
DECK = REPO / "inputs" / "in.sio2_shock"
TYPE_MAP = ["Si", "O"]
UP_KM_S = 3.0
EVERY = 100
SHOCK_STEPS = 800  # 0.4 ps at the deck's 0.5 fs
REDUCED = {"up": UP_KM_S, "length": 60, "width": 10, "duration": 0.4, "equil": 0.2, "equil_surface": 0.1,
           "every": EVERY}
SURFACE_SKIN = 14.0  # Å next to the free surface left out of the "ahead" region: the model's receptive field
# (4 neighbour hops × ≈3.5 Å in quartz) — atoms closer than that see the free surface, not bulk quartz
TIMEOUT_S = 600


def shock_checkpoint() -> Path | None:
    chosen = os.environ.get("LP_SHOCK_TEST_CHECKPOINT")
    if chosen:
        return Path(chosen).resolve()
    shipped = REPO / "checkpoints" / "sio2.pt"
    return shipped if shipped.is_file() else None


@pytest.fixture(scope="module")
def shock(tmp_path_factory) -> dict:
    checkpoint = shock_checkpoint()
    if checkpoint is None:
        pytest.skip("checkpoints/sio2.pt (the trained SiO2 model) is not in the repository yet; "
                    "set LP_SHOCK_TEST_CHECKPOINT=PATH to run the shock demo test with another checkpoint")
    cwd = tmp_path_factory.mktemp("shock")
    cmd = ["mpirun", "-np", "2", "--oversubscribe", "--allow-run-as-root", "lmp", "-in", str(DECK),
           "-log", "log.lammps", "-var", "checkpoint", str(checkpoint)]
    for name, value in REDUCED.items():
        cmd += ["-var", name, str(value)]
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_MCA_rmaps_base_oversubscribe="1")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    screen = proc.stdout + proc.stderr
    assert proc.returncode == 0, screen[-3000:]
    dump = cwd / "sio2_shock.dump"
    summary = shock_report(dump, cwd / "report")
    return {"cwd": cwd, "dump": dump, "frames": list(formats.read_dump(dump)), "summary": summary,
            "sidecar": json.loads((cwd / "sio2_shock.dump.classes.json").read_text()), "screen": screen,
            "log": (cwd / "log.lammps").read_text(), "checkpoint": checkpoint}


def test_every_frame_is_labelled(shock):
    frames = shock["frames"]
    assert [f.timestep for f in frames] == list(range(0, SHOCK_STEPS + 1, EVERY))
    for frame in frames:  # the deck sets i_phase = -1 before the first labelling: step 0 must be labelled too
        # (-1 is also "other": below the calibrated threshold or outside the training domain — a few atoms: this
        # 864-atom slab is mostly surface and front, where the default neighbour consensus leaves boundary atoms
        # unsure, 1.2-3.5 % -1 per frame, 0.6-1.9 % for the network alone; with the α/β order pooling (session 26)
        # 0-5.2 %, the most at step 200, where the front's first compressed quartz is split between α and β and
        # its amorphous share wins by less than the threshold; a frame never labelled is 100 % -1)
        labels = frame.columns["i_phase"].astype(int)
        assert np.mean(labels >= 0) > 0.93, f"unlabelled atoms at step {frame.timestep}"
        assert np.mean(frame.columns["d_phase_conf"] > 0) > 0.97
    # thermo carries the phase fractions of every class (v_phase_<class>, from `python shock_step invoke`)
    header = next(line for line in shock["log"].splitlines() if line.startswith("Step") and "v_etotal" in line)
    assert all(f"v_phase_{name}" in header.split() for name in shock["sidecar"]["classes"])


def test_labels_belong_to_the_dumped_positions(shock):
    """Live labels: the last frame's labels are those of its own positions, not of an earlier labelling."""
    classifier = Classifier.load(shock["checkpoint"], device="cpu")
    frame = shock["frames"][-1]
    offline = classifier.classify(frame.positions(), frame.cell(), frame.species(TYPE_MAP), pbc=frame.pbc,
                                  origin=frame.boxlo)
    assert frame.pbc == (False, True, True)
    agreement = np.mean(frame.columns["i_phase"].astype(int) == offline.labels)
    assert agreement > 0.98, f"only {agreement:.3f} of the dumped labels match an offline labelling of that frame"


def test_mirror_stops_the_material_and_front_moves(shock):
    summary = shock["summary"]
    speed = summary["front_speed_km_s"]
    assert speed is not None and math.isfinite(speed) and speed > 0.0
    assert summary["piston_end"] == "low" and summary["fit_frames"] >= 4
    fronts = [row["front_position_angstrom"] for row in summary["per_frame"] if row["front_position_angstrom"]]
    assert fronts[-1] > fronts[0] + 5.0
    # behind a momentum mirror the shocked material is at rest, ahead it still moves at −up (1 km/s = 10 Å/ps)
    assert summary["particle_velocity_km_s"] == pytest.approx(UP_KM_S, rel=0.2)
    last = shock["frames"][-1]
    x, vx = last.positions()[:, 0], last.columns["vx"]
    front = summary["front_position_angstrom"]
    behind = x < front - 6.0
    far_ahead = (x > front + 6.0) & (x < x.max() - SURFACE_SKIN)
    assert behind.sum() > 100 and far_ahead.sum() > 100
    assert abs(np.mean(vx[behind])) < 0.15 * 10.0 * UP_KM_S
    assert np.mean(vx[far_ahead]) == pytest.approx(-10.0 * UP_KM_S, rel=0.15)


def test_pressure_obeys_the_momentum_jump_condition(shock):
    """Pressure from per-atom stress behind the front ≈ ρ0·Us·up (Rankine–Hugoniot), Us = mirror-frame speed + up."""
    summary, first = shock["summary"], shock["frames"][0]
    species = first.species(TYPE_MAP)
    mass_g = sum(ATOMIC_MASSES[s] for s in species) / 6.02214076e23
    x = first.positions()[:, 0]
    lengths = np.asarray(first.boxhi) - np.asarray(first.boxlo)
    volume_cm3 = float(np.ptp(x) * lengths[1] * lengths[2]) * 1e-24
    rho0 = mass_g / volume_cm3  # g/cm³
    assert 2.3 < rho0 < 2.8, f"initial density {rho0:.2f} g/cm³ is not α-quartz"
    up = summary["particle_velocity_km_s"]
    us = summary["front_speed_km_s"] + up
    rankine_hugoniot_gpa = rho0 * us * up  # g/cm³ · km/s · km/s = GPa
    assert summary["pressure_behind_GPa"] == pytest.approx(rankine_hugoniot_gpa, rel=0.2)
    assert summary["pressure_behind_GPa"] > 20.0  # strong enough to transform quartz


def test_min_si_o_distance_is_reported_and_physical(shock):
    summary, sidecar = shock["summary"], shock["sidecar"]
    reported = summary["min_si_o_distance_angstrom"]
    assert reported == sidecar["min_si_o_distance"] and reported > 1.0
    assert "lammps-phase shock: minimum Si-O distance" in shock["screen"]
    # the deck checks at every labelling, i.e. at every dumped frame: recompute from the dump independently
    from_dump = math.inf
    for frame in shock["frames"]:
        species = frame.species(TYPE_MAP)
        silicon = np.nonzero(species == "Si")[0]
        neighbours = knn(frame.positions(), 6, cell=frame.cell(), pbc=frame.pbc, origin=frame.boxlo, query=silicon)
        from_dump = min(from_dump, float(neighbours.distances[species[neighbours.index] == "O"].min()))
    assert reported == pytest.approx(from_dump, abs=2e-3)
    assert sidecar["timestep_fs"] == 0.5 and sidecar["units"] == "metal" and sidecar["types"] == TYPE_MAP


def test_report_figures_are_drawn(shock):
    from matplotlib.image import imread

    for key in ("xt_diagram", "phase_fractions", "snapshot"):
        path = Path(shock["summary"]["outputs"][key])
        assert path.is_file() and path.stat().st_size > 5000, path
        image = imread(path)[..., :3]
        colours = np.unique((image.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
        drawn = np.mean(np.any(image < 0.9, axis=-1))
        assert len(colours) > 8 and drawn > 0.05, f"{path.name} looks blank ({len(colours)} colours, {drawn:.3f} drawn)"


def test_alpha_quartz_ahead_of_the_front(shock):
    """Unshocked bulk quartz (ahead of the front, away from the free surface) is labelled α-quartz (≥ 95 %)."""
    classes = shock["sidecar"]["classes"]
    if "alpha_quartz" not in classes:
        pytest.fail(f"the checkpoint {shock['checkpoint']} has no alpha_quartz class (classes: {classes})")
    frame = shock["frames"][-1]
    x = frame.positions()[:, 0]
    ahead = (x > shock["summary"]["front_position_angstrom"] + 6.0) & (x < x.max() - SURFACE_SKIN)
    assert ahead.sum() > 100
    fraction = np.mean(frame.columns["i_phase"][ahead].astype(int) == classes.index("alpha_quartz"))
    assert fraction >= 0.95, f"only {100 * fraction:.1f} % of the unshocked quartz is labelled alpha_quartz"


def test_report_measures_temperature_and_msd_behind_the_front(shock):
    """Melt means liquid: the report gives the local temperature (flow removed) and the MSD since the front passed.

    The deck equilibrates the quartz at 300 K; a 3 km/s piston heats the shocked quartz by well over 1000 K.
    """
    summary = shock["summary"]
    assert 150.0 < summary["temperature_ahead_K"] < 700.0
    assert summary["temperature_behind_K"] > summary["temperature_ahead_K"] + 500.0
    assert 0.0 < summary["msd_since_front_behind_angstrom2"] < 10.0
    profile = summary["thermal_profile"]
    assert len(profile["temperature_K"]) == len(profile["bin_centres_angstrom"]) == len(
        profile["msd_since_front_angstrom2"])
    text = Path(summary["outputs"]["summary_txt"]).read_text(encoding="utf-8")
    assert "temperature            behind" in text and "MSD since the front" in text
