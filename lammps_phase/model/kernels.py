"""The fused kernels of the fast inference path: plain functions of tensors, one per step of the network.

Plain functions, so that one compiled version serves every model of the same widths; each is what
``torch.compile`` (:func:`kernel`) or AOTInductor (:mod:`lammps_phase.model.aot`) compiles, and runs uncompiled
as it is, except the edge kernel, whose uncompiled twin is a whole-array form of the same equation
(:func:`_edge_conv_batched`). Equations: :mod:`lammps_phase.model.folded`; how they are driven:
:class:`lammps_phase.model.fastpath.FastPhaseNet`.
"""

from __future__ import annotations

import os
import shutil
from typing import Callable, Union

import torch
from torch.nn import functional as F

from lammps_phase.model.features import bond_order_features, edge_angle_features, unit_vectors
from lammps_phase.model.folded import NEG_SLOPE, pool_messages, spatial_weight

__all__ = ["COMPILE_FAILED", "KERNELS", "compile_available", "kernel", "standalone"]



def _scaled_distances(vectors: torch.Tensor, local_scale: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(s_ij = |r_ij| / s_i, 1 / s_i) with s_i the mean neighbour distance, as PhaseNet.forward computes them."""
    dist = vectors.norm(dim=-1)
    if local_scale:
        scale = dist.mean(dim=1, keepdim=True).clamp_min(1e-6)
    else:
        scale = torch.ones_like(dist[:, :1])
    return dist / scale, 1.0 / scale


def _spatial_weight(s, table, inv_step, mlp) -> torch.Tensor:
    """w(s) per channel, (..., C), for scaled distances s (...): one neighbour's (n,) or all of them (n, k).

    With ``mlp`` (the arguments of :func:`spatial_weight`) the MLP itself; else linear interpolation in
    ``table``, whose row m holds w(m / inv_step). Beyond the last row w is constant (see :func:`_weight_table`).
    """
    if mlp is not None:
        return spatial_weight(s, *mlp)
    rows = table.shape[0]
    x = (s * inv_step).clamp(0.0, rows - 1)
    below = x.floor().clamp(max=rows - 2)
    t = (x - below).unsqueeze(-1)
    below = below.long()
    return table[below] * (1.0 - t) + table[below + 1] * t


def _edge_conv(h, w_i, bias, v, index, geometry, sdist, inv_scale, w_geo_t, table, inv_step, mlp, geo: str,
               pool: str = "max"):
    """One folded EdgeConv for a chunk of atoms i: h_i' = max_j w(s_ij) ⊙ LeakyReLU(W_i·h_i + b + v_j + W_g·g_ij).

    ``v`` = W_j·h for all atoms (None without W_j). ``geo``: "vectors" (``geometry`` holds r_ij and
    g_ij = [r_ij / s_i, s_ij]), "angles<D>" (``geometry`` holds the D edge-angle moments, g_ij = [moments,
    s_ij]) or "none"; ``w_geo_t`` is W_g transposed so that its rows load as vectors. The weight comes from
    :func:`_spatial_weight`; without ``table`` and ``mlp`` the layer has none (w ≡ 1). ``pool``: "max",
    "max_mean" for [max_j, mean_j] side by side (2C columns) or "max_plus_mean" for max_j + mean_j.

    The max over neighbours is written as k explicit maxima of (n, C) terms rather than a reduction over
    a (n, k, C) tensor: compiled, inductor then vectorises along the contiguous channel dimension, so
    each neighbour costs a few contiguous vector loads of v[j] instead of C scalar gathers (measured
    ~10x faster); uncompiled, the temporaries are (n, C) instead of (n, k, C).
    """
    u = F.linear(h, w_i, bias)
    dims = 0 if geo == "none" else 3 if geo == "vectors" else int(geo[6:])
    rel = geometry * inv_scale.unsqueeze(-1) if geo == "vectors" else geometry
    out = total = None
    for j in range(index.shape[1]):
        m = u if v is None else u + v[index[:, j]]
        if dims:
            for a in range(dims):
                m = m + rel[:, j, a : a + 1] * w_geo_t[a]
            m = m + sdist[:, j : j + 1] * w_geo_t[dims]
        m = F.leaky_relu(m, NEG_SLOPE)
        if table is not None or mlp is not None:
            m = m * _spatial_weight(sdist[:, j], table, inv_step, mlp)
        out = m if out is None else torch.maximum(out, m)
        if pool != "max":
            total = m if total is None else total + m
    if pool == "max_mean":
        return torch.cat([out, total / index.shape[1]], dim=1)
    if pool == "max_plus_mean":
        return out + total / index.shape[1]
    return out


def _edge_conv_batched(h, w_i, bias, v, index, geometry, sdist, inv_scale, w_geo_t, table, inv_step, mlp, geo: str,
                       pool: str = "max"):
    """:func:`_edge_conv` (same arguments, same equation) as a few whole-array ops over all k neighbours at once.

    Uncompiled, the per-neighbour form runs ~25 small kernels per neighbour and layer and is bound by their
    dispatch (19 µs/atom for the shipped model, 2 threads); here the geometry term is one (n·k, D+1) × (D+1, C)
    product, the weight one :func:`_spatial_weight` over (n, k), the max one reduction, the sums and the
    activation in place on one (n, k, C) buffer: 10–11 µs/atom at ``EAGER_CHUNK`` atoms per call, whose
    temporaries stay in cache. Compiled, the per-neighbour form is the faster one.
    """
    u = F.linear(h, w_i, bias).unsqueeze(1)
    dims = 0 if geo == "none" else 3 if geo == "vectors" else int(geo[6:])
    if dims:
        rel = geometry * inv_scale.unsqueeze(-1) if geo == "vectors" else geometry
        m = torch.cat([rel, sdist.unsqueeze(-1)], dim=-1) @ w_geo_t
        m += u
    else:
        m = u.repeat(1, index.shape[1], 1)
    if v is not None:
        m += v[index]
    F.leaky_relu(m, NEG_SLOPE, inplace=True)
    if table is not None or mlp is not None:
        m *= _spatial_weight(sdist, table, inv_step, mlp)
    return pool_messages(m, pool)


def _bond_order(vectors: torch.Tensor, l_max: int, counts: list[int], scale: torch.Tensor, shift: torch.Tensor):
    """The model's bond-order node inputs with their (folded) eval-mode batch norm applied."""
    return bond_order_features(unit_vectors(vectors), l_max, counts, chunk=None) * scale + shift


def _edge_angles(vectors: torch.Tensor, l_max: int, neighbors: int) -> torch.Tensor:
    """The invariant edge geometry (features.edge_angle_features) of a chunk, (n, k, l_max)."""
    return edge_angle_features(unit_vectors(vectors), l_max, neighbors)


def _head(x: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor]) -> torch.Tensor:
    for w, b in zip(weights[:-1], biases[:-1]):
        x = F.leaky_relu(F.linear(x, w, b), NEG_SLOPE)
    return F.linear(x, weights[-1], biases[-1])


