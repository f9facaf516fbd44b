r"""The network in inference form: one representation with every batch norm folded once.

:meth:`PhaseNet.folded() <lammps_phase.model.network.PhaseNet.folded>` produces it and the fused inference
path (:mod:`lammps_phase.model.fastpath`) consumes only it, so the fast path never depends on how the
training-time modules are laid out. In eval mode a batch norm is the affine map
y = γ (x − μ) / √(σ² + ε) + β = a ⊙ x + c, so it folds into the linear map before it:
W ← a ⊙ W, b ← a ⊙ b + c (:func:`batch_norm_affine` is that fold, the only one).

Node inputs: h_i⁰ = [E(species_i), a_bo ⊙ f_bo(i) + c_bo] (embedding, folded bond-order features).

Layer (EdgeConv) l, over i's k_l nearest neighbours j (``layer_k``; k by default), with s_i the mean distance
to all k neighbours (or 1):

    h_i' = max_j  w(s_ij) ⊙ LeakyReLU(W_i·h_i + W_j·h_j + W_g·g_ij + b),    s_ij = |r_ij| / s_i
    w(s) = sigmoid(W₂·SiLU(W₁·rbf(s) + b₁) + b₂),                          rbf_m(s) = exp(−((s − c_m)/δ)²)

where g_ij = [r_ij / s_i, s_ij] (or the edge-angle moments and s_ij), W_i = a ⊙ (Θa − Θb), W_j = a ⊙ Θb,
W_g = a ⊙ Θg and b = a ⊙ b_a + c fold the layer's batch norm into the split map
Θa·h_i + Θb·(h_j − h_i) + Θg·g_ij + b_a. Without ``embed_abs`` Θa is zero; without ``embed_rel`` W_j is
absent; without ``spatial_weighting`` w ≡ 1. With ``aggregate = "max_mean"`` a layer pools the same weighted
messages twice, h_i' = [max_j m_ij, (1/k_l) Σ_j m_ij] (2C columns, the next layer's input); with
``"max_plus_mean"`` it adds them, h_i' = max_j m_ij + (1/k_l) Σ_j m_ij.

Head: x = [h¹, …, h^L]; x ← LeakyReLU(W x + b) per hidden layer (batch norm folded, dropout is the
identity at inference); logits = W x + b.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import torch
from torch import nn
from torch.nn import functional as F

from lammps_phase.errors import LammpsPhaseError

if TYPE_CHECKING:
    from lammps_phase.model.network import ModelConfig

__all__ = ["AGGREGATES", "NEG_SLOPE", "FoldedLayer", "FoldedPhaseNet", "SpatialWeighting", "batch_norm_affine",
           "fold_head", "pool_messages", "pooled_width", "spatial_weight"]

NEG_SLOPE = 0.2  # of every LeakyReLU in the network
#: how an EdgeConv may pool its messages over the neighbours (ModelConfig.aggregate)
AGGREGATES = ("max", "max_mean", "max_plus_mean")


def pooled_width(channels: int, aggregate: str) -> int:
    """Columns a layer of ``channels`` puts out: twice as many with max and mean side by side."""
    return channels * (2 if aggregate == "max_mean" else 1)


def pool_messages(m: torch.Tensor, aggregate: str) -> torch.Tensor:
    """(n, k, C) weighted messages → (n, pooled_width(C)): max_j, [max_j, mean_j] or max_j + mean_j."""
    if aggregate == "max_mean":
        return torch.cat([m.amax(dim=1), m.mean(dim=1)], dim=1)
    if aggregate == "max_plus_mean":
        return m.amax(dim=1) + m.mean(dim=1)
    return m.amax(dim=1)


def batch_norm_affine(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, c) with eval-mode bn(x) = a ⊙ x + c: the batch-norm fold, written once."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def spatial_weight(s, centers, inv_width, w1, b1, w2, b2) -> torch.Tensor:
    """w(s) = sigmoid(W₂·SiLU(W₁·rbf(s) + b₁) + b₂) per output channel, (..., C), for scaled distances s."""
    rbf = torch.exp(-(((s.unsqueeze(-1) - centers) * inv_width) ** 2))
    return torch.sigmoid(F.linear(F.silu(F.linear(rbf, w1, b1)), w2, b2))


@dataclass(frozen=True)
class SpatialWeighting:
    """The learned weight w(s) of one layer: a Gaussian basis of ``basis`` centres on [0, r_max] and a 2-layer MLP."""

    basis: int
    r_max: float
    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor

    def parameters(self, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
        """(centers, 1/width, W₁, b₁, W₂, b₂) in ``dtype``: the arguments of :func:`spatial_weight`."""
        dev = self.w1.device
        width = self.r_max / max(self.basis - 1, 1)
        centers = torch.linspace(0.0, self.r_max, self.basis, device=dev, dtype=dtype)
        return (centers, torch.tensor(1.0 / width, device=dev, dtype=dtype),
                *(t.to(dtype) for t in (self.w1, self.b1, self.w2, self.b2)))

    def __call__(self, s: torch.Tensor) -> torch.Tensor:
        return spatial_weight(s, *self.parameters(s.dtype))


@dataclass(frozen=True)
class FoldedLayer:
    """One EdgeConv with its batch norm folded (see the module docstring for the equation)."""

    w_i: torch.Tensor  # (C, C_in) acts on h_i
    bias: torch.Tensor  # (C,)
    w_j: Optional[torch.Tensor]  # (C, C_in) acts on h_j; None without embed_rel
    w_geo: Optional[torch.Tensor]  # (C, D) acts on g_ij; None when the edges carry no geometry
    weighting: Optional[SpatialWeighting]  # None: w ≡ 1

    @property
    def width(self) -> int:
        """Channels of the messages (a max_mean layer puts out twice as many columns)."""
        return int(self.w_i.shape[0])


@dataclass(frozen=True)
class FoldedPhaseNet:
    """A PhaseNet in inference form: embedding, folded bond-order normalisation, folded layers and head."""

    config: "ModelConfig"
    embedding: torch.Tensor  # (elements, embed_dim)
    bond_order_affine: Optional[tuple[torch.Tensor, torch.Tensor]]  # (a, c) of the bond-order batch norm
    layers: tuple[FoldedLayer, ...]
    head_weights: tuple[torch.Tensor, ...]  # hidden layers with batch norm folded, then the output layer
    head_biases: tuple[torch.Tensor, ...]


def fold_head(head: nn.Sequential) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Weights and biases of the head's linear layers, each with the batch norm that follows it folded in."""
    weights: list[torch.Tensor] = []
    biases: list[torch.Tensor] = []
    mods = list(head)
    with torch.no_grad():
        for i, mod in enumerate(mods):
            if isinstance(mod, nn.Linear):
                w, b = mod.weight.detach().clone(), mod.bias.detach().clone()
                nxt = mods[i + 1] if i + 1 < len(mods) else None
                if isinstance(nxt, nn.BatchNorm1d):
                    scale, shift = batch_norm_affine(nxt)
                    w, b = w * scale[:, None], b * scale + shift
                weights.append(w)
                biases.append(b)
            elif not isinstance(mod, (nn.BatchNorm1d, nn.LeakyReLU, nn.Dropout)):
                raise LammpsPhaseError(f"unexpected head module {type(mod).__name__}: the fast path cannot fold it")
    return tuple(weights), tuple(biases)
