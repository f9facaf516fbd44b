"""Geometry of the samples beyond periodic bulk: slabs, interfaces, clusters, voids and bicrystals.

Where the free surfaces and interfaces of a sample lie, how deep each atom sits below them, and how such samples
are cut or stacked from crystals. The variant runs (:mod:`lammps_phase.data.variants`) build their samples with
these, their checks judge the interior by them, and the training report scores accuracy by depth. Pure numpy.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from lammps_phase.errors import LammpsPhaseError

AXES = {"x": 0, "y": 1, "z": 2}
#: Å below a surface beyond which an atom counts as interior for the phase check of a slab
INTERIOR_DEPTH = 6.0


def axis_index(axis: str) -> int:
    """Cell row of ``axis`` ("x", "y" or "z"); anything else is refused before a run starts."""
    if axis not in AXES:
        raise LammpsPhaseError(f"axis must be x, y or z, not {axis!r}")
    return AXES[axis]


def _row_fraction(positions: np.ndarray, cell: np.ndarray, origin: np.ndarray, a: int) -> np.ndarray:
    """Fractional coordinate of every atom along cell row ``a``, wrapped into [0, 1)."""
    return ((np.asarray(positions) - origin) @ np.linalg.inv(cell))[:, a] % 1.0


def _plane_spacing(cell: np.ndarray, a: int) -> float:
    """Distance (Å) between the lattice planes spanned by the two other cell rows: one period along row ``a``."""
    others = [cell[i] for i in range(3) if i != a]
    normal = np.cross(*others)
    return abs(float(np.dot(cell[a], normal))) / np.linalg.norm(normal)


def surface_depth(positions: np.ndarray, cell: np.ndarray, origin: np.ndarray, axis: str | int) -> np.ndarray:
    """Distance (Å) of every atom below the nearer free surface of a slab whose normal is along cell row ``axis``.

    The vacuum is the widest empty interval of the fractional coordinate along that row (periodic), so a slab
    that wrapped across the box boundary is measured correctly. Distances are along the plane normal.
    """
    a = axis_index(axis) if isinstance(axis, str) else int(axis)
    frac = _row_fraction(positions, cell, origin, a)
    order = np.sort(frac)
    gaps = np.diff(np.concatenate([order, [order[0] + 1.0]]))
    g = int(np.argmax(gaps))
    top, bottom = order[g], order[(g + 1) % len(order)]  # slab runs from bottom upwards (periodically) to top
    s = (frac - bottom) % 1.0
    width = (top - bottom) % 1.0
    return np.minimum(s, width - s) * _plane_spacing(cell, a)


def interface_side(positions: np.ndarray, cell: np.ndarray, origin: np.ndarray, axis: str) -> np.ndarray:
    """True for atoms in the upper half (fractional 0.5–1) of the cell along ``axis``: the side that is melted."""
    return _row_fraction(positions, cell, origin, axis_index(axis)) >= 0.5


def interface_distance(positions: np.ndarray, cell: np.ndarray, origin: np.ndarray, axis: str,
                       planes: Sequence[float] = (0.0, 0.5)) -> np.ndarray:
    """Distance (Å) of every atom from the nearest interface plane; ``planes`` are fractional coordinates along
    cell row ``axis`` (default: the two planes at 0 and 0.5 that separate the halves of an interface run)."""
    a = axis_index(axis)
    return _plane_distance(_row_fraction(positions, cell, origin, a), planes) * _plane_spacing(cell, a)


def _plane_distance(frac: np.ndarray, planes: Sequence[float]) -> np.ndarray:
    """Fractional distance (periodic) of every coordinate from the nearest of ``planes``."""
    return np.min([np.abs((frac - p + 0.5) % 1.0 - 0.5) for p in planes], axis=0)


def phase_boundary_planes(positions: np.ndarray, cell: np.ndarray, origin: np.ndarray, axis: str,
                          partner: np.ndarray) -> tuple[float, float]:
    """The planes (fractional along row ``axis``) between which an interface run's partner phase lies now, fitted to
    its labels: ``partner`` is 1 for partner atoms, 0 for crystal atoms, −1 for atoms without a label.

    Why: the melted half starts at 0.5–1, but crystal regrows into it (seed-4 coesite | glass: 2–3 Å from each
    plane), so distances from the starting planes put atoms of the regrown layers' boundary "3–6 Å from the
    interface". The fit is the slab (periodic, not crossing the crystal half's middle at 0.25) that holds the most
    partner minus crystal atoms — the maximum-sum run of ±1 over the labelled atoms sorted along the axis, one
    prefix-sum scan — bounded half-way to the next atom outside it.
    Without both phases labelled, the starting planes (0.5, 0.0)."""
    return _boundary_planes(_row_fraction(positions, cell, origin, axis_index(axis)), np.asarray(partner))


def _boundary_planes(frac: np.ndarray, codes: np.ndarray) -> tuple[float, float]:
    """:func:`phase_boundary_planes` on the atoms' fractional coordinates along the axis."""
    labelled = codes >= 0
    if not (codes[labelled] == 1).any() or not (codes[labelled] == 0).any():
        return 0.5, 0.0
    shifted = (frac[labelled] - 0.25) % 1.0  # the crystal half's middle at the ends, the partner's in the middle
    order = np.argsort(shifted, kind="stable")
    g = shifted[order]
    score = np.where(codes[labelled][order] == 1, 1, -1)
    prefix = np.concatenate([[0], np.cumsum(score)])  # the best run i..j maximises prefix[j + 1] − prefix[i]
    best_hi = int(np.argmax(prefix[1:] - np.minimum.accumulate(prefix[:-1])))
    best_lo = int(np.argmin(prefix[: best_hi + 1]))
    lower = 0.5 * (g[best_lo] + (g[best_lo - 1] if best_lo > 0 else 0.0))
    upper = 0.5 * (g[best_hi] + (g[best_hi + 1] if best_hi + 1 < len(g) else 1.0))
    return float((lower + 0.25) % 1.0), float((upper + 0.25) % 1.0)


