"""The graph geometry in C (lammps_phase.model.geometry_kernel): the equations of lammps_phase.model.features and of
the scaled-distance kernel to float32 rounding, written in place into row chunks; the fused path gives the same
logits and labels with it as with the torch kernels; it stands aside when switched off or off the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_random_checkpoint
from lammps_phase.model import checkpoint as ckpt_io
from lammps_phase.model import geometry_kernel
from lammps_phase.model.fastpath import FastPhaseNet
from lammps_phase.model.features import bond_order_features, edge_angle_features, unit_vectors
from lammps_phase.model.kernels import _scaled_distances
from lammps_phase.model.network import ModelConfig


def _config(k: int = 16, local: bool = True, **extra) -> ModelConfig:
    return ModelConfig(elements=["Si", "O"], num_classes=3, k=k, channels=[8, 8], head=[8], bond_order_l=6,
                       bond_order_neighbors=[k // 2 - 2, k], edge_geometry="angles", edge_angle_l=4,
                       edge_angle_neighbors=6, length_scale="local" if local else "none", **extra)


def _kernel(cfg: ModelConfig, affine):
    kernel = geometry_kernel.for_model(cfg, affine, torch.device("cpu"))
    if kernel is None:
        pytest.skip("the C geometry does not build here (no C compiler)")
    return kernel


def _vectors(n: int, k: int, seed: int = 0) -> torch.Tensor:
    """Neighbour vectors at 1-3 Å, nearest first; atom 3 has a neighbour on top of it, atom 5 only coincident ones."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, k, 3, generator=g)
    v = v / v.norm(dim=-1, keepdim=True) * torch.linspace(1.0, 3.0, k).view(1, k, 1)
    v[3, 0] = 0.0
    v[5] = 0.0
    return v


@pytest.mark.parametrize("local", [True, False])
@pytest.mark.parametrize("n", [1, 37])  # 37: two full blocks of 16 lanes and a partial one
def test_c_geometry_is_the_torch_geometry(local, n):
    cfg = _config(local=local)
    g = torch.Generator().manual_seed(1)
    affine = (torch.rand(12, generator=g) + 0.5, torch.randn(12, generator=g))
    kernel = _kernel(cfg, affine)
    vectors = _vectors(max(n, 6), cfg.k)[:n].contiguous()
    sdist, inv_scale = torch.empty(n, cfg.k), torch.empty(n, 1)
    bo, angles = torch.empty(n, 12), torch.empty(n, cfg.k, 4)
    kernel(vectors, sdist=sdist, inv_scale=inv_scale, bond_order=bo, angles=angles)

    unit = unit_vectors(vectors)
    want_sdist, want_inv = _scaled_distances(vectors, local)
    want_bo = bond_order_features(unit, 6, list(cfg.bond_order_neighbors), chunk=None) * affine[0] + affine[1]
    want_angles = edge_angle_features(unit, 4, 6)
    for got, want in ((sdist, want_sdist), (inv_scale, want_inv), (bo, want_bo), (angles, want_angles)):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-6)


def test_outputs_are_written_in_place_into_row_chunks_and_only_those_asked_for():
    cfg = _config()
    kernel = _kernel(cfg, (torch.ones(12), torch.zeros(12)))
    vectors = _vectors(50, cfg.k)
    whole = torch.empty(50, cfg.k, 4)
    kernel(vectors, angles=whole)
    part = torch.full((50, cfg.k, 4), float("nan"))
    sdist = torch.full((50, cfg.k), float("nan"))
    kernel(vectors[20:41], angles=part[20:41])  # a row chunk of a larger buffer, at an offset
    assert torch.equal(part[20:41], whole[20:41])
    assert part[:20].isnan().all() and part[41:].isnan().all()
    assert sdist.isnan().all()  # not asked for: untouched


def test_wrong_outputs_are_refused():
    cfg = _config()
    kernel = _kernel(cfg, (torch.ones(12), torch.zeros(12)))
    vectors = _vectors(8, cfg.k)
    with pytest.raises(ValueError, match="sdist"):
        kernel(vectors, sdist=torch.empty(8, cfg.k - 1))
    with pytest.raises(ValueError, match="angles"):
        kernel(vectors, angles=torch.empty(8, cfg.k, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="bond_order"):
        kernel(vectors, bond_order=torch.empty(12, 8).t())  # not contiguous
    with pytest.raises(ValueError, match="vectors"):
        kernel(vectors[:, :-1], sdist=torch.empty(8, cfg.k))


def test_it_stands_aside_when_switched_off_or_off_the_cpu(monkeypatch):
    cfg = _config()
    affine = (torch.ones(12), torch.zeros(12))
    monkeypatch.setenv(geometry_kernel.GEOMETRY_ENV, "torch")
    assert geometry_kernel.for_model(cfg, affine, torch.device("cpu")) is None
    monkeypatch.delenv(geometry_kernel.GEOMETRY_ENV)
    assert geometry_kernel.for_model(cfg, affine, torch.device("meta")) is None
    assert geometry_kernel.for_model(_config(k=80), affine, torch.device("cpu")) is None  # beyond the C file's sizes


@pytest.mark.parametrize("edge_geometry", ["angles", "vectors"])
def test_the_fused_path_gives_the_same_logits_with_either_geometry(tmp_path, edge_geometry):
    model = ckpt_io.load(make_random_checkpoint(tmp_path / "m.pt", k=16, edge_geometry=edge_geometry)).build()
    with_c = FastPhaseNet(model, compile=False)  # verified against the reference forward at construction
    if with_c.geometry is None:
        pytest.skip("the C geometry does not build here (no C compiler)")
    with_torch = FastPhaseNet(model, compile=False)
    with_torch.geometry = None
    species, index, vectors = with_c._random_graph(300, seed=3)
    a, b = with_c(species, index, vectors), with_torch(species, index, vectors)
    assert float((a - b).abs().max()) < 1e-4
    assert np.array_equal(a.argmax(-1).numpy(), b.argmax(-1).numpy())


def test_without_a_compiler_the_torch_kernels_serve_and_one_cause_is_warned_once(monkeypatch, tmp_path):
    import warnings

    cfg = _config()
    affine = (torch.ones(12), torch.zeros(12))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv(geometry_kernel.NATIVE_CACHE_ENV, str(tmp_path / "native"))
    monkeypatch.setattr(geometry_kernel._LIBRARY, "failure", None)
    with pytest.warns(RuntimeWarning, match="graph geometry is unavailable"):
        assert geometry_kernel.for_model(cfg, affine, torch.device("cpu")) is None
    monkeypatch.setattr(geometry_kernel._LIBRARY, "failure", None)  # tried again (another helper, same cause)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same missing compiler is not warned about twice
        assert geometry_kernel.for_model(cfg, affine, torch.device("cpu")) is None
    assert not list((tmp_path / "native").glob("*.so"))
