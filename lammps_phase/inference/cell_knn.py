"""Exact k nearest neighbours by a compiled cell list: the fast path of :func:`neighbors.knn`'s search.

Building a ``cKDTree`` over atoms and ghost images and querying it was half of a labelling (≈ 2.8 µs/atom at
10^5 atoms on 2 threads). Binning the points into cells of a few points (a counting sort) and scanning cells near
each query in order of distance, in C with OpenMP over queries, gives the same neighbours faster; see
``_cell_knn.c`` for the search and its tie rule (equal distances: lower point index first).
:meth:`CellSearch.neighbors` goes on to write :func:`neighbors.knn`'s rows (the atom itself dropped, atom
indices, float32 vectors and distances) in the same C loop, so no per-row numpy work follows the search.

The C file is compiled at first use with the system compiler (``$CC``, else ``cc``) into a per-machine cache,
``$LAMMPS_PHASE_NATIVE_CACHE``, else the folder ``native`` beside the kernel cache of :mod:`lammps_phase.model.aot`
(``~/.cache/lammps-phase/native``); the library's name hashes the source, the compiler and its flags and the
platform, so an edit or another machine simply misses. Without a working compiler :func:`available` is False,
a warning says so once, and the caller keeps its ``cKDTree`` search. ``LAMMPS_PHASE_KNN=tree`` forces that path.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Optional

import numpy as np

from lammps_phase.native import NATIVE_CACHE_ENV, NativeLibrary, build, cache_dir

__all__ = ["BACKEND_ENV", "NATIVE_CACHE_ENV", "CellSearch", "NativeLibrary", "available", "build", "cache_dir",
           "failure", "forced_off", "query"]

BACKEND_ENV = "LAMMPS_PHASE_KNN"  # "tree": scipy's cKDTree (benchmarks, tests); anything else: compiled if possible
_SOURCE = Path(__file__).with_name("_cell_knn.c")
_POINTS_PER_CELL = 4.0  # mean points per cell (α-quartz, 10⁴-10⁶ atoms, k = 16: 4-6 are 4-8 % faster than 2)
_RADIUS_FACTOR = 1.15  # fast-path radius / radius holding k + 1 points at mean density (α-quartz at 300 K: <= 1.10)
_F64 = np.ctypeslib.ndpointer(dtype=np.float64, flags="C_CONTIGUOUS")
_I64 = np.ctypeslib.ndpointer(dtype=np.int64, flags="C_CONTIGUOUS")
_F32 = np.ctypeslib.ndpointer(dtype=np.float32, flags=("C_CONTIGUOUS", "WRITEABLE"))
_I32 = np.ctypeslib.ndpointer(dtype=np.int32, flags=("C_CONTIGUOUS", "WRITEABLE"))


def forced_off() -> bool:
    """LAMMPS_PHASE_KNN=tree: every compiled helper of the inference package stands aside (benchmarks, tests)."""
    return os.environ.get(BACKEND_ENV, "").strip().lower() == "tree"


def available() -> bool:
    """Whether :func:`query` runs compiled: not forced off by LAMMPS_PHASE_KNN=tree and the library builds."""
    return not forced_off() and _library() is not None


def failure() -> Optional[str]:
    """Why the compiled search could not be built in this process (None: it was, or it was not tried yet)."""
    return _SEARCH.failure


def _configure(lib: ctypes.CDLL) -> None:
    """The search's ctypes signatures."""
    lib.cell_knn_bin.restype = ctypes.c_int
    lib.cell_knn_bin.argtypes = [ctypes.c_int64, _F64, _F64, ctypes.c_double, _I64, _I64, _F64, _I64]
    lib.cell_knn_query.restype = ctypes.c_int
    lib.cell_knn_query.argtypes = [
        ctypes.c_int64, _F64, ctypes.c_int, ctypes.c_double, _F64, ctypes.c_double, ctypes.c_double, _I64, _I64,
        _F64, _I64, ctypes.c_int64, ctypes.c_int, ctypes.c_double, ctypes.c_int, _F64, _I64,
    ]
    lib.cell_knn_neighbors.restype = ctypes.c_int
    lib.cell_knn_neighbors.argtypes = [
        ctypes.c_int64, _I64, _I64, ctypes.c_int, ctypes.c_double, ctypes.c_double, _F64, ctypes.c_double,
        ctypes.c_double, _I64, _I64, _F64, _I64, _F64, _I64, ctypes.c_int64, ctypes.c_int, ctypes.c_double,
        ctypes.c_int, _I32, _F32, _F32, _F64,
    ]


_SEARCH = NativeLibrary(_SOURCE, _configure, "the compiled neighbour search", "using scipy's cKDTree, about 2x slower")


def _library() -> Optional[ctypes.CDLL]:
    """The compiled search, built into the cache on first use; None (warned once) when it cannot be built."""
    return _SEARCH.get()


