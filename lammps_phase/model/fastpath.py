"""Fast inference for :class:`~lammps_phase.model.network.PhaseNet`: same network, fused, chunked.

In eager PyTorch every EdgeConv materialises several (N, k, C) tensors (gather, add, activation,
weighting MLP, product) and is memory-bound at ~100 µs/atom for the default width; at 10^6 atoms the
reference path also holds the (N, k, 16) radial basis for the whole sample. Here each layer is one
function of a chunk of atoms, :func:`lammps_phase.model.kernels._edge_conv`, that ``torch.compile`` fuses into a single loop
(gather W_j·h_j + W_i·h_i + geometry, LeakyReLU, spatial weight, max over k), with fixed-size chunks
so the compiled code is reused for every N; the same Python function runs uncompiled when there is no
compiler or the sample is too small to pay for compiling. On the CPU the graph geometry every layer reads (bond-order
inputs, edge angles, scaled distances) comes from C, :mod:`lammps_phase.model.geometry_kernel`, when it builds.

The network comes in folded form only (:meth:`PhaseNet.folded`, equations in
:mod:`lammps_phase.model.folded`). The spatial weight w(s) = sigmoid(MLP(rbf(s))) is a function of one
scalar, the scaled distance s. Evaluating the MLP per edge costs ~2.5k multiply-adds per edge and layer
(most of the run time), so the default ``weighting="table"`` tabulates w on a fine grid once per model
and interpolates linearly; the grid is refined until the interpolation error, checked at the grid
midpoints (where it is largest), is below ``TABLE_TOLERANCE`` — far below float32 noise in the logits.
``weighting="exact"`` evaluates the MLP per edge as the reference does.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch.nn import functional as F

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.model import aot, geometry_kernel
from lammps_phase.model.folded import FoldedLayer, SpatialWeighting, pooled_width, spatial_weight
from lammps_phase.model.kernels import COMPILE_FAILED, KERNELS, compile_available, kernel, standalone
from lammps_phase.model.network import PhaseNet

__all__ = [
    "FastPhaseNet",
    "Halo",
    "TABLE_TOLERANCE",
    "compile_available",
]

TABLE_TOLERANCE = 1e-6  # max |w_interpolated - w| of the tabulated spatial weight (w is in (0, 1))
DEFAULT_CHUNK = 8192  # atoms per compiled call: 4096-16384 run as fast; 8192 holds 30 MB less at 10^6 atoms
EAGER_CHUNK = 2048  # atoms per eager call: its (chunk, k, C) temporaries stay in cache (measured: 4096 is 1.7x slower)
#: keep what every layer reads, the (N, k, D) edge angles (to ~250k atoms) and the (N, k) scaled distances (to ~1M
#: atoms), for all layers while it is at most this size; else each layer recomputes it per chunk
_GEOMETRY_CACHE_BYTES = 64 * 2**20
_MIN_COMPILED_ATOMS = 64  # below this the eager kernels are as fast and avoid size-0/1 specialisations
#: a layer's inputs at the rows (R, D) -> the same at the halo atoms (H, D) (see FastPhaseNet.__call__)
Halo = Callable[[torch.Tensor], torch.Tensor]

# --------------------------------------------------------------------------------------------- network


@dataclass(frozen=True)
class _KernelLayer:
    """A :class:`FoldedLayer` as :func:`~lammps_phase.model.kernels._edge_conv` takes it: float32, contiguous, W_g transposed."""

    w_i: torch.Tensor
    bias: torch.Tensor
    w_j: Optional[torch.Tensor]
    w_geo_t: Optional[torch.Tensor]  # (D + 1, C)
    geo: str  # "vectors" | "angles<D>" | "none"
    table: Optional[torch.Tensor]  # (M, C) w(s) on the grid s_m = m / inv_step, for weighting="table"
    inv_step: Optional[torch.Tensor]  # 0-dim
    mlp: Optional[tuple[torch.Tensor, ...]]  # spatial_weight's arguments, for weighting="exact"
    pool: str  # ModelConfig.aggregate: "max" | "max_mean" | "max_plus_mean"

    @property
    def width(self) -> int:
        """Columns out of the layer: its channels, twice with max and mean pooled side by side."""
        return pooled_width(int(self.w_i.shape[0]), self.pool)


class FastPhaseNet:
    """Inference-only evaluator of a PhaseNet with the same outputs (logits within float32 noise).

    Built from :meth:`PhaseNet.folded` alone. ``compile``: True, False or "auto". "auto" compiles when
    :func:`compile_available` and once the atoms evaluated so far reach ``compile_after_atoms``
    (compilation costs ~10-60 s per process, worth it only for large or repeated calls), and falls back
    to the eager kernels, with a warning, if compilation fails. ``weighting``: "table" (default) or
    "exact". ``verify`` compares against the reference model on a small random graph at construction, so
    a model change the fast path does not know about fails loudly instead of giving different labels.
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
        folded = model.folded()
        self.device = folded.embedding.device
        self.compile = bool(compile_available(self.device)) if compile == "auto" else bool(compile)
        self._compile_requested = compile
        self.compile_after_atoms = int(compile_after_atoms) if compile == "auto" else 0
        self.atoms_seen = 0
        self.embed = folded.embedding.float()
        self.bond_order = None if folded.bond_order_affine is None else tuple(t.float() for t in folded.bond_order_affine)
        self.layers = [self._kernel_layer(layer) for layer in folded.layers]
        self.head_w = [w.float().contiguous() for w in folded.head_weights]
        self.head_b = [b.float().contiguous() for b in folded.head_biases]
        self.widths = [layer.width for layer in self.layers]
        self._eager = False  # set while _forward_eager runs
        self._record: Optional[list] = None  # set while _kernel_calls records
        # the graph geometry (bond order, edge angles, scaled distances) in C on the CPU; None: by the kernels
        self.geometry = geometry_kernel.for_model(cfg, self.bond_order, self.device)
        if verify:
            self._verify(model)
        # kernels built ahead of time for this model (lammps_phase.model.aot): usable whenever compiling is allowed,
        # with or without a compiler, from the first call on
        self.aot: Optional[dict[str, Callable]] = None if compile is False else self._load_ahead_of_time()

    def _kernel_layer(self, layer: FoldedLayer) -> _KernelLayer:
        cfg = self.cfg
        geo = "none"
        if layer.w_geo is not None:
            geo = f"angles{cfg.edge_angle_l}" if cfg.edge_geometry == "angles" else "vectors"
        table = inv_step = mlp = None
        if layer.weighting is not None and self.weighting == "table":
            table, step = _weight_table(layer.weighting)
            inv_step = torch.tensor(1.0 / step, device=table.device)
        elif layer.weighting is not None:
            mlp = layer.weighting.parameters(torch.float32)
        return _KernelLayer(
            w_i=layer.w_i.float().contiguous(),
            bias=layer.bias.float().contiguous(),
            w_j=layer.w_j.float().contiguous() if layer.w_j is not None else None,
            w_geo_t=layer.w_geo.float().t().contiguous() if layer.w_geo is not None else None,
            geo=geo,
            table=table,
            inv_step=inv_step,
            mlp=mlp,
            pool=cfg.aggregate,
        )

    def _verify(self, model: PhaseNet, atoms: int = 40, seed: int = 0) -> None:
        """Refuse to run if the eager fast kernels disagree with the reference forward on a random graph."""
        species, index, vectors = self._random_graph(atoms, seed)
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

    def _random_graph(self, atoms: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """species, index, vectors of a random k-NN-like graph (neighbours at 1–3 Å, nearest first), on the CPU."""
        g = torch.Generator().manual_seed(seed)
        k = self.cfg.k
        species = torch.randint(0, len(self.cfg.elements), (atoms,), generator=g)
        index = torch.randint(0, atoms, (atoms, k), generator=g, dtype=torch.int32)
        vectors = torch.randn(atoms, k, 3, generator=g)
        vectors = vectors / vectors.norm(dim=-1, keepdim=True) * torch.linspace(1.0, 3.0, k).view(1, k, 1)
        return species, index, vectors

    @torch.no_grad()
    def warm_up(self, atoms: int = 4 * _MIN_COMPILED_ATOMS) -> None:
        """Compile the kernels now, on a small random graph, if this evaluator compiles (else nothing to do): so
        the first real call (in situ: inside the MD loop, with every other rank waiting) does not pay for it.

        The graph has a halo: the compiler gives sizes that are equal when it traces one symbol, so kernels
        first traced with as many neighbour features as rows would be traced again for a call with a halo."""
        if not self.compiled or self.aot is not None:  # nothing to compile
            return
        species, index, vectors = self._random_graph(atoms, seed=1)
        dev = self.device
        rows = atoms - atoms // 3
        self._forward(species.to(dev), index[:rows].clone().to(dev), vectors[:rows].clone().to(dev, torch.float32),
                      halo=lambda h: h[: atoms - rows].clone())

    # ------------------------------------------------------------------ evaluation

    def _kernel_calls(self) -> list[tuple[str, tuple, dict]]:
        """Every kernel call (name, arguments) a forward of this model makes, from an eager run on a small graph:
        what :meth:`build_kernels` exports (row counts differ between calls; nothing else does)."""
        species, index, vectors = self._random_graph(4 * _MIN_COMPILED_ATOMS, seed=2)
        self._record = []
        try:
            self._forward_eager(species, index, vectors)
            return self._record
        finally:
            self._record = None

    def _load_ahead_of_time(self) -> Optional[dict[str, Callable]]:
        """The ahead-of-time kernels of every call this model makes, by key; None unless all of them are built
        (without a kernel cache at all, no probe forward is run)."""
        if not aot.cache_dir().is_dir():
            return None
        found: dict[str, Callable] = {}
        for name, args, kwargs in self._kernel_calls():
            key = aot.kernel_key(name, args, kwargs, self.device)
            fn = aot.load(key) if key is not None else None
            if fn is None:
                return None
            found[key] = fn
        return found

    def build_kernels(self) -> list[tuple[str, float]]:
        """Export and compile every kernel this model calls into the kernel cache (skipping those already there),
        then use them: [(package path, build seconds)], one per distinct kernel. Needs a C++ compiler (CPU) or
        Triton (CUDA)."""
        built: dict[str, tuple[str, float]] = {}
        for name, args, kwargs in self._kernel_calls():
            key = aot.kernel_key(name, args, kwargs, self.device)
            if key is None or key in built:  # the same kernel for several layers is built once
                continue
            started = time.perf_counter()
            path = aot.build(name, KERNELS[name], args, kwargs, self.device)
            built[key] = (str(path), time.perf_counter() - started)
        self.aot = self._load_ahead_of_time()
        return list(built.values())

    def _call(self, name: str, *args, **kwargs):
        """Run a kernel built ahead of time or compiled if possible; a compiler failure switches this process to
        eager, once, loudly."""
        if self._record is not None:
            self._record.append((name, args, kwargs))
        if self._eager:
            return kernel(name, False)(*args, **kwargs)
        if self.aot is not None:
            fn = self.aot.get(aot.kernel_key(name, args, kwargs, self.device) or "")
            if fn is not None:  # exported for contiguous inputs; a contiguous row chunk is used in place
                return fn(*(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args))
        use = self.compile and self.device.type not in COMPILE_FAILED
        if use:
            try:
                return kernel(name, True)(*(standalone(a) for a in args), **kwargs)
            except Exception as err:  # inductor/triton failures surface as many exception types
                if self._compile_requested is True:
                    raise LammpsPhaseError(
                        f"torch.compile failed on {self.device.type} ({type(err).__name__}: {str(err).splitlines()[0]}); "
                        "use compile='auto' or False to run the eager kernels"
                    ) from None
                COMPILE_FAILED[self.device.type] = f"{type(err).__name__}: {err}"
                warnings.warn(
                    f"torch.compile failed on {self.device.type}; using the eager fast path "
                    f"({type(err).__name__}: {str(err).splitlines()[0][:200]})",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return kernel(name, False)(*args, **kwargs)

    def _chunks(self, n: int) -> list[slice]:
        """Fixed-size chunks (at most EAGER_CHUNK atoms for the eager kernels, whose temporaries are (n, k, C));
        the last one is merged into its predecessor when it would hold a single atom."""
        size = self.chunk if self.compiled else min(self.chunk, EAGER_CHUNK)
        bounds = list(range(0, n, size)) + [n]
        if len(bounds) > 2 and bounds[-1] - bounds[-2] < 2:
            del bounds[-2]
        return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]

    @torch.no_grad()
    def __call__(self, species: torch.Tensor, index: torch.Tensor, vectors: torch.Tensor,
                 halo: Optional[Halo] = None) -> torch.Tensor:
        """Logits (R, C) of the R atoms that own rows: species (N,), index (R, ≥k) int32 (int64 is converted),
        vectors (R, ≥k, 3).

        Without ``halo`` every atom owns a row (R = N). With it, rows are the first R atoms and the other N − R
        (the halo) enter only as neighbours: before each layer ``halo(h)`` turns the rows' layer inputs (R, D)
        into the halo's (N − R, D), which someone else computed (in-situ local mode: the ranks that own them).
        It is called once per layer, ``len(cfg.channels)`` times, in layer order.
        """
        k = self.cfg.k
        n, rows = species.shape[0], index.shape[0]
        if (index.ndim != 2 or index.shape[1] < k or vectors.shape[:2] != index.shape
                or (rows != n if halo is None else rows > n)):
            raise LammpsPhaseError(
                f"the fast path needs an (R, >= {k}) neighbour index and (R, k, 3) vectors, R = N = {n} atoms "
                f"(R <= N with a halo), got {tuple(index.shape)} and {tuple(vectors.shape)}"
            )
        dev = self.device
        if n >= torch.iinfo(torch.int32).max:
            raise LammpsPhaseError(f"{n} atoms in one call: more than the int32 neighbour index holds; "
                                   "label them in parts")
        index = index[:, :k].to(device=dev, dtype=torch.int32)  # the kernels' index type (ahead-of-time keys)
        vectors = vectors[:, :k].to(device=dev, dtype=torch.float32)
        species = species.to(device=dev, dtype=torch.long)
        self.atoms_seen += rows
        if rows < _MIN_COMPILED_ATOMS or (self.aot is None and self.atoms_seen < self.compile_after_atoms):
            return self._forward_eager(species, index, vectors, halo)
        return self._forward(species, index, vectors, halo)

    def _forward_eager(self, species: torch.Tensor, index: torch.Tensor, vectors: torch.Tensor,
                       halo: Optional[Halo] = None) -> torch.Tensor:
        dev = self.device
        species, index, vectors = species.to(dev), index.to(dev, torch.int32), vectors.to(dev, torch.float32)
        saved, self._eager = self._eager, True
        try:
            return self._forward(species, index, vectors, halo)
        finally:
            self._eager = saved

    @property
    def layer_input_widths(self) -> list[int]:
        """Width of each layer's input h, first layer first: what a halo supplies before each layer."""
        first = int(self.embed.shape[1]) + (int(self.bond_order[0].shape[0]) if self.bond_order is not None else 0)
        return [first] + self.widths[:-1]

    @property
    def compiled(self) -> bool:
        """Whether the next large call runs compiled kernels (built ahead of time or by torch.compile)."""
        if self._eager:
            return False
        return self.aot is not None or (self.compile and self.device.type not in COMPILE_FAILED)

    @property
    def kernel_kind(self) -> str:
        """"ahead-of-time", "compiled" or "eager": what the next large call runs."""
        if self._eager or not self.compiled:
            return "eager"
        return "ahead-of-time" if self.aot is not None else "compiled"

    def _edge_angles(self, vectors: torch.Tensor) -> torch.Tensor:
        """The edge-angle moments of a chunk (n, k, D): by the C geometry when there is one, else the kernel."""
        if self.geometry is not None:
            out = torch.empty(vectors.shape[:2] + (self.cfg.edge_angle_l,), dtype=torch.float32)
            self.geometry(vectors, angles=out)
            return out
        return self._call("edge_angles", vectors, self.cfg.edge_angle_l, self.cfg.edge_angle_neighbors)

    def _scaled_distances(self, vectors: torch.Tensor, local: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(s_ij, 1 / s_i) of a chunk, as :meth:`_edge_angles` computes its output."""
        if self.geometry is not None:
            sdist = torch.empty(vectors.shape[:2], dtype=torch.float32)
            inv_scale = torch.empty((vectors.shape[0], 1), dtype=torch.float32)
            self.geometry(vectors, sdist=sdist, inv_scale=inv_scale)
            return sdist, inv_scale
        return self._call("scaled_distances", vectors, local)

    def _forward(self, species: torch.Tensor, index: torch.Tensor, vectors: torch.Tensor,
                 halo: Optional[Halo] = None) -> torch.Tensor:
        """Layer by layer over row chunks. What lives for all rows at once is only what other rows read (each
        layer's input h and W_j·h) and what the head needs later (the outputs of all layers but the last, 4 B ×
        their widths per atom, each layer's in a tensor of its own, allocated when the layer runs); the edge geometry
        and scaled distances are kept for all rows only up to _GEOMETRY_CACHE_BYTES each (else recomputed per layer
        and chunk), and the last layer's chunks go straight into the head, whose logits
        are written over the last layer's input (see below): at the peak, in the last layer, what lives is the
        earlier layers' outputs and W_j·h, 3 × 192 B per atom for the shipped widths."""
        n, k = index.shape  # rows; with a halo, index also points at the atoms after them
        dev = self.device
        chunks = self._chunks(n)
        local = self.cfg.length_scale == "local"
        outputs: list[torch.Tensor] = []  # of every layer but the last, for the head
        classes = self.cfg.num_classes
        logits = None
        h = self.embed[species[:n]]
        # What every layer reads, computed once for all rows in one pass over the chunks: the bond-order inputs, and
        # the invariant edge geometry and scaled distances while they are small (else per layer and chunk, below).
        cfg = self.cfg
        angled = any(layer.geo.startswith("angles") for layer in self.layers)
        bo = angles = scaled = None
        if self.bond_order is not None:
            bo = torch.empty((n, self.bond_order[0].shape[0]), dtype=torch.float32, device=dev)
        if angled and n * k * cfg.edge_angle_l * 4 <= _GEOMETRY_CACHE_BYTES:
            angles = torch.empty((n, k, cfg.edge_angle_l), dtype=torch.float32, device=dev)
        if (len(self.layers) > 1 or self.geometry is not None) and n * (k + 1) * 4 <= _GEOMETRY_CACHE_BYTES:
            scaled = (torch.empty((n, k), dtype=torch.float32, device=dev),
                      torch.empty((n, 1), dtype=torch.float32, device=dev))
        for c in chunks:
            if self.geometry is not None:
                self.geometry(vectors[c], sdist=None if scaled is None else scaled[0][c],
                              inv_scale=None if scaled is None else scaled[1][c],
                              bond_order=None if bo is None else bo[c], angles=None if angles is None else angles[c])
                continue
            if bo is not None:
                bo[c] = self._call("bond_order", vectors[c], cfg.bond_order_l, list(cfg.bond_order_neighbors),
                                   *self.bond_order)
            if angles is not None:
                angles[c] = self._call("edge_angles", vectors[c], cfg.edge_angle_l, cfg.edge_angle_neighbors)
            if scaled is not None:
                scaled[0][c], scaled[1][c] = self._call("scaled_distances", vectors[c], local)
        if bo is not None:
            h = torch.cat([h, bo], dim=-1)
            del bo
        for number, (layer, kl) in enumerate(zip(self.layers, self.cfg.layer_neighbors)):
            last = number == len(self.layers) - 1
            if halo is not None:  # the neighbours' inputs: rows first, then the halo's from whoever computed them
                h = torch.cat([h, halo(h)])
            v = F.linear(h, layer.w_j) if layer.w_j is not None else None
            # a tensor of its own, not a column block of one buffer: its pages are touched only from this layer on
            out = None if last else torch.empty((n, layer.width), dtype=torch.float32, device=dev)
            if last:
                # The last layer's input h is dead row by row: a chunk's rows are read (W_i·h_i, the head's input)
                # before its logits are stored, other rows see only v. With C ≤ D classes the logits of rows < b
                # lie in h's storage below row b, so they overwrite only rows already done.
                fits = h.is_contiguous() and classes <= h.shape[1]
                logits = h.view(-1)[: n * classes].view(n, classes) if fits else torch.empty(
                    (n, classes), dtype=torch.float32, device=dev)
            for c in chunks:
                geometry = vectors[c]
                if layer.geo.startswith("angles"):
                    geometry = angles[c] if angles is not None else self._edge_angles(vectors[c])
                sdist, inv_scale = (scaled[0][c], scaled[1][c]) if scaled is not None else self._scaled_distances(
                    vectors[c], local)
                # the layer's kl nearest neighbours (rows are sorted by distance)
                result = self._call("edge_conv", h[c], layer.w_i, layer.bias, v, index[c, :kl], geometry[:, :kl],
                                    sdist[:, :kl], inv_scale, layer.w_geo_t, layer.table, layer.inv_step,
                                    layer.mlp, geo=layer.geo, pool=layer.pool)
                if last:
                    head_input = torch.cat([o[c] for o in outputs] + [result], dim=1)
                    logits[c] = self._call("head", head_input, self.head_w, self.head_b)
                else:
                    out[c] = result
            del v
            if out is not None:
                outputs.append(out)
            h = out
        return logits.clone() if logits._base is not None else logits


def _weight_table(weighting: SpatialWeighting) -> tuple[torch.Tensor, float]:
    """Tabulate w(s) on s ∈ [0, r_max + 8 widths] finely enough for TABLE_TOLERANCE: ((M, C) float32, step).

    Beyond the last grid point every Gaussian of the basis is below e^-64, so the weight is constant there
    to float precision and clamping to the last row is exact. The grid is halved until linear interpolation
    errs less than the tolerance at every midpoint (the error of linear interpolation peaks between nodes).
    """
    width = weighting.r_max / max(weighting.basis - 1, 1)
    s_max = weighting.r_max + 8.0 * width
    step = width / 64.0
    params = weighting.parameters(torch.float64)
    for _ in range(6):
        m = int(np.ceil(s_max / step)) + 1
        grid = torch.arange(m, dtype=torch.float64, device=weighting.w1.device) * step
        values = spatial_weight(grid, *params)
        mid = spatial_weight(grid[:-1] + 0.5 * step, *params)
        err = float((0.5 * (values[:-1] + values[1:]) - mid).abs().max())
        if err <= TABLE_TOLERANCE:
            return values.float().contiguous(), step
        step *= 0.5
    raise LammpsPhaseError(
        f"the spatial weighting varies too fast to tabulate (interpolation error {err:.2g} at step {step:.2g}); "
        "use weighting='exact'"
    )
