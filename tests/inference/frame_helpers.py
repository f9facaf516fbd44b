"""Frames, samples and checks shared by the tests of lammps_phase.inference (not a test module)."""

from __future__ import annotations

import numpy as np

from lammps_phase.inference.formats import Frame


def make_frame(natoms: int = 40, tilt=(0.0, 0.0, 0.0), pbc=(True, True, True), timestep: int = 100,
               seed: int = 0) -> Frame:
    rng = np.random.default_rng(seed)
    boxlo = np.array([-1.5, 0.25, 2.0])
    boxhi = boxlo + np.array([10.0, 8.0, 12.0])
    frame = Frame(timestep, boxlo, boxhi, np.array(tilt, float), tuple(pbc), {})
    scaled = rng.random((natoms, 3))
    xyz = boxlo + scaled @ frame.cell()
    frame.columns = {
        "id": np.arange(1, natoms + 1, dtype=np.int64),
        "type": rng.integers(1, 3, natoms).astype(np.int64),
        "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
        "vx": rng.normal(size=natoms),
    }
    return frame


def noisy_quartz(sigma: float = 0.15) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(positions, cell, species) of 3 x 3 x 3 α-quartz cells shaken by N(0, sigma²) Å: read differently by a
    random network from atom to atom, so graph post-processing (consensus, pooling) has labels to change."""
    from lammps_phase.data import structures

    crystal = structures.build("alpha_quartz")
    cell = crystal.cell * 3
    shifts = np.array([[i, j, l] for i in range(3) for j in range(3) for l in range(3)]) @ crystal.cell
    positions = (crystal.positions[None] + shifts[:, None]).reshape(-1, 3)
    positions += np.random.default_rng(0).normal(0, sigma, positions.shape)
    return positions, cell, list(crystal.symbols) * len(shifts)


def pairwise(positions: np.ndarray) -> np.ndarray:
    return np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)


def assert_same_box(a: Frame, b: Frame) -> None:
    np.testing.assert_allclose(a.boxlo, b.boxlo, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(a.boxhi, b.boxhi, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(a.tilt, b.tilt, rtol=1e-14, atol=1e-14)
    assert tuple(a.pbc) == tuple(b.pbc)
