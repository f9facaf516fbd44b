"""Spatially weighted DGCNN (per-atom segmentation) and the Erhard-style centre-atom baseline.

The segmentation network follows the poster (Ryan & Zhang, LLE) with these choices:

* the graph is the k-nearest-neighbour graph in *input* space, built once per configuration and
  reused by every layer, so the network is local: an atom's logits depend only on atoms within
  ``len(channels)`` hops.  There is no global pooling, hence labels do not depend on sample size,
  a whole periodic sample is one forward pass, and an MPI rank can label its atoms from a ghost shell;
* edge messages see the relative position r_ij in every layer (never absolute positions by default:
  at inference there is no environment centre), h_j - h_i and h_i. Without r_ij beyond the first
  layer a message cannot tell where a neighbour sits, and fcc/hcp-like differences train poorly;
* every edge message is scaled by a learned function of |r_ij| before max-aggregation
  ("spatial weighting", which the poster needed because relative positions alone trained badly);
* distances are measured in units of a per-atom length (mean distance to its k neighbours), so a
  phase compressed by a shock looks like the same phase (Erhard et al. normalise the same way).

The first linear map of each EdgeConv is split, Θ·[h_i, h_j − h_i] = (Θa − Θb)·h_i + Θb·h_j, so the
per-edge work is a gather, an add, an activation and a max. In eval mode every batch norm is folded
once, into :class:`~lammps_phase.model.folded.FoldedPhaseNet` (:meth:`PhaseNet.folded`), which the eval
forward and the fused inference path both use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.model.features import bond_order_features, edge_geometry, geometry_dim, radial_basis, unit_vectors
from lammps_phase.model.folded import (AGGREGATES, NEG_SLOPE, FoldedLayer, FoldedPhaseNet, SpatialWeighting,
                                       batch_norm_affine, fold_head, pool_messages, pooled_width)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a network; stored verbatim in checkpoints."""

    elements: list[str]
    num_classes: int
    k: int = 16
    channels: list[int] = field(default_factory=lambda: [64, 64, 64])
    head: list[int] = field(default_factory=lambda: [128])
    embed_dim: int = 16
    radial_basis: int = 16
    radial_max: float = 3.0  # in units of the local length scale
    dropout: float = 0.0
    # ablation flags (poster table): graph space, weighting, which position features are used
    graph: str = "input"  # "input" | "embedding"
    spatial_weighting: bool = True
    input_rel: bool = True  # r_ij as edge features of the first layer
    input_abs: bool = False  # position relative to the environment centre as node feature
    embed_rel: bool = True  # h_j - h_i in every EdgeConv
    embed_abs: bool = True  # h_i in every EdgeConv
    length_scale: str = "local"  # "local" (mean k-NN distance per atom) | "none" (Å)
    # rotation-invariant node inputs: power moments l = 1..bond_order_l of the cosines between
    # neighbour pairs (equivalent to Steinhardt q_l²), over each neighbour count listed
    bond_order_l: int = 0
    bond_order_neighbors: list[int] = field(default_factory=list)
    # what an edge message sees of r_ij besides |r_ij|: "vectors" (the poster: r_ij / s_i, learns
    # rotation invariance from the loss) or "angles" (power moments l = 1..edge_angle_l of the cosines
    # between r_ij and i's edge_angle_neighbors nearest bonds: invariant by construction)
    edge_geometry: str = "vectors"
    edge_angle_l: int = 4
    edge_angle_neighbors: int = 8
    # nearest neighbours each EdgeConv layer aggregates over (empty: k in every layer). The geometric inputs of
    # every atom still come from its k neighbours; fewer neighbours in the layers shrink the receptive field
    # (see receptive_radius) while the per-atom descriptors keep their reach
    layer_k: list[int] = field(default_factory=list)
    # how an EdgeConv pools its messages: "max" (DGCNN, the poster), "max_mean" (the max and the mean side by side,
    # 2 × channels out) or "max_plus_mean" (their sum, channels out): the mean says what share of the neighbours
    # carries a feature, which the max cannot
    aggregate: str = "max"

    def __post_init__(self) -> None:
        if self.graph not in ("input", "embedding"):
            raise LammpsPhaseError(f"graph must be 'input' or 'embedding', not {self.graph!r}")
        if self.length_scale not in ("local", "none"):
            raise LammpsPhaseError(f"length_scale must be 'local' or 'none', not {self.length_scale!r}")
        if self.edge_geometry not in ("vectors", "angles"):
            raise LammpsPhaseError(f"edge_geometry must be 'vectors' or 'angles', not {self.edge_geometry!r}")
        if self.edge_geometry == "angles" and not (1 <= self.edge_angle_l and 2 <= self.edge_angle_neighbors <= self.k):
            raise LammpsPhaseError("edge_geometry 'angles' needs edge_angle_l >= 1 and 2 <= edge_angle_neighbors <= k")
        if not (self.embed_rel or self.embed_abs):
            raise LammpsPhaseError("at least one of embed_rel, embed_abs must be on: later layers see nothing else")
        self.bond_order_neighbors = [int(n) for n in self.bond_order_neighbors]
        if self.bond_order_l and (not self.bond_order_neighbors or max(self.bond_order_neighbors) > self.k):
            raise LammpsPhaseError("bond_order_neighbors must list neighbour counts between 2 and k")
        self.channels = [int(c) for c in self.channels]
        self.head = [int(c) for c in self.head]
        self.layer_k = [int(c) for c in self.layer_k]
        if self.layer_k and (len(self.layer_k) != len(self.channels) or not all(1 <= c <= self.k for c in self.layer_k)):
            raise LammpsPhaseError(
                f"layer_k must give one neighbour count between 1 and k = {self.k} per EdgeConv layer "
                f"({len(self.channels)} layers), got {self.layer_k}"
            )
        if self.aggregate not in AGGREGATES:
            raise LammpsPhaseError(f"aggregate must be one of {', '.join(map(repr, AGGREGATES))}, not {self.aggregate!r}")
        if self.layer_k and self.graph != "input":
            raise LammpsPhaseError("layer_k applies to the input-space graph (graph = 'input') only")
        self.elements = [str(e) for e in self.elements]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise LammpsPhaseError(f"unknown model config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def layer_neighbors(self) -> list[int]:
        """Neighbours aggregated by each EdgeConv layer, first layer first."""
        return list(self.layer_k) if self.layer_k else [self.k] * len(self.channels)

    @property
    def hop_neighbors(self) -> list[int]:
        """Neighbour count of each hop of the receptive field, from the labelled atom outwards.

        The last layer reads its k_L nearest neighbours' features, those read their k_(L-1) nearest, and so on;
        the outermost hop is a whole k-neighbour row: the bond-order inputs of the first layer's neighbours
        when they are on, else the geometry (k neighbours) of the atoms the first layer runs on.
        """
        ks = self.layer_neighbors
        inner = ks[::-1] if self.bond_order_l else ks[:0:-1]
        return inner + [self.k]

    @property
    def receptive_hops(self) -> int:
        """Neighbour hops that can influence an atom's label: one per EdgeConv layer, plus one when the
        bond-order inputs are on (a neighbour's input already depends on *its* neighbours)."""
        return len(self.hop_neighbors)

    def receptive_radius(self, distances: Any, percentile: float = 100.0) -> float:
        """Upper bound (Å) on how far an atom that changes a label can lie: Σ over hops of the largest distance
        to the hop's n-th neighbour (``percentile`` < 100: a typical rather than the extreme atom).
        ``distances``: sorted neighbour distances (N, ≥ k) of a structure."""
        d = np.asarray(distances, dtype=np.float64)
        if d.ndim != 2 or d.shape[1] < self.k or d.shape[0] == 0:
            raise LammpsPhaseError(f"receptive_radius needs sorted neighbour distances (N, >= {self.k}), got {d.shape}")
        return float(sum(np.percentile(d[:, n - 1], percentile) for n in self.hop_neighbors))


class _AffineBN(nn.Module):
    """BatchNorm1d over the last dim of any-rank input (folded by :func:`batch_norm_affine` at inference)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return self.bn(x.reshape(-1, shape[-1])).reshape(shape)


class EdgeConv(nn.Module):
    """One spatially weighted EdgeConv layer: message, weight, max-aggregate.

    message   m_ij = LeakyReLU(BN(Θa·h_i + Θb·(h_j − h_i) + Θg·g_ij))
    weight    w_ij = sigmoid(MLP(rbf(|r_ij| / s_i)))        (per output channel)
    aggregate h_i' = max_j w_ij ⊙ m_ij          (aggregate "max")
              h_i' = [max_j w_ij ⊙ m_ij, mean_j w_ij ⊙ m_ij]   (aggregate "max_mean")
              h_i' = max_j w_ij ⊙ m_ij + mean_j w_ij ⊙ m_ij    (aggregate "max_plus_mean")
    """

    def __init__(self, c_in: int, c_out: int, geo_dim: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.use_abs = cfg.embed_abs
        self.use_rel = cfg.embed_rel
        self.lin_self = nn.Linear(c_in, c_out, bias=True)  # Θa (acts on h_i)
        self.lin_nbr = nn.Linear(c_in, c_out, bias=False) if cfg.embed_rel else None  # Θb
        self.lin_geo = nn.Linear(geo_dim, c_out, bias=False) if geo_dim else None
        self.bn = _AffineBN(c_out)
        self.weighting = (
            nn.Sequential(nn.Linear(cfg.radial_basis, 32), nn.SiLU(), nn.Linear(32, c_out))
            if cfg.spatial_weighting
            else None
        )
        self.basis_size, self.basis_max = cfg.radial_basis, cfg.radial_max
        self.pool = cfg.aggregate
        self._eval_folded: Optional[FoldedLayer] = None  # folded on the first eval forward, dropped by train()

    def train(self, mode: bool = True) -> "EdgeConv":
        self._eval_folded = None
        return super().train(mode)

    def _split_weights(self) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        """(W_i, bias, W_j, W_g) of the split map Θa·h_i + Θb·(h_j − h_i) + Θg·g_ij, batch norm not applied."""
        w_self = self.lin_self.weight if self.use_abs else torch.zeros_like(self.lin_self.weight)
        w_nbr = self.lin_nbr.weight if self.lin_nbr is not None else None
        w_i = w_self - w_nbr if w_nbr is not None else w_self
        w_g = self.lin_geo.weight if self.lin_geo is not None else None
        return w_i, self.lin_self.bias, w_nbr, w_g

    @torch.no_grad()
    def folded(self) -> FoldedLayer:
        """This layer with its batch norm folded into the split map (fresh tensors, no autograd)."""
        w_i, bias, w_j, w_g = self._split_weights()
        scale, shift = batch_norm_affine(self.bn.bn)
        weighting = None
        if self.weighting is not None:
            lin1, lin2 = self.weighting[0], self.weighting[2]
            weighting = SpatialWeighting(self.basis_size, self.basis_max, lin1.weight.detach().clone(),
                                         lin1.bias.detach().clone(), lin2.weight.detach().clone(), lin2.bias.detach().clone())
        return FoldedLayer(
            w_i=w_i * scale[:, None],
            bias=bias * scale + shift,
            w_j=w_j * scale[:, None] if w_j is not None else None,
            w_geo=w_g * scale[:, None] if w_g is not None else None,
            weighting=weighting,
        )

    def _weights(self) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Training: the split map (batch norm follows on the messages). Eval: the folded map, cached."""
        if self.training:
            return self._split_weights()
        if self._eval_folded is None:
            self._eval_folded = self.folded()
        f = self._eval_folded
        return f.w_i, f.bias, f.w_j, f.w_geo

    def forward(
        self,
        h: torch.Tensor,
        index: torch.Tensor,
        geo: Optional[torch.Tensor],
        rbf: Optional[torch.Tensor],
        chunk: int,
    ) -> torch.Tensor:
        w_i, bias, w_nbr, w_g = self._weights()
        u = F.linear(h, w_i, bias)  # (N, C) per atom, computed once
        v = F.linear(h, w_nbr) if w_nbr is not None else None
        n = h.shape[0]
        if self.training or n <= chunk:
            return self._edges(u, v, index, geo, rbf, w_g)
        out = torch.empty((index.shape[0], pooled_width(u.shape[1], self.pool)), dtype=u.dtype, device=u.device)
        for s in range(0, index.shape[0], chunk):
            e = slice(s, s + chunk)
            out[e] = self._edges(
                u[e], v, index[e], geo[e] if geo is not None else None, rbf[e] if rbf is not None else None, w_g
            )
        return out

    def _edges(self, u, v, index, geo, rbf, w_g) -> torch.Tensor:
        msg = u.unsqueeze(1)
        if v is not None:
            msg = msg + v[index]
        if w_g is not None and geo is not None:
            msg = msg + F.linear(geo, w_g)
        if self.training:
            msg = self.bn(msg)
        msg = F.leaky_relu(msg, NEG_SLOPE)
        if self.weighting is not None and rbf is not None:
            msg = msg * torch.sigmoid(self.weighting(rbf))
        return pool_messages(msg, self.pool)


class PhaseNet(nn.Module):
    """Per-atom phase logits for a whole configuration (or a batch of environments) in one pass."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(len(cfg.elements), cfg.embed_dim)
        n_bo = cfg.bond_order_l * len(cfg.bond_order_neighbors)
        self.bond_order_norm = nn.BatchNorm1d(n_bo) if n_bo else None
        c_in = cfg.embed_dim + (3 if cfg.input_abs else 0) + n_bo
        geo_dim = geometry_dim(cfg)
        layers = []
        for i, c in enumerate(cfg.channels):
            layers.append(EdgeConv(c_in, c, geo_dim, cfg))
            c_in = pooled_width(c, cfg.aggregate)
        self.convs = nn.ModuleList(layers)
        head: list[nn.Module] = []
        c_in = pooled_width(sum(cfg.channels), cfg.aggregate)
        for c in cfg.head:
            head += [nn.Linear(c_in, c), nn.BatchNorm1d(c), nn.LeakyReLU(NEG_SLOPE)]
            if cfg.dropout:
                head.append(nn.Dropout(cfg.dropout))
            c_in = c
        head.append(nn.Linear(c_in, cfg.num_classes))
        self.head = nn.Sequential(*head)

    @property
    def receptive_hops(self) -> int:
        return self.cfg.receptive_hops

    @torch.no_grad()
    def folded(self) -> FoldedPhaseNet:
        """The network in inference form, every batch norm folded (equations: :mod:`lammps_phase.model.folded`)."""
        bond_order = None
        if self.bond_order_norm is not None:
            scale, shift = batch_norm_affine(self.bond_order_norm)
            bond_order = (scale.detach().clone(), shift.detach().clone())
        head_weights, head_biases = fold_head(self.head)
        return FoldedPhaseNet(
            config=self.cfg,
            embedding=self.embed.weight.detach().clone(),
            bond_order_affine=bond_order,
            layers=tuple(conv.folded() for conv in self.convs),
            head_weights=head_weights,
            head_biases=head_biases,
        )

    def forward(
        self,
        species: torch.Tensor,
        index: torch.Tensor,
        vectors: torch.Tensor,
        centre_offset: Optional[torch.Tensor] = None,
        env_size: Optional[int] = None,
        chunk: int = 32768,
    ) -> torch.Tensor:
        """Logits (N, C).

        species (N,) element indices; index (N, k) neighbour indices; vectors (N, k, 3) r_j − r_i in Å.
        centre_offset (N, 3): positions relative to the environment centre, only for ``input_abs``.
        env_size: atoms per environment when the N atoms are a batch of equal-size environments;
        required by the embedding-space (dynamic) graph, which is defined within an environment.
        """
        cfg = self.cfg
        k = cfg.k
        if index.shape[1] < k:
            raise LammpsPhaseError(f"the model needs {k} neighbours per atom, got {index.shape[1]}")
        index, vectors = index[:, :k], vectors[:, :k]
        dist = vectors.norm(dim=-1)
        if cfg.length_scale == "local":
            scale = dist.mean(dim=1, keepdim=True).clamp_min(1e-6)
        else:
            scale = torch.ones_like(dist[:, :1])
        sdist = dist / scale
        rbf = radial_basis(sdist, cfg.radial_basis, cfg.radial_max) if cfg.spatial_weighting else None
        geo = edge_geometry(vectors, dist, scale, cfg) if cfg.input_rel else None

        h = self.embed(species)
        if self.bond_order_norm is not None:
            bo = bond_order_features(unit_vectors(vectors), cfg.bond_order_l, cfg.bond_order_neighbors, chunk)
            h = torch.cat([h, self.bond_order_norm(bo)], dim=-1)
        if cfg.input_abs:
            if centre_offset is None:
                raise LammpsPhaseError(
                    "this model uses absolute positions (input_abs), which exist only for environments with a centre; "
                    "it cannot label a whole sample"
                )
            h = torch.cat([h, centre_offset / scale], dim=-1)
        outs = []
        for i, (conv, kl) in enumerate(zip(self.convs, cfg.layer_neighbors)):
            if i > 0 and cfg.graph == "embedding":
                index, rbf = self._dynamic_graph(h, index, vectors, centre_offset, env_size, scale)
                geo = None  # feature-space neighbours: input-space geometry no longer applies
            h = conv(h, index[:, :kl], _nearest(geo, kl), _nearest(rbf, kl), chunk)
            outs.append(h)
        return self.head(torch.cat(outs, dim=-1))

    def _dynamic_graph(self, h, index, vectors, centre_offset, env_size, scale):
        """k-NN in feature space within each environment (ablation: breaks locality)."""
        if env_size is None or centre_offset is None:
            raise LammpsPhaseError(
                "the embedding-space graph is defined within environments only; use graph='input' for whole samples"
            )
        k = self.cfg.k
        n = h.shape[0]
        b = n // env_size
        hb = h.reshape(b, env_size, -1)
        d = torch.cdist(hb, hb)
        d.diagonal(dim1=1, dim2=2).fill_(float("inf"))
        local = d.topk(k, dim=-1, largest=False).indices  # (B, P, k)
        offset = (torch.arange(b, device=h.device) * env_size).view(b, 1, 1)
        new_index = (local + offset).reshape(n, k)
        pos = centre_offset
        vec = pos[new_index] - pos.unsqueeze(1)
        rbf = None
        if self.cfg.spatial_weighting:
            rbf = radial_basis(vec.norm(dim=-1) / scale, self.cfg.radial_basis, self.cfg.radial_max)
        return new_index, rbf


def _nearest(edges: Optional[torch.Tensor], n: int) -> Optional[torch.Tensor]:
    """Per-edge inputs (N, k, ...) of the n nearest neighbours only (rows are sorted by distance)."""
    return None if edges is None else edges[:, :n]


def environment_graph(positions: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """k-NN graph inside each of B open (non-periodic) P-point environments, flattened.

    positions (B, P, 3) → index (B·P, k) into the flattened atoms, vectors (B·P, k, 3).
    """
    b, p, _ = positions.shape
    if p <= k:
        raise LammpsPhaseError(f"environments of {p} points are too small for k = {k}: need at least {k + 1}")
    d = torch.cdist(positions, positions)
    d.diagonal(dim1=1, dim2=2).fill_(float("inf"))
    local = d.topk(k, dim=-1, largest=False).indices  # (B, P, k)
    vec = torch.gather(positions.unsqueeze(1).expand(b, p, p, 3), 2, local.unsqueeze(-1).expand(b, p, k, 3))
    vec = vec - positions.unsqueeze(2)
    offset = (torch.arange(b, device=positions.device) * p).view(b, 1, 1)
    return (local + offset).reshape(b * p, k), vec.reshape(b * p, k, 3)


def forward_environments(model: PhaseNet, species: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Per-atom logits (B, P, C) for a batch of environments whose atom 0 is the centre."""
    b, p, _ = positions.shape
    index, vectors = environment_graph(positions, model.cfg.k)
    centre = (positions - positions[:, :1]).reshape(b * p, 3)
    logits = model(species.reshape(-1), index, vectors, centre_offset=centre, env_size=p)
    return logits.reshape(b, p, -1)


class ErhardBaseline(nn.Module):
    """Centre-atom classifier in the style of Erhard et al. (2024): one label per P-point environment.

    Coordinates are taken relative to the centre atom and divided by the environment's mean
    nearest-neighbour distance; a DGCNN (dynamic k-NN graph in feature space after the first layer)
    ends in a global max+mean pooling and an MLP. Classifying a sample needs one environment per atom,
    which is the cost the segmentation network avoids.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(len(cfg.elements), cfg.embed_dim)
        c_in = cfg.embed_dim + 3
        self.convs = nn.ModuleList()
        for c in cfg.channels:
            self.convs.append(
                nn.Sequential(nn.Linear(2 * c_in, c, bias=False), _AffineBN(c), nn.LeakyReLU(NEG_SLOPE))
            )
            c_in = c
        emb = 2 * sum(cfg.channels)
        head: list[nn.Module] = []
        for c in cfg.head:
            head += [nn.Linear(emb, c), nn.BatchNorm1d(c), nn.LeakyReLU(NEG_SLOPE)]
            if cfg.dropout:
                head.append(nn.Dropout(cfg.dropout))
            emb = c
        head.append(nn.Linear(emb, cfg.num_classes))
        self.head = nn.Sequential(*head)

    @staticmethod
    def normalise(positions: torch.Tensor) -> torch.Tensor:
        """Centre on atom 0 and scale by the mean nearest-neighbour distance of the environment."""
        rel = positions - positions[:, :1]
        d = torch.cdist(rel, rel)
        d.diagonal(dim1=1, dim2=2).fill_(float("inf"))
        nn_dist = d.min(dim=-1).values.mean(dim=1).clamp_min(1e-6)
        return rel / nn_dist.view(-1, 1, 1)

    def forward(self, species: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """species (B, P), positions (B, P, 3) with the centre atom first → logits (B, C)."""
        k = self.cfg.k
        x = self.normalise(positions)
        h = torch.cat([self.embed(species), x], dim=-1)
        pooled = []
        for conv in self.convs:
            d = torch.cdist(h, h)
            idx = d.topk(k + 1, dim=-1, largest=False).indices[..., 1:]  # (B, P, k), self excluded
            b, p, c = h.shape
            hj = torch.gather(h.unsqueeze(1).expand(b, p, p, c), 2, idx.unsqueeze(-1).expand(b, p, k, c))
            hi = h.unsqueeze(2).expand(b, p, k, c)
            h = conv(torch.cat([hi, hj - hi], dim=-1)).amax(dim=2)
            pooled += [h.amax(dim=1), h.mean(dim=1)]
        return self.head(torch.cat(pooled, dim=-1))


def build_model(cfg: ModelConfig, kind: str = "segmentation") -> nn.Module:
    """The network a config describes: "segmentation" (ours) or "erhard" (baseline)."""
    if kind == "segmentation":
        return PhaseNet(cfg)
    if kind == "erhard":
        return ErhardBaseline(cfg)
    raise LammpsPhaseError(f"unknown model kind {kind!r}: use 'segmentation' or 'erhard'")


def count_parameters(model: nn.Module) -> int:
    """Trainable and frozen parameters, for the comparison tables."""
    return sum(p.numel() for p in model.parameters())


def random_rotations(n: int, generator: Optional[torch.Generator] = None, dtype=torch.float32) -> torch.Tensor:
    """n uniformly random proper rotation matrices (QR of Gaussian matrices, sign-fixed)."""
    a = torch.randn(n, 3, 3, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    det = torch.linalg.det(q)
    q[:, :, 0] *= det.sign().unsqueeze(-1)
    return q.to(dtype)


__all__ = [
    "ModelConfig",
    "PhaseNet",
    "ErhardBaseline",
    "EdgeConv",
    "build_model",
    "environment_graph",
    "forward_environments",
    "random_rotations",
    "count_parameters",
]
