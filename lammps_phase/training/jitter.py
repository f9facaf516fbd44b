"""Shaken crystals: random per-atom displacements added to crystal snapshots while training.

Why: a network trained on α-quartz at 300–650 K and β-quartz from 1200 K can tell them apart by how far the atoms
stray from their sites instead of by the tetrahedra's tilt, the order parameter that defines them. It did (session
22, ``checkpoints/sio2.pt``): held-out α-quartz at 316 K with its tilt intact (0.95 of ideal α) reads β on 98 % of
its atoms once every atom is displaced by a Gaussian of σ = 0.1 Å, at 675 K already with σ = 0.06 Å, while coesite
stays coesite. Atoms next to a free surface or an interface move more than bulk atoms of the same temperature, so
this is where α was read as β. Shaking the crystal snapshots teaches that a larger amplitude alone makes no other
phase.

For every training snapshot whose labelled atoms all belong to ``classes`` (the crystals; never glass or melt,
whose labels *are* about motion: melt is what moves), each batch draws one σ uniformly from [0, ``sigma_max``] Å
and a displacement u_i ~ N(0, σ² I) for each atom; the edge vectors become

    r_ij ← r_ij + u_j − u_i,

each row re-sorted nearest first (the order the network's per-layer neighbour counts and bond-order features
rely on). The k neighbours themselves are kept: displacements of σ ≤ 0.1 Å reorder a shell, they do not bring an
atom from beyond the 16th neighbour in. Validation and test data are never shaken.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from lammps_phase.errors import LammpsPhaseError


def shaken_snapshots(labels: np.ndarray, offsets: np.ndarray, classes: Sequence[str], shake: Sequence[str]
                     ) -> np.ndarray:
    """(S,) bool: the snapshots (atoms ``offsets[i]:offsets[i + 1]``) whose labelled atoms (label ≥ 0) all carry
    one of the ``shake`` classes, at least one of them."""
    unknown = sorted(set(shake) - set(classes))
    if unknown:
        raise LammpsPhaseError(f"jitter_classes names {unknown}, which the training data lack (classes: "
                               f"{list(classes)}); list crystal classes of this config")
    allowed = np.zeros(len(classes) + 1, bool)  # the last slot: label −1 (no class), which neither allows nor bars
    allowed[[list(classes).index(name) for name in shake]] = True
    labels = np.asarray(labels, np.int64)
    labelled = labels >= 0
    outside = labelled & ~allowed[np.where(labelled, labels, len(classes))]
    snapshot = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    any_outside = np.bincount(snapshot, weights=outside, minlength=len(offsets) - 1) > 0
    any_labelled = np.bincount(snapshot, weights=labelled, minlength=len(offsets) - 1) > 0
    return any_labelled & ~any_outside


def shake(index: torch.Tensor, vectors: torch.Tensor, item: torch.Tensor, sigma: torch.Tensor,
          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(index, vectors) of a batch graph with every atom of item ``t`` displaced by N(0, sigma[t]² I) (Å);
    rows re-sorted nearest first. index (N, k) global atom indices, vectors (N, k, 3) r_j − r_i, item (N,)."""
    u = torch.randn(vectors.shape[0], 3, generator=generator, dtype=vectors.dtype) * sigma[item].unsqueeze(1)
    moved = vectors + u[index] - u.unsqueeze(1)
    order = moved.norm(dim=-1).argsort(dim=1)
    return index.gather(1, order), moved.gather(1, order.unsqueeze(-1).expand_as(moved))
