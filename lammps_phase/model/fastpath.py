"""Fast inference for :class:`~lammps_phase.model.network.PhaseNet`: same network, fused, chunked, reusable neighbours.

Why this exists (DESIGN.md §3): in eager PyTorch every EdgeConv materialises several (N, k, C) tensors
(gather, add, activation, weighting MLP, product) and is memory-bound at ~100 µs/atom for the default
width; at 10^6 atoms the reference path also holds the (N, k, 16) radial basis for the whole sample.
Here each layer is one function of a chunk of atoms that ``torch.compile`` fuses into a single loop
(gather v[j] + u_i + geometry, LeakyReLU, spatial weight, max over k), with fixed-size chunks so the
compiled code is reused for every N.

The spatial weight w(s) = sigmoid(MLP(rbf(s))) is a function of one scalar, the scaled distance s.
Evaluating the MLP per edge costs ~2.5k multiply-adds per edge and layer (most of the run time), so the
default ``weighting="table"`` tabulates w on a fine grid once per model and interpolates linearly; the
grid is refined until the interpolation error, checked at the grid midpoints (where it is largest),
is below ``TABLE_TOLERANCE`` — far below float32 noise in the logits. ``weighting="exact"`` evaluates
the MLP per edge as the reference does.

:class:`NeighborCache` keeps k' > k candidates per atom with integer image shifts and reuses them while
no atom can have entered another atom's k nearest (Verlet-list argument, see :meth:`NeighborCache.update`).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch.nn import functional as F

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.model.network import NEG_SLOPE, PhaseNet, _radial_basis, bond_order_features, edge_angle_features
from lammps_phase.inference.neighbors import NeighborList, knn

__all__ = [
    "FastPhaseNet",
    "NeighborCache",
    "TABLE_TOLERANCE",
    "compile_available",
]

TABLE_TOLERANCE = 1e-6  # max |w_interpolated - w| of the tabulated spatial weight (w is in (0, 1))
DEFAULT_CHUNK = 16384  # atoms per fused call: (chunk, k, C) temporaries stay in cache-friendly tens of MB
_REUSE_CHUNK = 1 << 16  # rows per pass when re-deriving neighbour vectors from a cached candidate list
_ANGLE_CACHE_BYTES = 64 * 2**20  # keep the (N, k, D) edge angles for all layers up to this size (~250k atoms)
_MIN_COMPILED_ATOMS = 64  # below this the eager kernels are as fast and avoid size-0/1 specialisations

# --------------------------------------------------------------------------------------------- threads


# --------------------------------------------------------------------------------------------- kernels
# Plain functions of tensors, so that one compiled version serves every model of the same widths.


def _scaled_distances(vectors: torch.Tensor, local_scale: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(s_ij = |r_ij| / s_i, 1 / s_i) with s_i the mean neighbour distance, as PhaseNet.forward computes them."""
    dist = vectors.norm(dim=-1)
    if local_scale:
        scale = dist.mean(dim=1, keepdim=True).clamp_min(1e-6)
    else:
        scale = torch.ones_like(dist[:, :1])
    return dist / scale, 1.0 / scale


