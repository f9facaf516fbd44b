"""The folded representation: every batch norm folded once equals the eval-mode network it came from."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.model.features import radial_basis
from lammps_phase.model.folded import FoldedPhaseNet, batch_norm_affine, fold_head
from lammps_phase.model.network import ModelConfig, PhaseNet


@pytest.fixture(scope="module")
def model() -> PhaseNet:
    """A small PhaseNet whose batch norms have non-trivial statistics and affine parameters."""
    torch.manual_seed(0)
    cfg = ModelConfig(elements=["Si", "O"], num_classes=3, k=6, channels=[8, 8], head=[16], embed_dim=4,
                      bond_order_l=2, bond_order_neighbors=[3, 6], dropout=0.1)
    net = PhaseNet(cfg)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, nn.BatchNorm1d):
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=g))
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.3)
                mod.weight.copy_(torch.randn(mod.num_features, generator=g))
                mod.bias.copy_(torch.randn(mod.num_features, generator=g))
    return net.eval()


def test_folded_batch_norm_equals_eval_mode_batch_norm(model):
    x = torch.randn(100, model.bond_order_norm.num_features)
    scale, shift = batch_norm_affine(model.bond_order_norm)
    torch.testing.assert_close(x * scale + shift, model.bond_order_norm(x), atol=1e-6, rtol=1e-6)


def test_folded_layer_equals_the_eval_mode_split_map(model):
    torch.manual_seed(2)
    folded = model.folded()
    conv, layer = model.convs[1], folded.layers[1]
    n, k = 30, model.cfg.k
    h = torch.randn(n, 8)
    hj = torch.randn(n, k, 8)
    g = torch.randn(n, k, 4)
    hi = h.unsqueeze(1).expand(n, k, -1)
    with torch.no_grad():
        ref = conv.bn(conv.lin_self(hi) + conv.lin_nbr(hj - hi) + conv.lin_geo(g))
    out = F.linear(hi, layer.w_i, layer.bias) + F.linear(hj, layer.w_j) + F.linear(g, layer.w_geo)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert layer.width == 8


def test_folded_spatial_weighting_equals_the_module(model):
    layer, conv = model.folded().layers[0], model.convs[0]
    s = torch.linspace(0.0, 4.0, 50)
    with torch.no_grad():
        ref = torch.sigmoid(conv.weighting(radial_basis(s, model.cfg.radial_basis, model.cfg.radial_max)))
    torch.testing.assert_close(layer.weighting(s), ref, atol=1e-6, rtol=1e-6)


def test_folded_head_equals_the_eval_mode_head(model):
    folded = model.folded()
    x = torch.randn(40, sum(model.cfg.channels))
    y = x
    for w, b in zip(folded.head_weights[:-1], folded.head_biases[:-1]):
        y = F.leaky_relu(F.linear(y, w, b), 0.2)
    y = F.linear(y, folded.head_weights[-1], folded.head_biases[-1])
    with torch.no_grad():
        torch.testing.assert_close(y, model.head(x), atol=1e-5, rtol=1e-5)


def test_folding_is_independent_of_the_mode_and_owns_its_tensors(model):
    model.train()
    try:
        trained_mode = model.folded()
    finally:
        model.eval()
    folded = model.folded()
    assert isinstance(folded, FoldedPhaseNet) and folded.config is model.cfg
    torch.testing.assert_close(trained_mode.layers[0].w_i, folded.layers[0].w_i)
    before = model.embed.weight.clone()
    folded.embedding.add_(1.0)
    folded.layers[0].w_i.add_(1.0)
    assert torch.equal(model.embed.weight, before)
    assert not torch.equal(model.folded().layers[0].w_i, folded.layers[0].w_i)
    assert all(not t.requires_grad for t in (folded.embedding, folded.layers[0].w_i, folded.head_weights[0]))


def test_eval_forward_uses_the_folded_layer_and_training_does_not(model):
    conv = model.convs[0]
    assert torch.equal(conv._weights()[0], conv.folded().w_i)
    conv.train()
    try:
        w_i = conv._weights()[0]
        assert w_i.requires_grad and not torch.equal(w_i, conv.folded().w_i)
    finally:
        conv.eval()


def test_a_head_with_an_unknown_module_cannot_be_folded():
    with pytest.raises(LammpsPhaseError, match="unexpected head module Tanh"):
        fold_head(nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)))