KERNELS = {
    "scaled_distances": _scaled_distances,
    "edge_conv": _edge_conv,
    "head": _head,
    "bond_order": _bond_order,
    "edge_angles": _edge_angles,
}
#: uncompiled twins that differ from the function the compiler gets (same equation, faster without a compiler)
_EAGER = {"edge_conv": _edge_conv_batched}
_COMPILED: dict[str, Callable] = {}
COMPILE_FAILED: dict[str, str] = {}  # device type -> reason, so a failing compiler is tried once per process


def compile_available(device: Union[str, torch.device] = "cpu") -> bool:
    """Whether torch.compile can be expected to work here: a C++ compiler (CPU) or Triton (CUDA)."""
    dev = torch.device(device)
    if dev.type in COMPILE_FAILED:
        return False
    if dev.type == "cpu":
        return any(shutil.which(cc) for cc in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++"))
    if dev.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False
        return True
    return False


def kernel(name: str, compiled: bool) -> Callable:
    """The kernel ``name``: the plain function, or its torch.compile'd twin."""
    if not compiled:
        return _EAGER.get(name, KERNELS[name])
    if name not in _COMPILED:
        # dynamic=True: one compilation serves every chunk length and sample size (no recompiles per N).
        _COMPILED[name] = torch.compile(KERNELS[name], dynamic=True)
    return _COMPILED[name]


def standalone(arg):
    """A tensor argument for a compiled kernel as a contiguous tensor of its own (views copied; others as they are).

    The compiler guards on the memory layout of its inputs (strides, and the size of the base of a view), so
    row chunks, column blocks of the head's buffer and whole tensors would each trace the kernels anew; a copy
    of a chunk's inputs costs ~1 % of the kernel."""
    if isinstance(arg, torch.Tensor) and (arg._base is not None or not arg.is_contiguous()):
        return arg.clone(memory_format=torch.contiguous_format)
    return arg
