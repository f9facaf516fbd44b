"""Extended XYZ: a general lattice is rotated to LAMMPS form with positions and velocities."""

from __future__ import annotations

import gzip

import numpy as np

from lammps_phase.inference.formats import count_frames, detect_format, read_frames

from frame_helpers import pairwise


def test_extxyz_with_a_general_lattice_is_rotated_to_lammps_form(tmp_path):
    rng = np.random.default_rng(5)
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    rotation = rotation @ np.array([[1, 0, 0], [0, np.cos(0.4), -np.sin(0.4)], [0, np.sin(0.4), np.cos(0.4)]])
    lammps_like = np.array([[6.0, 0, 0], [1.0, 5.0, 0], [-0.5, 0.8, 7.0]])
    lattice = lammps_like @ rotation.T
    positions = rng.random((6, 3)) @ lattice
    velocities = rng.normal(size=(6, 3))
    species = ["Si", "O", "O", "Si", "O", "O"]
    frames_text = []
    for step in (0, 50):
        lines = [f"{len(species)}",
                 f'Lattice="{" ".join(f"{v:.17g}" for v in lattice.ravel())}" '
                 f'Properties=species:S:1:pos:R:3:velo:R:3:tag:I:1 Timestep={step} pbc="T T F"']
        lines += [f"{s} {p[0]:.17g} {p[1]:.17g} {p[2]:.17g} {v[0]:.17g} {v[1]:.17g} {v[2]:.17g} {k}"
                  for k, (s, p, v) in enumerate(zip(species, positions, velocities))]
        frames_text.append("\n".join(lines) + "\n")
    path = tmp_path / "cell.extxyz.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("".join(frames_text))
    assert detect_format(path) == "extxyz"
    assert count_frames(path) == 2
    frames = list(read_frames(path))
    assert [f.timestep for f in frames] == [0, 50]
    frame = frames[0]
    np.testing.assert_allclose(frame.cell(), lammps_like, atol=1e-12)
    assert frame.pbc == (True, True, False)
    np.testing.assert_allclose(pairwise(frame.positions()), pairwise(positions), atol=1e-12)
    # Positions stay at the same fractional coordinates, and velocities rotate with them.
    np.testing.assert_allclose(frame.positions() @ np.linalg.inv(frame.cell()),
                               positions @ np.linalg.inv(lattice), atol=1e-12)
    v = np.column_stack([frame.columns[k] for k in ("vx", "vy", "vz")])
    np.testing.assert_allclose(v, velocities @ rotation, atol=1e-12)
    assert frame.species(None).tolist() == species
    assert frame.columns["tag"].dtype == np.int64 and frame.columns["tag"].tolist() == list(range(6))
