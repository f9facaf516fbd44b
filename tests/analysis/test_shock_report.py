"""Shock report on a synthetic piston-driven shock whose front, velocity, stress and phases are known exactly.

The sample: planes of 6x6 atoms 2 Å apart along x in [0, 200] Å. A piston at the low end moves at
u_p = 40 Å/ps (4 km/s) from t = 0; the front runs at U_s = 80 Å/ps (8 km/s), so mass conservation compresses
the shocked material 2x (planes 1 Å apart between the piston at u_p t and the front at U_s t). Shocked atoms
move at u_p, carry 30 GPa and phases coesite/stishovite (3:1); unshocked atoms rest at 0.5 GPa as quartz,
with 4 of every 36 labelled other.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lammps_phase.cli import main
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.formats import DumpWriter, Frame
from lammps_phase.analysis.shock import shock_report

CLASSES = ["alpha-quartz", "coesite", "stishovite"]
LENGTH, SPACING, NT = 200.0, 2.0, 6  # sample length, unshocked plane spacing, atoms per transverse row
U_S, U_P = 80.0, 40.0  # Å/ps
P_BEHIND, P_AHEAD = 3.0e5, 5.0e3  # bar
STEPS_PER_FRAME, TIMESTEP_FS, FRAMES = 250, 1.0, 8


def _frame(k: int, rng: np.random.Generator, velocities: bool, mirror: bool, blip: bool = False) -> Frame:
    t = k * STEPS_PER_FRAME * TIMESTEP_FS * 1e-3  # ps
    front = U_S * t
    n_behind = int(round(front / SPACING))  # every unshocked plane the front passed, now 1 Å apart
    behind_x = front - 0.5 - np.arange(n_behind)
    ahead_x = np.arange(front + 1.0, LENGTH, SPACING)
    planes = np.concatenate([behind_x, ahead_x])
    shocked_plane = np.arange(len(planes)) < n_behind
    iy, iz = np.meshgrid(np.arange(NT), np.arange(NT), indexing="ij")
    iy, iz = iy.ravel(), iz.ravel()
    natoms = len(planes) * NT * NT
    x = np.repeat(planes, NT * NT) + rng.uniform(-0.3, 0.3, natoms)
    y = np.tile(iy, len(planes)) * SPACING + 1.0
    z = np.tile(iz, len(planes)) * SPACING + 1.0
    shocked = np.repeat(shocked_plane, NT * NT)
    row_y, row_z = np.tile(iy, len(planes)), np.tile(iz, len(planes))
    phase = np.where(shocked, np.where((row_y + row_z) % 4 == 0, 2, 1), np.where((row_y == 0) & (row_z < 4), -1, 0))
    atom_volume = np.where(shocked, 1.0, SPACING) * SPACING * SPACING
    pressure = np.where(shocked, P_BEHIND, P_AHEAD)
    vx = np.where(shocked, U_P, 0.0) + rng.normal(0.0, 2.0, natoms)
    if blip:  # two unshocked planes far ahead moving like shocked ones: a 4 Å fluke, not the front
        vx[(np.abs(x - 181.0) < 0.5) | (np.abs(x - 183.0) < 0.5)] = U_P
    if mirror:
        x, vx = LENGTH - x, -vx
    columns = {"id": np.arange(1, natoms + 1), "type": np.ones(natoms, dtype=np.int64), "x": x, "y": y, "z": z}
    if velocities:
        columns |= {"vx": vx, "vy": rng.normal(0.0, 2.0, natoms), "vz": rng.normal(0.0, 2.0, natoms)}
    # A non-hydrostatic state with the right trace: only -(s1+s2+s3)/3V may enter the pressure.
    columns |= {
        "c_stress[1]": -1.5 * pressure * atom_volume,
        "c_stress[2]": -0.75 * pressure * atom_volume,
        "c_stress[3]": -0.75 * pressure * atom_volume,
        "i_phase": phase.astype(np.int64),
        "d_phase_conf": np.where(shocked, 0.8, 0.95),
    }
    box_hi = np.array([LENGTH, NT * SPACING, NT * SPACING])
    return Frame(k * STEPS_PER_FRAME, np.zeros(3), box_hi, np.zeros(3), (False, True, True), columns)


def _write_dump(folder, *, velocities: bool = True, mirror: bool = False, sidecar: object | None = None,
                name: str = "dump.shock.gz", blip: bool = False):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    rng = np.random.default_rng(11)
    with DumpWriter(path) as writer:
        for k in range(FRAMES):
            writer.write(_frame(k, rng, velocities, mirror, blip))
    if sidecar is None:
        sidecar = {"classes": CLASSES, "timestep": TIMESTEP_FS}
    (folder / f"{name}.classes.json").write_text(json.dumps(sidecar))
    return path


@pytest.fixture(scope="module")
def with_velocities(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shock")
    dump = _write_dump(folder / "run")
    return folder / "out", shock_report(dump, folder / "out")


def test_front_speed_and_positions_match_the_imposed_shock(with_velocities):
    _, summary = with_velocities
    assert summary["front_method"] == "velocity" and summary["piston_end"] == "low"
    assert summary["time_unit"] == "ps" and summary["classes"] == CLASSES
    speed = summary["front_speed_km_s"]
    assert speed is not None and np.isfinite(speed) and speed > 0
    assert speed == pytest.approx(U_S * 0.1, rel=0.1)
    fronts = [row["front_position_angstrom"] for row in summary["per_frame"]]
    assert fronts[0] is None  # t = 0: nothing is shocked yet
    times = np.array([row["time"] for row in summary["per_frame"]])
    assert np.allclose(fronts[1:], U_S * times[1:], atol=SPACING)
    assert summary["fit_frames"] == FRAMES - 1


def test_particle_velocity_pressure_and_phases_behind_and_ahead(with_velocities):
    _, summary = with_velocities
    assert summary["analysis_timestep"] == (FRAMES - 1) * STEPS_PER_FRAME
    assert summary["particle_velocity_km_s"] == pytest.approx(U_P * 0.1, rel=0.02)
    assert summary["pressure_behind_GPa"] == pytest.approx(P_BEHIND * 1e-4, rel=1e-6)
    assert summary["pressure_ahead_GPa"] == pytest.approx(P_AHEAD * 1e-4, rel=1e-6)
    behind, ahead = summary["phase_fractions_behind"], summary["phase_fractions_ahead"]
    assert behind == pytest.approx({"other": 0.0, "alpha-quartz": 0.0, "coesite": 0.75, "stishovite": 0.25})
    assert ahead == pytest.approx({"other": 4 / 36, "alpha-quartz": 32 / 36, "coesite": 0.0, "stishovite": 0.0})
    assert summary["mean_confidence_behind"] == pytest.approx(0.8)
    assert summary["mean_confidence_ahead"] == pytest.approx(0.95)


def test_phase_fractions_over_time_follow_the_front(with_velocities):
    _, summary = with_velocities
    last = summary["per_frame"][-1]["fractions"]
    shocked = (U_S * (FRAMES - 1) * STEPS_PER_FRAME * TIMESTEP_FS * 1e-3 / SPACING) / (LENGTH / SPACING)
    assert last["coesite"] + last["stishovite"] == pytest.approx(shocked)
    assert summary["per_frame"][0]["fractions"]["alpha-quartz"] == pytest.approx(32 / 36)


def test_outputs_exist_and_figures_are_non_blank(with_velocities):
    import matplotlib.image as mpimg

    outdir, summary = with_velocities
    assert json.loads((outdir / "summary.json").read_text())["front_speed_km_s"] == summary["front_speed_km_s"]
    text = (outdir / "summary.txt").read_text()
    assert "shock speed" in text and "km/s" in text and "30.00 GPa" in text
    for name in ("xt_diagram.png", "phase_fractions.png", "snapshot.png"):
        image = mpimg.imread(outdir / name)[..., :3]
        assert image.std() > 0.05, name
        packed = np.round(255 * image).astype(np.int64) @ np.array([65536, 256, 1])
        assert len(np.unique(packed)) > 20, name  # text, lines and phase colours, not one flat colour


def test_a_short_fast_patch_ahead_is_not_taken_for_the_front(tmp_path):
    summary = shock_report(_write_dump(tmp_path, blip=True), tmp_path / "out")
    fronts = [row["front_position_angstrom"] for row in summary["per_frame"]]
    times = np.array([row["time"] for row in summary["per_frame"]])
    assert fronts[0] is None
    assert np.allclose(fronts[1:], U_S * times[1:], atol=SPACING)
    assert summary["front_speed_km_s"] == pytest.approx(U_S * 0.1, rel=0.02)


def test_density_profile_finds_the_front_without_velocities(tmp_path):
    dump = _write_dump(tmp_path, velocities=False)
    summary = shock_report(dump, tmp_path / "out")
    assert summary["front_method"] == "density"
    assert summary["front_speed_km_s"] == pytest.approx(U_S * 0.1, rel=0.1)
    assert summary["particle_velocity_km_s"] is None
    assert summary["pressure_behind_GPa"] == pytest.approx(30.0, rel=1e-6)


def test_piston_at_the_high_end_is_detected(tmp_path):
    dump = _write_dump(tmp_path, mirror=True)
    summary = shock_report(dump, tmp_path / "out")
    assert summary["piston_end"] == "high"
    assert summary["front_speed_km_s"] == pytest.approx(U_S * 0.1, rel=0.1)
    assert summary["particle_velocity_km_s"] == pytest.approx(U_P * 0.1, rel=0.02)
    last = summary["per_frame"][-1]
    assert last["front_position_angstrom"] == pytest.approx(LENGTH - U_S * last["time"], abs=SPACING)


def test_without_timestep_time_is_in_steps(tmp_path):
    dump = _write_dump(tmp_path, sidecar=CLASSES)
    summary = shock_report(dump, tmp_path / "out")
    assert summary["time_unit"] == "step" and summary["front_speed_km_s"] is None
    per_step = summary["front_speed_angstrom_per_step"]
    assert per_step == pytest.approx(U_S * TIMESTEP_FS * 1e-3, rel=0.1)


def test_cli_report_writes_beside_the_dump(tmp_path, capsys):
    dump = _write_dump(tmp_path / "run", velocities=False)
    assert main(["report", str(dump)]) == 0
    assert (tmp_path / "run" / "summary.json").is_file() and (tmp_path / "run" / "xt_diagram.png").is_file()
    assert main(["report", str(dump), "-o", str(tmp_path / "elsewhere"), "--axis", "x"]) == 0
    assert "shock speed" in capsys.readouterr().out
    assert (tmp_path / "elsewhere" / "snapshot.png").is_file()


def test_minimum_si_o_distance_over_all_frames_when_the_sidecar_names_the_types(tmp_path):
    from lammps_phase.inference.formats import read_frames

    dump = _write_dump(tmp_path, sidecar={"classes": CLASSES, "timestep": TIMESTEP_FS, "types": ["Si", "O"]},
                       name="plain.dump")
    # Re-type the atoms: every other atom O, so Si–O pairs exist within and across planes (and across y/z faces).
    frames = list(read_frames(dump))
    with DumpWriter(dump) as writer:
        for frame in frames:
            frame.columns["type"] = 1 + (np.arange(frame.natoms) % 2)
            writer.write(frame)
    from scipy.spatial import cKDTree

    expected = np.inf
    for frame in frames:
        pos = frame.positions()
        # Minimum image in y and z; a box far longer than the sample along x keeps x non-periodic.
        tree = cKDTree(pos[frame.columns["type"] == 2], boxsize=[1e4, NT * SPACING, NT * SPACING])
        expected = min(expected, float(tree.query(pos[frame.columns["type"] == 1], k=1)[0].min()))
    summary = shock_report(dump, tmp_path / "out")
    assert summary["min_si_o_distance_angstrom"] == pytest.approx(expected, rel=1e-5)
    assert "min Si–O distance" in (tmp_path / "out" / "summary.txt").read_text()


def test_labels_beyond_the_named_classes_are_refused(tmp_path):
    dump = _write_dump(tmp_path, sidecar=["alpha-quartz", "coesite"])
    with pytest.raises(LammpsPhaseError, match="names only 2 classes"):
        shock_report(dump, tmp_path / "out")


def test_dump_without_phase_labels_is_refused(tmp_path):
    path = tmp_path / "plain.dump"
    frame = _frame(1, np.random.default_rng(0), True, False)
    del frame.columns["i_phase"]
    with DumpWriter(path) as writer:
        writer.write(frame)
    with pytest.raises(LammpsPhaseError, match="no phase column"):
        shock_report(path, tmp_path / "out")
    assert main(["report", str(path)]) == 2
