"""The SW-DGCNN: shapes, locality, chunked == whole-sample, permutation equivariance, fused layer math."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.model.network import (
    ErhardBaseline,
    ModelConfig,
    PhaseNet,
    environment_graph,
    forward_environments,
    random_rotations,
)
from lammps_phase.inference.neighbors import knn

K = 12


def small_cfg(**kw) -> ModelConfig:
    base = dict(elements=["Si", "O"], num_classes=4, k=K, channels=[16, 16, 16], head=[32], embed_dim=8)
    base.update(kw)
    return ModelConfig(**base)


def trained_like(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give batch-norm non-trivial running statistics so folding is exercised, then eval."""
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.3)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
            mod.weight.data.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
            mod.bias.data.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
    return model.eval()


def random_sample(n: int, box: float, seed: int):
    rng = np.random.default_rng(seed)
    pos = rng.random((n, 3)) * box
    species = rng.integers(0, 2, n)
    return pos, species


def jittered_lattice(m: int, a: float, seed: int, noise: float = 0.35):
    """m³ atoms on a simple-cubic grid with noise: uniform density keeps the receptive radius small."""
    rng = np.random.default_rng(seed)
    g = np.stack(np.meshgrid(*[np.arange(m)] * 3, indexing="ij"), -1).reshape(-1, 3) * a
    return g + rng.normal(scale=noise, size=g.shape), rng.integers(0, 2, len(g)), m * a


def whole_logits(model, pos, species, cell, pbc=(True, True, True), query=None):
    nl = knn(pos, K, cell=cell, pbc=pbc, query=query)
    with torch.no_grad():
        out = model(
            torch.as_tensor(species),
            torch.as_tensor(nl.index),
            torch.as_tensor(nl.vectors, dtype=torch.float32),
            chunk=97,
        )
    return out.numpy(), nl


def test_shapes_environments_and_whole_sample():
    torch.manual_seed(0)
    model = PhaseNet(small_cfg())
    pos = torch.randn(5, 32, 3) * 3
    sp = torch.randint(0, 2, (5, 32))
    assert forward_environments(model, sp, pos).shape == (5, 32, 4)
    model.eval()
    p, s = random_sample(300, 15.0, 1)
    out, _ = whole_logits(model, p, s, np.eye(3) * 15.0)
    assert out.shape == (300, 4)
    assert np.isfinite(out).all()
    assert ErhardBaseline(small_cfg()).eval()(sp, pos).shape == (5, 4)


def test_locality_atoms_beyond_receptive_field_do_not_matter():
    torch.manual_seed(1)
    model = trained_like(PhaseNet(small_cfg()))
    pos, sp, box = jittered_lattice(14, 2.3, 2)
    cell = np.eye(3) * box
    ref, nl = whole_logits(model, pos, sp, cell)
    dk = float(nl.distances[:, K - 1].max())
    radius = model.receptive_hops * dk
    assert radius + dk < box / 2, "test box too small for the receptive field"
    d = pos - pos[0]
    d -= box * np.round(d / box)
    far = np.linalg.norm(d, axis=1) > radius + dk + 0.5
    assert far.sum() > 500
    moved = pos.copy()
    rng = np.random.default_rng(3)
    moved[far] += rng.normal(scale=0.3, size=(far.sum(), 3))
    out, _ = whole_logits(model, moved, sp, cell)
    np.testing.assert_allclose(out[0], ref[0], atol=1e-5)
    assert np.abs(out[far] - ref[far]).max() > 1e-3  # the perturbation is real
    # and an atom inside the receptive field does matter
    near = nl.index[0, 0]
    moved2 = pos.copy()
    moved2[near] += 0.3
    out2, _ = whole_logits(model, moved2, sp, cell)
    assert np.abs(out2[0] - ref[0]).max() > 1e-4


@pytest.mark.parametrize("extra", [
    dict(layer_k=[2, 4, 2], bond_order_l=4, bond_order_neighbors=[4, K]),  # hops 2, 4, 2 nearest, then a k row
    dict(layer_k=[3, 2, 2]),  # no bond-order inputs: hops 2, 2 nearest, then the first layer's k rows
])
def test_layer_k_shrinks_the_receptive_field_to_its_bound(extra):
    torch.manual_seed(4)
    model = trained_like(PhaseNet(small_cfg(**extra)))
    cfg = model.cfg
    pos, sp, box = jittered_lattice(14, 2.3, 5)
    cell = np.eye(3) * box
    ref, nl = whole_logits(model, pos, sp, cell)
    radius = cfg.receptive_radius(nl.distances)
    full = small_cfg(bond_order_l=cfg.bond_order_l, bond_order_neighbors=cfg.bond_order_neighbors)
    assert radius < 0.9 * full.receptive_radius(nl.distances)  # fewer neighbours per hop: a smaller field
    d = pos - pos[0]
    d -= box * np.round(d / box)
    r = np.linalg.norm(d, axis=1)
    far = r > radius + 1e-3
    moved = pos.copy()
    moved[far] += np.random.default_rng(6).normal(scale=0.3, size=(far.sum(), 3))
    out, _ = whole_logits(model, moved, sp, cell)
    np.testing.assert_allclose(out[0], ref[0], atol=1e-5)
    assert np.abs(out[far] - ref[far]).max() > 1e-3  # the perturbation is real


