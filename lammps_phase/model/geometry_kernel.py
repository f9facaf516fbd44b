"""The graph geometry of the fused CPU path in C: bond-order inputs, edge angles and scaled distances in one pass.

The compiled kernels of :mod:`lammps_phase.model.kernels` get these from batched 3-long matrix products (``bmm``),
an external call that runs far below the machine's speed: 0.3 µs/atom of a 10⁵-atom labelling on 2 threads, a
sixth of the call. ``_geometry.c`` computes the same equations (:mod:`lammps_phase.model.features`,
``kernels._scaled_distances``) 16 atoms per SIMD lane set, in ≈ 0.1 µs/atom, and writes straight into the caller's
buffers. Results agree with the torch kernels to float32 rounding (tests/model/test_geometry_kernel.py).

Built at first use into the native cache (:mod:`lammps_phase.native`); without a compiler, or with
``LAMMPS_PHASE_GEOMETRY=torch``, :func:`for_model` returns None and the torch kernels serve.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import torch

from lammps_phase.native import NATIVE_CACHE_ENV, NativeLibrary

if TYPE_CHECKING:
    from lammps_phase.model.network import ModelConfig

__all__ = ["GEOMETRY_ENV", "NATIVE_CACHE_ENV", "GeometryKernel", "for_model"]

GEOMETRY_ENV = "LAMMPS_PHASE_GEOMETRY"  # "torch": the compiled torch kernels compute the geometry (tests, benchmarks)
_MAX_K = 64  # the C file's MAXK
_MAX_L = 8  # its MAXL


def _configure(lib: ctypes.CDLL) -> None:
    ptr, i32, i64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64
    lib.geometry_f32.restype = ctypes.c_int
    lib.geometry_f32.argtypes = [i64, i32, ptr, i32, ptr, ptr, i32, i32, ptr, ptr, ptr, ptr, i32, i32, ptr, i32]


_LIBRARY = NativeLibrary(Path(__file__).with_name("_geometry.c"), _configure, "the compiled graph geometry",
                         "using the torch kernels")


def _ptr(t: Optional[torch.Tensor]) -> Optional[int]:
    return None if t is None else t.data_ptr()


class GeometryKernel:
    """The geometry of one model's graphs: :meth:`__call__` fills whichever outputs it is given, for a row chunk."""

    def __init__(self, lib: ctypes.CDLL, cfg: "ModelConfig", bond_order_affine: Optional[tuple[torch.Tensor, ...]]
                 ) -> None:
        self._fn = lib.geometry_f32
        self.k = cfg.k
        self.local = cfg.length_scale == "local"
        self.l_bo = cfg.bond_order_l if bond_order_affine is not None else 0
        self.counts = torch.tensor(list(cfg.bond_order_neighbors), dtype=torch.int32)
        self.bo_scale, self.bo_shift = ((t.detach().float().contiguous() for t in bond_order_affine)
                                        if bond_order_affine is not None else (None, None))
        self.l_ang = cfg.edge_angle_l if cfg.edge_geometry == "angles" else 0
        self.n_ang = cfg.edge_angle_neighbors if self.l_ang else 0

    def __call__(self, vectors: torch.Tensor, sdist: Optional[torch.Tensor] = None,
                 inv_scale: Optional[torch.Tensor] = None, bond_order: Optional[torch.Tensor] = None,
                 angles: Optional[torch.Tensor] = None) -> None:
        """From ``vectors`` (n, k, 3) float32, write ``sdist`` (n, k), ``inv_scale`` (n, 1), ``bond_order``
        (n, l·counts, folded batch norm applied) and ``angles`` (n, k, l): contiguous float32 CPU tensors (row
        chunks of larger ones are fine), each optional. Runs on torch's threads."""
        n = vectors.shape[0]
        vectors = vectors.contiguous()
        expected = {"sdist": (n, self.k), "inv_scale": (n, 1), "bond_order": (n, self.l_bo * len(self.counts)),
                    "angles": (n, self.k, self.l_ang)}
        for name, t in (("sdist", sdist), ("inv_scale", inv_scale), ("bond_order", bond_order), ("angles", angles)):
            if t is not None and (tuple(t.shape) != expected[name] or t.dtype != torch.float32
                                  or not t.is_contiguous() or t.device.type != "cpu"):
                raise ValueError(f"{name}: a contiguous float32 CPU tensor of shape {expected[name]} is needed, got "
                                 f"{t.dtype} {tuple(t.shape)} on {t.device}")
        if vectors.shape != (n, self.k, 3) or vectors.dtype != torch.float32 or vectors.device.type != "cpu":
            raise ValueError(f"vectors: float32 (n, {self.k}, 3) on the CPU, got {vectors.dtype} {tuple(vectors.shape)}")
        if n == 0:
            return
        rc = self._fn(n, self.k, vectors.data_ptr(), int(self.local), _ptr(sdist), _ptr(inv_scale),
                      self.l_bo if bond_order is not None else 0, len(self.counts), _ptr(self.counts),
                      _ptr(self.bo_scale), _ptr(self.bo_shift), _ptr(bond_order),
                      self.l_ang if angles is not None else 0, self.n_ang, _ptr(angles), torch.get_num_threads())
        if rc != 0:
            raise ValueError("geometry_f32 refused the sizes (k <= 64, l <= 8)")


def for_model(cfg: "ModelConfig", bond_order_affine: Optional[tuple[torch.Tensor, ...]], device: torch.device
              ) -> Optional[GeometryKernel]:
    """The C geometry for this model on this device, or None (not the CPU, sizes beyond the C file's,
    LAMMPS_PHASE_GEOMETRY=torch, or no compiler: warned once)."""
    if device.type != "cpu" or os.environ.get(GEOMETRY_ENV, "").strip().lower() == "torch":
        return None
    if cfg.k > _MAX_K or cfg.bond_order_l > _MAX_L or (cfg.edge_geometry == "angles" and cfg.edge_angle_l > _MAX_L):
        return None
    lib = _LIBRARY.get()
    return None if lib is None else GeometryKernel(lib, cfg, bond_order_affine)
