"""Geometric inputs of the network, computed from the neighbour vectors r_ij of the k-NN graph.

Shared by the reference forward (:mod:`lammps_phase.model.network`) and the fused inference path
(:mod:`lammps_phase.model.fastpath`), so both see exactly the same inputs.
"""

from __future__ import annotations

from typing import Optional, TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from lammps_phase.model.network import ModelConfig

__all__ = [
    "bond_order_features",
    "edge_angle_features",
    "edge_geometry",
    "geometry_dim",
    "radial_basis",
    "unit_vectors",
]


def radial_basis(dist: torch.Tensor, n: int, r_max: float) -> torch.Tensor:
    """Gaussian radial basis of (scaled) distances: smooth inputs for the spatial weighting."""
    centers = torch.linspace(0.0, r_max, n, device=dist.device, dtype=dist.dtype)
    width = r_max / max(n - 1, 1)
    return torch.exp(-(((dist.unsqueeze(-1) - centers) / width) ** 2))


def unit_vectors(vectors: torch.Tensor) -> torch.Tensor:
    """r_ij / |r_ij|, safe for coincident atoms."""
    return vectors / vectors.norm(dim=-1).clamp_min(1e-6).unsqueeze(-1)


def bond_order_features(unit: torch.Tensor, l_max: int, counts: list[int], chunk: Optional[int] = 8192) -> torch.Tensor:
    """Rotation-invariant angular descriptors per atom, (N, l_max·len(counts)).

    For the n nearest neighbours, f_l = (1/n²) Σ_jj' (r̂_j · r̂_j')^l for l = 1..l_max: the power moments
    of the bond-angle distribution. They span the same space as the Legendre moments, i.e. Steinhardt's
    q_l² (odd l included: they separate tetrahedra from octahedra), at two multiply-adds per pair and l.
    The DGCNN is not rotation invariant by construction; these inputs give it invariant angular
    information that otherwise has to be learned from rotated examples (fcc vs hcp trains poorly without).
    """
    out = []
    # chunk=None: one piece (the fused path, whose caller chunks already; a loop over a symbolic size would make
    # torch.compile specialise on every sample size)
    for u in ([unit] if chunk is None else [unit[s : s + chunk] for s in range(0, unit.shape[0], chunk)]):
        feats = []
        for n in counts:
            c = torch.bmm(u[:, :n], u[:, :n].transpose(1, 2))
            p = c.clone()
            for l in range(l_max):
                feats.append(p.mean(dim=(1, 2)))
                if l < l_max - 1:
                    p = p * c
        out.append(torch.stack(feats, dim=-1))
    return torch.cat(out) if out else unit.new_zeros((0, l_max * len(counts)))


def edge_angle_features(unit: torch.Tensor, l_max: int, neighbors: int) -> torch.Tensor:
    """Rotation-invariant geometry of every edge, (N, k, l_max).

    For edge i→j: g_l = (1/n) Σ_m (r̂_ij · r̂_im)^l over i's n nearest bonds m, l = 1..l_max. It says
    where j sits relative to i's own bond star (along a bond, in the tetrahedral cone, opposite, …)
    without any reference to the laboratory frame, so a network built on it labels a rotated sample
    exactly as the original.
    """
    c = torch.bmm(unit, unit[:, :neighbors].transpose(1, 2))  # (N, k, n)
    feats = []
    p = c
    for l in range(l_max):
        feats.append(p.mean(dim=-1))
        if l < l_max - 1:
            p = p * c
    return torch.stack(feats, dim=-1)


def edge_geometry(vectors: torch.Tensor, dist: torch.Tensor, scale: torch.Tensor, cfg: "ModelConfig") -> torch.Tensor:
    """Edge inputs of every EdgeConv: [r_ij / s_i or angle moments, |r_ij| / s_i], (N, k, geo_dim)."""
    sdist = (dist / scale).unsqueeze(-1)
    if cfg.edge_geometry == "angles":
        unit = vectors / dist.clamp_min(1e-6).unsqueeze(-1)
        return torch.cat([edge_angle_features(unit, cfg.edge_angle_l, cfg.edge_angle_neighbors), sdist], dim=-1)
    return torch.cat([vectors / scale.unsqueeze(-1), sdist], dim=-1)


def geometry_dim(cfg: "ModelConfig") -> int:
    """Width of :func:`edge_geometry`'s output (0 when the edges carry no geometry)."""
    if not cfg.input_rel:
        return 0
    return (cfg.edge_angle_l if cfg.edge_geometry == "angles" else 3) + 1