def phase_boundary_distance(positions: np.ndarray, cell: np.ndarray, origin: np.ndarray, axis: str,
                            partner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance (Å) of every atom from the nearer fitted phase boundary (:func:`phase_boundary_planes`) and whether
    it lies on the partner's side of it."""
    a = axis_index(axis)
    frac = _row_fraction(positions, cell, origin, a)
    lower, upper = _boundary_planes(frac, np.asarray(partner))
    inside = (frac - lower) % 1.0 < (upper - lower) % 1.0
    return _plane_distance(frac, (lower, upper)) * _plane_spacing(cell, a), inside


# ------------------------------------------------------------------------------------------------ clusters, voids


def sphere_depth(positions: np.ndarray, cell: np.ndarray, origin: np.ndarray, geometry: str) -> np.ndarray:
    """Depth (Å) below the free surface of a cluster (``geometry="cluster"``: outermost atom radius − r) or
    of a spherical void (``"void"``: r − innermost atom radius), r measured from the cell centre (minimum image)."""
    centre = origin + 0.5 * np.asarray(cell).sum(axis=0)
    d = np.asarray(positions) - centre
    frac = d @ np.linalg.inv(cell)
    d = (frac - np.round(frac)) @ cell
    r = np.linalg.norm(d, axis=1)
    return r.max() - r if geometry == "cluster" else r - r.min()


def cut_sphere(crystal: Any, radius: float, geometry: str, vacuum: float = 20.0) -> Any:
    """A cluster (atoms within ``radius`` of the cell centre, in a cubic box with ``vacuum`` Å around it) or a
    void (the crystal without them). Whole formula units are not enforced: the cut surface is what it is."""
    from lammps_phase.data.structures import Crystal

    cell = np.asarray(crystal.cell, float)
    centre = 0.5 * cell.sum(axis=0)
    d = np.asarray(crystal.positions) - centre
    r = np.linalg.norm(d, axis=1)
    inside = r < radius
    if geometry == "cluster":
        side = 2 * radius + 2 * vacuum
        if np.linalg.norm(cell, axis=1).min() < 2 * radius:
            raise LammpsPhaseError(f"the crystal ({np.linalg.norm(cell, axis=1).min():.1f} Å) is too small for a "
                                   f"cluster of radius {radius} Å; raise min_length")
        positions, new_cell, keep = d[inside] + side / 2, np.eye(3) * side, inside
    elif geometry == "void":
        if np.linalg.norm(cell, axis=1).min() < 2 * radius + 2 * (INTERIOR_DEPTH + 2):
            raise LammpsPhaseError(f"the crystal is too small for a void of radius {radius} Å with an interior "
                                   "around it; raise min_length")
        positions, new_cell, keep = np.asarray(crystal.positions)[~inside], cell, ~inside
    else:
        raise LammpsPhaseError(f"geometry must be 'cluster' or 'void', not {geometry!r}")
    symbols = tuple(np.asarray(crystal.symbols)[keep])
    return Crystal(name=crystal.name, cell=new_cell, positions=positions, symbols=symbols,
                   source=f"{getattr(crystal, 'source', '')} ({geometry}, r = {radius} Å)")


# ------------------------------------------------------------------------------------------------ bicrystals


def bicrystal(a: Any, b: Any, axis: str = "x", length: float = 16.0, lateral: float = 14.0, gap: float = 1.8,
              max_misfit: float = 0.05) -> tuple[Any, np.ndarray]:
    """Crystal ``a`` and crystal ``b`` stacked along ``axis`` in one periodic box (two interfaces), and a mask of
    ``b``'s atoms. Each is an orthogonal supercell; along the two lateral axes the repeats are chosen so the
    lengths agree within ``max_misfit`` and ``b`` is strained onto ``a``'s lateral lengths."""
    from lammps_phase.data.structures import Crystal, supercell

    ax = axis_index(axis)
    ua, ub = supercell(a, 0.1, orthogonal=True), supercell(b, 0.1, orthogonal=True)
    la, lb = np.diag(ua.cell).copy(), np.diag(ub.cell).copy()
    reps_a, reps_b = np.ones(3), np.ones(3)
    for j in range(3):
        if j == ax:
            reps_a[j], reps_b[j] = np.ceil(length / la[j]), np.ceil(length / lb[j])
            continue
        best = None
        for na in range(1, 12):
            for nb in range(1, 12):
                if na * la[j] < lateral or nb * lb[j] < lateral or na * la[j] > 2.5 * lateral:
                    continue
                misfit = abs(na * la[j] - nb * lb[j]) / (na * la[j])
                if best is None or misfit < best[0] - 1e-3 or (abs(misfit - best[0]) <= 1e-3 and na * la[j] < best[1] * la[j]):
                    best = (misfit, na, nb)
        if best is None or best[0] > max_misfit:
            raise LammpsPhaseError(f"no lateral match of {a.name} and {b.name} along axis {j} within {max_misfit:.0%}")
        reps_a[j], reps_b[j] = best[1], best[2]
    sa = supercell(ua, tuple(reps_a * la - 1e-6), orthogonal=True)
    sb = supercell(ub, tuple(reps_b * lb - 1e-6), orthogonal=True)
    ca, cb = np.diag(sa.cell), np.diag(sb.cell)
    scale = np.ones(3)
    scale[[j for j in range(3) if j != ax]] = ca[[j for j in range(3) if j != ax]] / cb[[j for j in range(3) if j != ax]]
    pb = np.asarray(sb.positions) * scale
    pb[:, ax] += ca[ax] + gap
    cell_len = ca.copy()
    cell_len[ax] = ca[ax] + cb[ax] + 2 * gap
    positions = np.concatenate([np.asarray(sa.positions), pb])
    symbols = tuple(sa.symbols) + tuple(sb.symbols)
    mask = np.r_[np.zeros(len(sa.symbols), bool), np.ones(len(sb.symbols), bool)]
    crystal = Crystal(name=a.name, cell=np.diag(cell_len), positions=positions, symbols=symbols,
                      source=f"{a.name} | {b.name} along {axis}")
    return crystal, mask


def bicrystal_planes(crystal: Any, mask: np.ndarray, axis: str) -> tuple[float, float]:
    """Fractional coordinates (along ``axis``) of the two interfaces of a :func:`bicrystal`: mid-gap on both sides."""
    a = axis_index(axis)
    frac = (np.asarray(crystal.positions) @ np.linalg.inv(crystal.cell))[:, a]
    first_top, second_bottom, second_top = frac[~mask].max(), frac[mask].min(), frac[mask].max()
    return (0.5 * (first_top + second_bottom), (0.5 * (second_top + 1.0)) % 1.0)