def test_layer_k_is_checked():
    with pytest.raises(LammpsPhaseError, match="one neighbour count between 1 and k"):
        small_cfg(layer_k=[4, 4])  # three layers
    with pytest.raises(LammpsPhaseError, match="one neighbour count between 1 and k"):
        small_cfg(layer_k=[4, 4, K + 1])
    assert small_cfg().layer_neighbors == [K, K, K] and small_cfg().hop_neighbors == [K, K, K]
    assert small_cfg(layer_k=[2, 3, 4], bond_order_l=2, bond_order_neighbors=[K]).hop_neighbors == [4, 3, 2, K]


def test_whole_sample_equals_overlapping_chunks():
    torch.manual_seed(2)
    model = trained_like(PhaseNet(small_cfg()))
    pos, sp, box = jittered_lattice(12, 2.3, 4)
    cell = np.eye(3) * box
    ref, nl = whole_logits(model, pos, sp, cell)
    dk = float(nl.distances[:, K - 1].max())
    halo = (model.receptive_hops + 1) * dk + 0.5
    got = np.full_like(ref, np.nan)
    slabs = np.linspace(0.0, box, 4)
    for lo, hi in zip(slabs[:-1], slabs[1:]):
        centre = 0.5 * (lo + hi)
        dx = pos[:, 0] - centre
        dx -= box * np.round(dx / box)
        keep = np.abs(dx) < 0.5 * (hi - lo) + halo
        own = np.abs(dx) < 0.5 * (hi - lo)
        sub = pos[keep].copy()
        sub[:, 0] = centre + dx[keep]  # unwrap across the periodic boundary: x is open inside a chunk
        owned = np.flatnonzero(own[keep])
        out, _ = whole_logits(model, sub, sp[keep], cell, pbc=(False, True, True))
        got[np.flatnonzero(keep)[owned]] = out[owned]
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, ref, atol=2e-5)


def test_permutation_equivariance():
    torch.manual_seed(3)
    model = trained_like(PhaseNet(small_cfg()))
    pos, sp = random_sample(400, 16.0, 5)
    cell = np.eye(3) * 16.0
    ref, _ = whole_logits(model, pos, sp, cell)
    perm = np.random.default_rng(6).permutation(len(pos))
    out, _ = whole_logits(model, pos[perm], sp[perm], cell)
    np.testing.assert_allclose(out, ref[perm], atol=1e-5)


def test_split_and_folded_edgeconv_equals_textbook_form():
    torch.manual_seed(4)
    cfg = small_cfg()
    model = trained_like(PhaseNet(cfg))
    conv = model.convs[0]
    n = 50
    h = torch.randn(n, cfg.embed_dim)
    index = torch.randint(0, n, (n, K))
    vec = torch.randn(n, K, 3)
    dist = vec.norm(dim=-1)
    geo = torch.cat([vec, dist.unsqueeze(-1)], dim=-1)
    from lammps_phase.model.features import radial_basis

    rbf = radial_basis(dist, cfg.radial_basis, cfg.radial_max)
    with torch.no_grad():
        fast = conv(h, index, geo, rbf, chunk=7)
        hi = h.unsqueeze(1).expand(n, K, -1)
        hj = h[index]
        m = conv.lin_self(hi) + conv.lin_nbr(hj - hi) + conv.lin_geo(geo)
        m = conv.bn.bn(m.reshape(-1, m.shape[-1])).reshape(m.shape)
        m = F.leaky_relu(m, 0.2) * torch.sigmoid(conv.weighting(rbf))
        slow = m.amax(dim=1)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)


def test_ablation_flags_build_and_run():
    pos = torch.randn(3, 32, 3) * 3
    sp = torch.randint(0, 2, (3, 32))
    for flags in (
        dict(graph="embedding"),
        dict(spatial_weighting=False),
        dict(input_rel=False, input_abs=True),
        dict(embed_abs=False),
        dict(length_scale="none"),
    ):
        out = forward_environments(PhaseNet(small_cfg(**flags)), sp, pos)
        assert out.shape == (3, 32, 4), flags


