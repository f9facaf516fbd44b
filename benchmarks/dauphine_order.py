"""Is hot quartz in a run still α? The Dauphiné order parameter of each frame (issue 11, session 8).

    python benchmarks/dauphine_order.py cache/sio2/runs/alpha_quartz_void-r8_0GPa_seed4.npz [more runs]

α-quartz is β-quartz with its tetrahedra tilted one way (α1) or the other (α2, the Dauphiné twin: a 180°
rotation about c). Every atom of α1 sits a small distance d_i from its β site and α2 sits at −d_i. Frame 0 of a
run (the coolest) gives the α1 sites; the twin operation is found by searching the axis position (c along z in
the project's orthogonal quartz boxes) that maps the frame onto itself within a fraction of an Å; then

    η = ⟨(r_i − b_i) · d_i⟩ / ⟨|d_i|²⟩   (b_i: β site, drift and cell scaling removed)

is 1 for frame 0, stays near it in α, and is ≈ 0 in β (or flips sign when a small box tilts as a whole). The
local η (averaged within 8 Å of each atom) shows whether any region has lost the tilt. Prints one line per frame.
Orthogonal cells only (the runs' quartz boxes); frame 0 must be α.
"""

from __future__ import annotations

import sys

import numpy as np
from scipy.spatial import cKDTree

LOCAL_RADIUS = 8.0  # Å: a region of a few unit cells


def _twin_mismatch(positions: np.ndarray, species: np.ndarray, lengths: np.ndarray, origin: np.ndarray,
                   centre: np.ndarray, trees: dict) -> np.ndarray:
    """Distance of each atom's twin image (180° about z through ``centre``) from the nearest atom of its species."""
    out = []
    for element, tree in trees.items():
        image = positions[species == element].copy()
        image[:, :2] = 2.0 * centre - image[:, :2]
        out.append(tree.query(np.mod(image - origin, lengths))[0])
    return np.concatenate(out)


def twin_axis(positions: np.ndarray, species: np.ndarray, cell: np.ndarray, origin: np.ndarray) -> tuple[np.ndarray, float]:
    """(axis position in the xy plane, median mismatch Å) of the Dauphiné operation, by a coarse-to-fine search."""
    lengths = np.diag(cell)
    trees = {e: cKDTree(np.mod(positions[species == e] - origin, lengths), boxsize=lengths) for e in np.unique(species)}
    def best_of(centres) -> tuple[float, np.ndarray]:
        scored = [(float(np.median(_twin_mismatch(positions, species, lengths, origin, c, trees))), c) for c in centres]
        return min(scored, key=lambda s: s[0])

    step = 0.25
    grid = np.arange(0.0, 10.0, step)
    best = best_of([origin[:2] + (x, y) for x in grid for y in grid])
    for _ in range(3):
        step /= 4.0
        offsets = np.linspace(-4 * step, 4 * step, 9)
        best = min(best, best_of([best[1] + (dx, dy) for dx in offsets for dy in offsets]), key=lambda s: s[0])
    return best[1], best[0]


def order_parameter(path: str) -> None:
    with np.load(path) as run:
        pos, cells, origins = run["positions"].astype(float), run["cells"], run["origins"]
        temperature, species = run["temperature"], run["species"]
    if not all(np.allclose(c, np.diag(np.diag(c))) for c in cells):
        raise SystemExit(f"{path}: orthogonal cells only")
    centre, mismatch = twin_axis(pos[0], species, cells[0], origins[0])
    to_frac = np.linalg.inv(cells[0])
    frac0 = (pos[0] - origins[0]) @ to_frac
    twin = pos[0].copy()
    twin[:, :2] = 2.0 * centre - twin[:, :2]
    twin_frac = (twin - origins[0]) @ to_frac
    partner = np.empty_like(frac0)
    lengths = np.diag(cells[0])
    for element in np.unique(species):
        mine = np.flatnonzero(species == element)
        _, j = cKDTree(np.mod(twin_frac[mine], 1.0) * lengths, boxsize=lengths).query(np.mod(frac0[mine], 1.0) * lengths)
        step = frac0[mine] - twin_frac[mine][j]
        partner[mine] = frac0[mine] - (step - np.round(step))
    beta, tilt = 0.5 * (frac0 + partner), 0.5 * (frac0 - partner)
    print(f"{path}: {len(species)} atoms, twin operation found to {mismatch:.2f} Å (median), "
          f"|d| = {np.linalg.norm(tilt @ cells[0], axis=1).mean():.2f} Å")
    for t in range(len(pos)):
        frac = (pos[t] - origins[t]) @ np.linalg.inv(cells[t])
        drift = frac - frac0
        drift -= np.round(drift)
        off = frac - beta - drift.mean(axis=0)
        off -= np.round(off)
        d = tilt @ cells[t]
        per_atom = np.sum((off @ cells[t]) * d, axis=1) / np.mean(np.sum(d * d, axis=1))
        box = np.diag(cells[t])
        wrapped = np.mod(frac, 1.0) * box
        local = np.array([per_atom[n].mean() for n in cKDTree(wrapped, boxsize=box).query_ball_point(wrapped, LOCAL_RADIUS)])
        print(f"  T {temperature[t]:6.0f} K   η {per_atom.mean():+.3f}   regions with local η < 0.2: {np.mean(local < 0.2):.2f}"
              f"   < 0: {np.mean(local < 0):.2f}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for run_path in sys.argv[1:]:
        order_parameter(run_path)