class CellSearch:
    """Points binned once into cubic cells; :meth:`query` finds the k + 1 nearest of any query points."""

    def __init__(self, points: np.ndarray, k_plus_1: int, threads: int = 1) -> None:
        lib = _library()
        if lib is None:
            raise RuntimeError(f"the compiled neighbour search is unavailable: {_SEARCH.failure}")
        self._lib = lib
        self.points = np.ascontiguousarray(points, dtype=np.float64)
        if self.points.ndim != 2 or self.points.shape[1] != 3:
            raise ValueError(f"points must have shape (n, 3), got {self.points.shape}")
        n = len(self.points)
        self.threads = int(threads) if threads and threads > 0 else (os.cpu_count() or 1)
        self.lo = self.points.min(axis=0) if n else np.zeros(3)
        extent = (self.points.max(axis=0) if n else np.zeros(3)) - self.lo
        self.h = _cell_edge(extent, n)
        self.dims = np.maximum(1, np.ceil(extent / self.h)).astype(np.int64)
        # slack on every lower bound: covers the rounding of (x - lo) / h in the binning
        self.eps = 1e-12 * (float(np.abs(self.points).max(initial=0.0)) + float(extent.max(initial=0.0)) + self.h)
        density = n / max(float(np.prod(np.maximum(extent, self.h))), 1e-300)
        radius = (3.0 * k_plus_1 / (4.0 * np.pi * max(density, 1e-300))) ** (1.0 / 3.0)
        self.reach = int(np.clip(np.ceil(1.5 * radius / self.h) + 1, 2, 6))  # stencil half-width in cells
        self.radius = _RADIUS_FACTOR * radius  # of the fast path; a query with fewer points within goes generic
        self.cell_start = np.empty(int(np.prod(self.dims)) + 1, dtype=np.int64)
        self.sorted_points = np.empty_like(self.points)
        self.sorted_index = np.empty(n, dtype=np.int64)
        if lib.cell_knn_bin(n, self.points, self.lo, 1.0 / self.h, self.dims, self.cell_start, self.sorted_points,
                            self.sorted_index) != 0:
            raise MemoryError("cell_knn_bin: out of memory")

    def query(self, queries: np.ndarray, k_plus_1: int, bound: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
        """Distances (m, k_plus_1) ascending and point indices, like ``cKDTree.query(queries, k_plus_1,
        distance_upper_bound=bound)``: only points closer than ``bound``; missing ones are inf and n."""
        q = np.ascontiguousarray(queries, dtype=np.float64)
        if q.ndim != 2 or q.shape[1] != 3:
            raise ValueError(f"queries must have shape (m, 3), got {q.shape}")
        kp1 = int(k_plus_1)
        if kp1 < 1:
            raise ValueError(f"k_plus_1 must be >= 1, got {kp1}")
        dist = np.empty((len(q), kp1), dtype=np.float64)
        idx = np.empty((len(q), kp1), dtype=np.int64)
        if len(q) == 0:
            return dist, idx
        bound2 = float(bound) ** 2 if np.isfinite(bound) else np.inf
        radius = min(self.radius, float(bound))
        if self._lib.cell_knn_query(len(q), q, kp1, bound2, self.lo, self.h, self.eps, self.dims, self.cell_start,
                                    self.sorted_points, self.sorted_index, len(self.points), self.reach, radius,
                                    self.threads, dist, idx) != 0:
            raise MemoryError("cell_knn_query: out of memory")
        return dist, idx


    def neighbors(self, atoms: np.ndarray, rows: np.ndarray, point_atom: np.ndarray, k: int, bound: float,
                  shell: float, index: np.ndarray, vectors: np.ndarray, distances: np.ndarray) -> np.ndarray:
        """The k nearest neighbours of ``atoms`` (points 0..N-1 are the atoms themselves) written into a neighbour
        list: the k + 1 nearest points closer than ``bound`` less the atom itself (else the farthest), as atom
        ``point_atom[p]``, vector ``points[p] - points[atom]`` (float64, stored float32) and distance (float32).
        Only rows whose k-th distance is <= ``shell`` are written, at ``rows``; returns every k-th distance
        (float64, inf when fewer than k were found), so ``~(kth <= shell)`` marks the rows left alone."""
        atoms = np.ascontiguousarray(atoms, dtype=np.int64)
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        point_atom = np.ascontiguousarray(point_atom, dtype=np.int64)
        m, n = len(atoms), len(self.points)
        if rows.shape != (m,) or point_atom.shape != (n,):
            raise ValueError(f"atoms {atoms.shape}, rows {rows.shape} and point_atom {point_atom.shape} ({n} points) "
                             "do not match")
        if m and (atoms.min() < 0 or atoms.max() >= n or rows.min() < 0 or rows.max() >= len(index)):
            raise ValueError("atoms or rows out of range")
        if index.shape != (len(index), k) or vectors.shape != (len(index), k, 3) or distances.shape != index.shape:
            raise ValueError(f"outputs of shapes {index.shape}, {vectors.shape}, {distances.shape} for k = {k}")
        kth = np.empty(m, dtype=np.float64)
        if m == 0:
            return kth
        bound2 = float(bound) ** 2 if np.isfinite(bound) else np.inf
        radius = min(self.radius, float(bound))
        if self._lib.cell_knn_neighbors(m, atoms, rows, int(k), bound2, float(shell), self.lo, self.h, self.eps,
                                        self.dims, self.cell_start, self.sorted_points, self.sorted_index,
                                        self.points, point_atom, n, self.reach, radius, self.threads, index,
                                        vectors, distances, kth) != 0:
            raise MemoryError("cell_knn_neighbors: out of memory")
        return kth


def query(points: np.ndarray, queries: np.ndarray, k_plus_1: int, bound: float = np.inf,
          threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """One-off search: the k_plus_1 nearest ``points`` of every query (see :meth:`CellSearch.query`)."""
    return CellSearch(points, k_plus_1, threads).query(queries, k_plus_1, bound)


def _cell_edge(extent: np.ndarray, n: int) -> float:
    """Cell edge for ~_POINTS_PER_CELL points per cell over the bounding box; a flat dimension is one cell thick."""
    if n == 0 or not np.any(extent > 0):
        return 1.0
    wide = extent > 0
    h = 0.0
    for _ in range(4):  # the dimensions thinner than a cell count as one cell thick; solve for the others
        h = (float(np.prod(extent[wide])) * _POINTS_PER_CELL / n) ** (1.0 / int(wide.sum()))
        if np.array_equal(extent > h, wide) or not (extent > h).any():
            break
        wide = extent > h
    return max(h, float(extent.max()) * 1e-6, 1e-12)