def test_whole_sample_refuses_ablation_models_that_need_a_centre():
    model = PhaseNet(small_cfg(input_abs=True)).eval()
    pos, sp = random_sample(200, 12.0, 7)
    with pytest.raises(LammpsPhaseError, match="absolute positions"):
        whole_logits(model, pos, sp, np.eye(3) * 12.0)


def test_environment_graph_matches_bruteforce():
    pos = torch.randn(2, 20, 3)
    index, vec = environment_graph(pos, 5)
    flat = pos.reshape(-1, 3)
    for i in range(40):
        b = i // 20
        d = (pos[b] - flat[i]).norm(dim=-1)
        d[i % 20] = float("inf")
        expect = torch.sort(d).values[:5]
        torch.testing.assert_close(vec[i].norm(dim=-1), expect)
        assert torch.all(index[i] // 20 == b)


def test_random_rotations_are_proper():
    r = random_rotations(50, torch.Generator().manual_seed(0))
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(50), atol=1e-5, rtol=0)
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3).expand(50, 3, 3), atol=1e-5, rtol=0)


@pytest.mark.parametrize("geometry", ["vectors", "angles"])
def test_angle_edge_geometry_is_rotation_invariant_and_vectors_are_not(geometry):
    torch.manual_seed(4)
    model = trained_like(PhaseNet(small_cfg(edge_geometry=geometry, edge_angle_l=4, edge_angle_neighbors=6,
                                            bond_order_l=4, bond_order_neighbors=[6, K])))
    pos, species, box = jittered_lattice(6, 1.6, seed=5)
    nl = knn(pos, K, cell=np.eye(3) * box)
    sp, index = torch.as_tensor(species), torch.as_tensor(nl.index)
    vectors = torch.as_tensor(nl.vectors, dtype=torch.float32)
    rot = random_rotations(1, torch.Generator().manual_seed(9))[0]
    with torch.no_grad():
        a = model(sp, index, vectors)
        b = model(sp, index, vectors @ rot.T)
    err = float((a - b).abs().max())
    if geometry == "angles":
        assert err < 1e-4
    else:
        assert err > 1e-2  # r_ij in the laboratory frame: invariance is only learned (poster's loss term)


def test_edge_geometry_options_are_checked():
    with pytest.raises(LammpsPhaseError, match="edge_geometry"):
        small_cfg(edge_geometry="spherical")
    with pytest.raises(LammpsPhaseError, match="edge_angle_neighbors"):
        small_cfg(edge_geometry="angles", edge_angle_neighbors=K + 1)


def test_max_and_mean_pooling_puts_out_both_and_is_checked():
    """aggregate = "max_mean": a layer's output is [max_j m_ij, mean_j m_ij], its width twice the channels."""
    with pytest.raises(LammpsPhaseError, match="aggregate must be one of 'max', 'max_mean', 'max_plus_mean'"):
        small_cfg(aggregate="sum")
    torch.manual_seed(2)
    model = trained_like(PhaseNet(small_cfg(aggregate="max_mean")))
    conv = model.convs[0]
    g = torch.Generator().manual_seed(0)
    n, c_in = 30, model.convs[0].lin_self.in_features
    h = torch.randn(n, c_in, generator=g)
    index = torch.randint(0, n, (n, K), generator=g)
    out = conv(h, index, None, None, chunk=1 << 20)
    channels = conv.lin_self.out_features
    assert out.shape == (n, 2 * channels)
    w_i, bias, w_j, _ = conv._weights()
    linear = torch.nn.functional.linear
    messages = torch.nn.functional.leaky_relu(linear(h, w_i, bias).unsqueeze(1) + linear(h, w_j)[index], 0.2)
    torch.testing.assert_close(out[:, :channels], messages.amax(dim=1))
    torch.testing.assert_close(out[:, channels:], messages.mean(dim=1))
    pos, sp, box = jittered_lattice(8, 2.3, 3)
    logits, _ = whole_logits(model, pos, sp, np.eye(3) * box)
    assert logits.shape == (len(pos), model.cfg.num_classes) and np.isfinite(logits).all()
    summed = trained_like(PhaseNet(small_cfg(aggregate="max_plus_mean")))  # same weights shape as "max"
    summed.load_state_dict(trained_like(PhaseNet(small_cfg())).state_dict())
    conv = summed.convs[0]
    w_i, bias, w_j, _ = conv._weights()
    messages = torch.nn.functional.leaky_relu(linear(h, w_i, bias).unsqueeze(1) + linear(h, w_j)[index], 0.2)
    torch.testing.assert_close(conv(h, index, None, None, chunk=1 << 20), messages.amax(dim=1) + messages.mean(dim=1))