def _table_position(sdist: torch.Tensor, rows: int, inv_step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row below each edge's scaled distance on the weight grid s_m = m·step, and the fraction towards the next row."""
    x = (sdist * inv_step).clamp(0.0, rows - 1)
    i0 = x.floor().clamp(max=rows - 2)
    return i0.long(), x - i0


def _mlp_weight(sdist, centers, inv_width, w1, b1, w2, b2) -> torch.Tensor:
    rbf = torch.exp(-(((sdist.unsqueeze(-1) - centers) * inv_width) ** 2))
    return torch.sigmoid(F.linear(F.silu(F.linear(rbf, w1, b1)), w2, b2))


# The max over neighbours is written as k explicit maxima of (n, C) terms rather than a reduction over
# a (n, k, C) tensor: inductor then vectorises along the contiguous channel dimension, so each neighbour
# costs a few contiguous vector loads of v[j] instead of C scalar gathers (measured ~10x faster).


def _message(u, v, index, rel, sdist, w_geo_t, j: int, geo: str) -> torch.Tensor:
    m = u + v[index[:, j]]
    if geo == "vectors":  # Θg·[r_ij / s_i, |r_ij| / s_i], rows of w_geo_t contiguous so they load as vectors
        m = (
            m
            + rel[:, j, 0:1] * w_geo_t[0]
            + rel[:, j, 1:2] * w_geo_t[1]
            + rel[:, j, 2:3] * w_geo_t[2]
            + sdist[:, j : j + 1] * w_geo_t[3]
        )
    elif geo.startswith("angles"):  # Θg·[angle moments g_1..g_D, |r_ij| / s_i]; D is part of the (constant) mode
        d = int(geo[6:])
        for a in range(d):
            m = m + rel[:, j, a : a + 1] * w_geo_t[a]
        m = m + sdist[:, j : j + 1] * w_geo_t[d]
    return F.leaky_relu(m, NEG_SLOPE)


def _layer_table(h, w_i, bias, v, index, vectors, sdist, inv_scale, w_geo_t, table, inv_step, geo: str):
    """h_i' = max_j w(s_ij) ⊙ LeakyReLU(u_i + v_j + Θg·g_ij) for a chunk, w interpolated from ``table``.

    ``geo``: "vectors" (``vectors`` are r_ij), "angles<D>" (``vectors`` holds the D angle moments) or "none".
    """
    u = F.linear(h, w_i, bias)
    rel = vectors * inv_scale.unsqueeze(-1) if geo == "vectors" else vectors
    row, frac = _table_position(sdist, table.shape[0], inv_step)
    out = None
    for j in range(index.shape[1]):
        t = frac[:, j : j + 1]
        w = table[row[:, j]] * (1.0 - t) + table[row[:, j] + 1] * t
        m = _message(u, v, index, rel, sdist, w_geo_t, j, geo) * w
        out = m if out is None else torch.maximum(out, m)
    return out


def _layer_exact(h, w_i, bias, v, index, vectors, sdist, inv_scale, w_geo_t, centers, inv_width, w1, b1, w2, b2, geo: str):
    """As :func:`_layer_table` with the weighting MLP evaluated per edge (two small GEMMs per chunk)."""
    u = F.linear(h, w_i, bias)
    rel = vectors * inv_scale.unsqueeze(-1) if geo == "vectors" else vectors
    weight = _mlp_weight(sdist, centers, inv_width, w1, b1, w2, b2)
    out = None
    for j in range(index.shape[1]):
        m = _message(u, v, index, rel, sdist, w_geo_t, j, geo) * weight[:, j]
        out = m if out is None else torch.maximum(out, m)
    return out


def _bond_order(vectors: torch.Tensor, l_max: int, counts: list[int], scale: torch.Tensor, shift: torch.Tensor):
    """The model's bond-order node inputs (model.bond_order_features) with their eval-mode batch-norm applied."""
    dist = vectors.norm(dim=-1)
    unit = vectors / dist.clamp_min(1e-6).unsqueeze(-1)
    return bond_order_features(unit, l_max, counts, chunk=vectors.shape[0]) * scale + shift


def _edge_messages(h, w_i, bias, v, index, vectors, sdist, inv_scale, w_geo_t, geo: str) -> torch.Tensor:
    """All (n, k, C) messages of a chunk at once: the better shape for eager PyTorch (few large ops)."""
    m = F.linear(h, w_i, bias).unsqueeze(1) + v[index]
    if geo.startswith("angles"):  # ``vectors`` holds the angle moments (n, k, D)
        m = m + vectors @ w_geo_t[:-1] + sdist.unsqueeze(-1) * w_geo_t[-1]
    elif geo == "vectors":
        m = m + (vectors * inv_scale.unsqueeze(-1)) @ w_geo_t[:3] + sdist.unsqueeze(-1) * w_geo_t[3]
    return F.leaky_relu(m, NEG_SLOPE)


def _layer_table_eager(h, w_i, bias, v, index, vectors, sdist, inv_scale, w_geo_t, table, inv_step, geo: str):
    m = _edge_messages(h, w_i, bias, v, index, vectors, sdist, inv_scale, w_geo_t, geo)
    row, frac = _table_position(sdist, table.shape[0], inv_step)
    frac = frac.unsqueeze(-1)
    return (m * torch.lerp(table[row], table[row + 1], frac)).amax(dim=1)


def _layer_exact_eager(h, w_i, bias, v, index, vectors, sdist, inv_scale, w_geo_t, centers, inv_width, w1, b1, w2, b2, geo: str):
    m = _edge_messages(h, w_i, bias, v, index, vectors, sdist, inv_scale, w_geo_t, geo)
    return (m * _mlp_weight(sdist, centers, inv_width, w1, b1, w2, b2)).amax(dim=1)


def _edge_angles(vectors: torch.Tensor, l_max: int, neighbors: int) -> torch.Tensor:
    """The invariant edge geometry (model.edge_angle_features) of a chunk, (n, k, l_max)."""
    unit = vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    return edge_angle_features(unit, l_max, neighbors)


def _head(x: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor]) -> torch.Tensor:
    for w, b in zip(weights[:-1], biases[:-1]):
        x = F.leaky_relu(F.linear(x, w, b), NEG_SLOPE)
    return F.linear(x, weights[-1], biases[-1])


_KERNELS = {
    "scaled_distances": _scaled_distances,
    "layer_table": _layer_table,
    "layer_exact": _layer_exact,
    "head": _head,
    "bond_order": _bond_order,
    "edge_angles": _edge_angles,
}
_COMPILED: dict[str, Callable] = {}
_COMPILE_FAILED: dict[str, str] = {}  # device type -> reason, so a failing compiler is tried once per process


def compile_available(device: Union[str, torch.device] = "cpu") -> bool:
    """Whether torch.compile can be expected to work here: a C++ compiler (CPU) or Triton (CUDA)."""
    dev = torch.device(device)
    if dev.type in _COMPILE_FAILED:
        return False
    if dev.type == "cpu":
        import shutil

        return any(shutil.which(cc) for cc in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++"))
    if dev.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False
        return True
    return False


_EAGER_KERNELS = {**_KERNELS, "layer_table": _layer_table_eager, "layer_exact": _layer_exact_eager}


def _kernel(name: str, compiled: bool) -> Callable:
    if not compiled:
        return _EAGER_KERNELS[name]
    if name not in _COMPILED:
        # dynamic=True: one compilation serves every chunk length and sample size (no recompiles per N).
        _COMPILED[name] = torch.compile(_KERNELS[name], dynamic=True)
    return _COMPILED[name]


# --------------------------------------------------------------------------------------------- network


@dataclass(frozen=True)
class _Layer:
    w_i: torch.Tensor
    bias: torch.Tensor
    w_nbr: Optional[torch.Tensor]
    w_geo_t: torch.Tensor  # (D, C) transposed geometry weights; zeros when the layer has no geometric input
    geo: str  # "vectors" | "angles<D>" (invariant geometry of D moments, computed per chunk) | "none"
    table: torch.Tensor  # (M, C) spatial weight on the grid s_m = m · step (ones without weighting)
    inv_step: torch.Tensor  # 0-dim
    mlp: Optional[tuple[torch.Tensor, ...]]  # (centers, inv_width, w1, b1, w2, b2) for weighting="exact"


class FastPhaseNet:
    """Inference-only evaluator of a PhaseNet with the same outputs (logits within float32 noise).

    ``compile``: True, False or "auto". "auto" compiles when :func:`compile_available` and once the atoms
    evaluated so far reach ``compile_after_atoms`` (compilation costs ~10-60 s per process, worth it
    only for large or repeated calls), and falls back to the eager kernels, with a warning, if
    compilation fails. ``weighting``: "table" (default) or "exact". ``verify`` compares against the
    reference model on a small random graph at construction, so a model change the fast path does not
    know about fails loudly instead of giving different labels.
    """

    def __init__(
        self,
        model: PhaseNet,
        compile: Union[bool, str] = "auto",
        weighting: str = "table",
        chunk: int = DEFAULT_CHUNK,
        compile_after_atoms: int = 200_000,
        verify: bool = True,
    ) -> None:
        if not isinstance(model, PhaseNet):
            raise LammpsPhaseError(f"the fast path evaluates PhaseNet (segmentation) models, not {type(model).__name__}")
        cfg = model.cfg
        if cfg.graph != "input" or cfg.input_abs:
            raise LammpsPhaseError(
                "the fast path needs a whole-sample model (graph='input', input_abs=false); "
                "use the reference PhaseNet for ablation models"
            )
        if weighting not in ("table", "exact"):
            raise LammpsPhaseError(f"weighting must be 'table' or 'exact', not {weighting!r}")
        if compile not in (True, False, "auto"):
            raise LammpsPhaseError(f"compile must be True, False or 'auto', not {compile!r}")
        if int(chunk) < 2:
            raise LammpsPhaseError(f"chunk must be at least 2 atoms, got {chunk}")
        self.cfg = cfg
        self.weighting = weighting
        self.chunk = int(chunk)
        param = next(model.parameters())
        self.device = param.device
        self.compile = bool(compile_available(self.device)) if compile == "auto" else bool(compile)
        self._compile_requested = compile
        self.compile_after_atoms = int(compile_after_atoms) if compile == "auto" else 0
        self.atoms_seen = 0
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                self.embed = model.embed.weight.detach().float().clone()
                self.layers = [self._layer(conv) for conv in model.convs]
                self.bond_order: Optional[tuple[torch.Tensor, torch.Tensor]] = None
                if getattr(model, "bond_order_norm", None) is not None:
                    bn = model.bond_order_norm
                    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().float()
                    self.bond_order = (scale, (bn.bias.detach().float() - bn.running_mean.float() * scale))
                self.head_w, self.head_b = self._folded_head(model.head)
        finally:
            model.train(was_training)
        self.widths = [int(layer.w_i.shape[0]) for layer in self.layers]
        if verify:
            self._verify(model)

    def _verify(self, model: PhaseNet, atoms: int = 40, seed: int = 0) -> None:
        """Refuse to run if the eager fast kernels disagree with the reference forward on a random graph."""
        g = torch.Generator().manual_seed(seed)
        k = self.cfg.k
        species = torch.randint(0, len(self.cfg.elements), (atoms,), generator=g)
        index = torch.randint(0, atoms, (atoms, k), generator=g)
        vectors = torch.randn(atoms, k, 3, generator=g)
        vectors = vectors / vectors.norm(dim=-1, keepdim=True) * torch.linspace(1.0, 3.0, k).view(1, k, 1)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                ref = model(species.to(self.device), index.to(self.device), vectors.to(self.device)).float()
        finally:
            model.train(was_training)
        fast = self._forward_eager(species, index, vectors)
        err = float((fast - ref).abs().max())
        if not err <= 1e-4 * max(1.0, float(ref.abs().max())):
            raise LammpsPhaseError(
                f"the fast inference path disagrees with the model by {err:.3g} in the logits (the model code has "
                "changed in a way lammps_phase.model.fastpath does not reproduce); use fast=False until it is updated"
            )

    # ------------------------------------------------------------------ construction

    def _layer(self, conv) -> _Layer:
        cfg = self.cfg
        w_i, bias, w_nbr, w_g = conv._weights()
        c_out = w_i.shape[0]
        dev = w_i.device
        geo = "none" if w_g is None else (f"angles{cfg.edge_angle_l}" if cfg.edge_geometry == "angles" else "vectors")
        w_geo_t = w_g.float().t().contiguous() if w_g is not None else torch.zeros(4, c_out, device=dev)
        mlp = None
        if conv.weighting is not None:
            table, step = _weight_table(conv.weighting, cfg.radial_basis, cfg.radial_max, dev)
            if self.weighting == "exact":
                lin1, lin2 = conv.weighting[0], conv.weighting[2]
                width = cfg.radial_max / max(cfg.radial_basis - 1, 1)
                mlp = (
                    torch.linspace(0.0, cfg.radial_max, cfg.radial_basis, device=dev),
                    torch.tensor(1.0 / width, device=dev),
                    lin1.weight.detach().float(), lin1.bias.detach().float(),
                    lin2.weight.detach().float(), lin2.bias.detach().float(),
                )
        else:
            table, step = torch.ones(2, c_out, device=dev), 1.0
        return _Layer(
            w_i=w_i.float().contiguous(),
            bias=bias.float().contiguous(),
            w_nbr=w_nbr.float().contiguous() if w_nbr is not None else None,
            w_geo_t=w_geo_t,
            geo=geo,
            table=table,
            inv_step=torch.tensor(1.0 / step, device=dev),
            mlp=mlp,
        )

    @staticmethod
    def _folded_head(head: torch.nn.Sequential) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Linear layers with the following eval-mode batch-norm folded in (LeakyReLU between, dropout is identity)."""
        weights: list[torch.Tensor] = []
        biases: list[torch.Tensor] = []
        mods = list(head)
        for i, mod in enumerate(mods):
            if isinstance(mod, torch.nn.Linear):
                w, b = mod.weight.detach().float(), mod.bias.detach().float()
                nxt = mods[i + 1] if i + 1 < len(mods) else None
                if isinstance(nxt, torch.nn.BatchNorm1d):
                    scale = nxt.weight / torch.sqrt(nxt.running_var + nxt.eps)
                    w = w * scale[:, None]
                    b = b * scale + (nxt.bias - nxt.running_mean * scale)
                weights.append(w.contiguous())
                biases.append(b.contiguous())
            elif not isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.LeakyReLU, torch.nn.Dropout)):
                raise LammpsPhaseError(f"unexpected head module {type(mod).__name__}: the fast path cannot fold it")
        return weights, biases

    # ------------------------------------------------------------------ evaluation

    def _call(self, name: str, *args, **kwargs):
        """Run a kernel compiled if possible; a compiler failure switches this process to eager, once, loudly."""
        use = self.compile and self.device.type not in _COMPILE_FAILED
        if use:
            try:
                return _kernel(name, True)(*args, **kwargs)
            except Exception as err:  # inductor/triton failures surface as many exception types
                if self._compile_requested is True:
                    raise LammpsPhaseError(
                        f"torch.compile failed on {self.device.type} ({type(err).__name__}: {str(err).splitlines()[0]}); "
                        "use compile='auto' or False to run the eager kernels"
                    ) from None
                _COMPILE_FAILED[self.device.type] = f"{type(err).__name__}: {err}"
                warnings.warn(
                    f"torch.compile failed on {self.device.type}; using the eager fast path "
                    f"({type(err).__name__}: {str(err).splitlines()[0][:200]})",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return _kernel(name, False)(*args, **kwargs)

    def _chunks(self, n: int) -> list[slice]:
        """Fixed-size chunks; the last one is merged into its predecessor when it would hold a single atom."""
        bounds = list(range(0, n, self.chunk)) + [n]
        if len(bounds) > 2 and bounds[-1] - bounds[-2] < 2:
            del bounds[-2]
        return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]

    @torch.no_grad()
    def __call__(self, species: torch.Tensor, index: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """Logits (N, C): species (N,), index (N, ≥k) int32/int64, vectors (N, ≥k, 3) float32, rows = all N atoms."""
        k = self.cfg.k
        n = species.shape[0]
        if index.ndim != 2 or index.shape[1] < k or index.shape[0] != n or vectors.shape[:2] != index.shape:
            raise LammpsPhaseError(
                f"the fast path needs an (N, >= {k}) neighbour index and (N, k, 3) vectors for N = {n} atoms, "
                f"got {tuple(index.shape)} and {tuple(vectors.shape)}"
            )
        dev = self.device
        index = index[:, :k].to(device=dev, dtype=torch.int64)
        vectors = vectors[:, :k].to(device=dev, dtype=torch.float32)
        species = species.to(device=dev, dtype=torch.long)
        self.atoms_seen += n
        if n < _MIN_COMPILED_ATOMS or self.atoms_seen < self.compile_after_atoms:
            return self._forward_eager(species, index, vectors)
        return self._forward(species, index, vectors)

    def _forward_eager(self, species: torch.Tensor, index: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        dev = self.device
        species, index, vectors = species.to(dev), index.to(dev, torch.int64), vectors.to(dev, torch.float32)
        saved, self.compile = self.compile, False
        try:
            return self._forward(species, index, vectors)
        finally:
            self.compile = saved

    @property
    def compiled(self) -> bool:
        """Whether the next large call runs compiled kernels."""
        return self.compile and self.device.type not in _COMPILE_FAILED

    def _forward(self, species: torch.Tensor, index: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        n, k = index.shape
        dev = self.device
        chunks = self._chunks(n)
        local = self.cfg.length_scale == "local"
        sdist = torch.empty((n, k), dtype=torch.float32, device=dev)
        inv_scale = torch.empty((n, 1), dtype=torch.float32, device=dev)
        for c in chunks:
            sdist[c], inv_scale[c] = self._call("scaled_distances", vectors[c], local)
        # Layer outputs go straight into the head's input buffer: no concatenation copy.
        feats = torch.empty((n, sum(self.widths)), dtype=torch.float32, device=dev)
        h = self.embed[species]
        if self.bond_order is not None:
            cfg = self.cfg
            bo = torch.empty((n, self.bond_order[0].shape[0]), dtype=torch.float32, device=dev)
            for c in chunks:
                bo[c] = self._call("bond_order", vectors[c], cfg.bond_order_l, list(cfg.bond_order_neighbors), *self.bond_order)
            h = torch.cat([h, bo], dim=-1)
            del bo
        # invariant edge geometry: computed once for all layers while it is small, else per layer and chunk
        angles = None
        angled = any(layer.geo.startswith("angles") for layer in self.layers)
        if angled and n * k * self.cfg.edge_angle_l * 4 <= _ANGLE_CACHE_BYTES:
            angles = torch.empty((n, k, self.cfg.edge_angle_l), dtype=torch.float32, device=dev)
            for c in chunks:
                angles[c] = self._call("edge_angles", vectors[c], self.cfg.edge_angle_l, self.cfg.edge_angle_neighbors)
        offset = 0
        for layer, width in zip(self.layers, self.widths):
            v = F.linear(h, layer.w_nbr) if layer.w_nbr is not None else torch.zeros((n, width), device=dev)
            out = feats[:, offset : offset + width]
            for c in chunks:
                geometry = vectors[c]
                if layer.geo.startswith("angles"):
                    geometry = angles[c] if angles is not None else self._call(
                        "edge_angles", vectors[c], self.cfg.edge_angle_l, self.cfg.edge_angle_neighbors)
                common = (h[c], layer.w_i, layer.bias, v, index[c], geometry, sdist[c], inv_scale[c], layer.w_geo_t)
                if layer.mlp is not None:
                    out[c] = self._call("layer_exact", *common, *layer.mlp, geo=layer.geo)
                else:
                    out[c] = self._call("layer_table", *common, layer.table, layer.inv_step, geo=layer.geo)
            del v
            h = out
            offset += width
        logits = torch.empty((n, self.cfg.num_classes), dtype=torch.float32, device=dev)
        for c in chunks:
            logits[c] = self._call("head", feats[c], self.head_w, self.head_b)
        return logits


def _weight_table(
    weighting: torch.nn.Module, basis: int, r_max: float, device: torch.device
) -> tuple[torch.Tensor, float]:
    """Tabulate sigmoid(MLP(rbf(s))) on s ∈ [0, r_max + 8 widths] finely enough for TABLE_TOLERANCE.

    Beyond the last grid point every Gaussian of the basis is below e^-64, so the weight is constant there
    to float precision and clamping to the last row is exact. The grid is halved until linear interpolation
    errs less than the tolerance at every midpoint (the error of linear interpolation peaks between nodes).
    """
    width = r_max / max(basis - 1, 1)
    s_max = r_max + 8.0 * width
    step = width / 64.0
    mlp = weighting.double()
    try:
        for _ in range(6):
            m = int(np.ceil(s_max / step)) + 1
            grid = torch.arange(m, dtype=torch.float64, device=device) * step
            values = torch.sigmoid(mlp(_radial_basis(grid, basis, r_max)))
            mid = torch.sigmoid(mlp(_radial_basis(grid[:-1] + 0.5 * step, basis, r_max)))
            err = float((0.5 * (values[:-1] + values[1:]) - mid).abs().max())
            if err <= TABLE_TOLERANCE:
                return values.float().contiguous(), step
            step *= 0.5
    finally:
        weighting.float()
    raise LammpsPhaseError(
        f"the spatial weighting varies too fast to tabulate (interpolation error {err:.2g} at step {step:.2g}); "
        "use weighting='exact'"
    )


# --------------------------------------------------------------------------------------------- neighbours


class NeighborCache:
    """k nearest neighbours reused between calls while that is provably exact (a Verlet list for k-NN).

    At a build, the ``k + extra`` nearest images of every atom are stored as (atom index, integer image
    shift) with the build positions and each atom's last candidate distance d'_i. Later calls recompute
    the candidates' vectors from the new positions and keep the k nearest of them. With displacements
    δ since the build (periodic re-wrapping by LAMMPS is undone: a jump by a whole box vector is a wrap),
    any atom that is not a candidate of i is now at least d'_i − |δ_i| − max_j |δ_j| away; the k nearest
    candidates are therefore the true k nearest when their k-th distance is at most that bound for every
    atom. Otherwise — or when N, species, cell or pbc changed — the list is rebuilt.

    When atoms move too far between calls for reuse (two failed attempts in a row: e.g. labels every
    100 MD steps, where the fastest atoms move ~0.6 Å), the cache stops paying for it: the next
    ``backoff`` builds search only k neighbours and skip the reuse test, then it tries again.
    """

    def __init__(self, k: int, extra: int = 8, workers: int = 1, backoff: int = 20) -> None:
        if k < 1 or extra < 1:
            raise LammpsPhaseError(f"NeighborCache needs k >= 1 and extra >= 1 candidates, got k={k}, extra={extra}")
        self.k = int(k)
        self.extra = int(extra)
        self.workers = int(workers)
        self.builds = 0
        self.reuses = 0
        self.failed_reuses = 0
        self.backoff = int(backoff)
        self.last_rebuilt = False
        self._failed_streak = 0
        self._plain_builds_left = 0
        self._has_candidates = False
        self._key: Optional[tuple] = None
        self._species: Optional[np.ndarray] = None

    def invalidate(self) -> None:
        self._key = None

    def get(
        self,
        positions: np.ndarray,
        cell: Optional[np.ndarray],
        pbc: Sequence[bool] = (True, True, True),
        origin: Sequence[float] = (0.0, 0.0, 0.0),
        species: Optional[np.ndarray] = None,
    ) -> NeighborList:
        """The exact k nearest neighbour images of every atom, reusing the last build when that is safe."""
        pos = np.asarray(positions, dtype=np.float64)
        periodic = np.array([pbc] * 3 if np.ndim(pbc) == 0 else pbc, dtype=bool)
        cell_arr = None if cell is None else np.asarray(cell, dtype=np.float64)
        key = (len(pos), None if cell_arr is None else cell_arr.tobytes(), periodic.tobytes())
        species_arr = None if species is None else np.asarray(species)
        if species_arr is None or self._species is None:
            same_species = species_arr is None and self._species is None
        else:
            same_species = bool(np.array_equal(self._species, species_arr))
        if self._key == key and same_species and self._has_candidates:
            nl = self._reuse(pos, cell_arr, periodic)
            if nl is not None:
                self.reuses += 1
                self._failed_streak = 0
                self.last_rebuilt = False
                return nl
            self.failed_reuses += 1
            self._failed_streak += 1
            if self._failed_streak >= 2:
                self._failed_streak = 0
                self._plain_builds_left = self.backoff
        return self._build(pos, cell_arr, periodic, origin, key, species_arr)

    def _build(self, pos, cell, periodic, origin, key, species) -> NeighborList:
        if self._plain_builds_left > 0:  # reuse keeps failing: search only what this call needs
            self._plain_builds_left -= 1
            self._has_candidates = False
            self._key = None
            self.builds += 1
            self.last_rebuilt = True
            return knn(pos, self.k, cell=cell, pbc=periodic, origin=origin, workers=self.workers)
        kk = self.k + self.extra
        nl = knn(pos, kk, cell=cell, pbc=periodic, origin=origin, workers=self.workers)
        self._has_candidates = True
        # Image shift of each candidate relative to the *given* (unwrapped) positions: r_j + S·cell − r_i = vector.
        if cell is not None and periodic.any():
            rel = nl.vectors.astype(np.float64) - (pos[nl.index] - pos[:, None, :])
            shifts = np.rint(rel @ np.linalg.inv(cell)).astype(np.int32)
        else:
            shifts = np.zeros(nl.index.shape + (3,), dtype=np.int32)
        self._index = nl.index.astype(np.int32 if len(pos) < 2**31 else np.int64)
        self._shifts = shifts
        self._pos0 = pos.copy()
        self._cell = cell
        self._periodic = periodic
        self._last = nl.distances[:, -1].astype(np.float64)
        self._key = key
        self._species = None if species is None else species.copy()
        self.builds += 1
        self.last_rebuilt = True
        return NeighborList(
            index=nl.index[:, : self.k].copy(),
            vectors=np.ascontiguousarray(nl.vectors[:, : self.k]),
            distances=np.ascontiguousarray(nl.distances[:, : self.k]),
        )

    def _reuse(self, pos: np.ndarray, cell: Optional[np.ndarray], periodic: np.ndarray) -> Optional[NeighborList]:
        delta = pos - self._pos0
        wraps = np.zeros((len(pos), 3), dtype=np.int64)
        if cell is not None and periodic.any():
            inv = np.linalg.inv(cell)
            wraps = np.rint(delta @ inv).astype(np.int64) * periodic  # whole box vectors = LAMMPS re-wrapping
            if wraps.any():
                delta = delta - wraps @ cell
        moved = np.sqrt(np.einsum("ij,ij->i", delta, delta))
        max_moved = float(moved.max()) if len(moved) else 0.0
        unwrapped = self._pos0 + delta  # continuous trajectory since the build
        bound = self._last - moved - max_moved
        n, k = len(pos), self.k
        out = NeighborList(
            index=np.empty((n, k), dtype=np.int64),
            vectors=np.empty((n, k, 3), dtype=np.float32),
            distances=np.empty((n, k), dtype=np.float32),
        )
        shift_cell = cell if cell is not None and periodic.any() else None
        for start in range(0, n, _REUSE_CHUNK):  # bounded float64 temporaries
            rows = slice(start, min(start + _REUSE_CHUNK, n))
            idx = self._index[rows]
            vec = unwrapped[idx] - unwrapped[rows, None, :]
            if shift_cell is not None:
                vec += self._shifts[rows] @ shift_cell
            dist2 = np.einsum("ijk,ijk->ij", vec, vec)
            order = np.argsort(dist2, axis=1, kind="stable")[:, :k]
            near2 = np.take_along_axis(dist2, order, axis=1)
            if not np.all(np.sqrt(near2[:, -1]) <= bound[rows]):
                return None
            out.index[rows] = np.take_along_axis(idx, order, axis=1)
            out.vectors[rows] = np.take_along_axis(vec, order[..., None], axis=1)
            out.distances[rows] = np.sqrt(near2)
        return out
