"""Fast inference path: same labels and logits as the reference PhaseNet, also with neighbour-list reuse."""

import os
import time

import numpy as np
import pytest
import torch

from conftest import make_random_checkpoint
from lammps_phase.model import checkpoint as ckpt_io
from lammps_phase.inference.classify import Classifier
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.model import kernels
from lammps_phase.model.fastpath import FastPhaseNet, compile_available
from lammps_phase.inference.neighbors import knn
from lammps_phase.data.structures import build, supercell

K = 12


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return ckpt_io.load(make_random_checkpoint(tmp_path_factory.mktemp("fast") / "m.pt", k=K))


@pytest.fixture(scope="module")
def angles_checkpoint(tmp_path_factory):
    """A model with the rotation-invariant edge geometry (edge_geometry = "angles")."""
    path = make_random_checkpoint(tmp_path_factory.mktemp("fast") / "angles.pt", k=K, seed=1, edge_geometry="angles",
                                  edge_angle_l=4, edge_angle_neighbors=6)
    return ckpt_io.load(path)


@pytest.fixture(scope="module")
def triclinic_quartz():
    """A jittered α-quartz supercell in its own hexagonal (triclinic) cell: 486 atoms."""
    crystal = supercell(build("alpha_quartz"), 12.0, orthogonal=False)
    rng = np.random.default_rng(3)
    pos = crystal.positions + rng.normal(scale=0.08, size=crystal.positions.shape)
    assert abs(crystal.cell[1, 0]) > 1.0  # really triclinic
    return pos, crystal.cell, list(crystal.symbols)


def reference_and_fast_logits(clf_ref, clf_fast, pos, cell, symbols):
    sp = clf_ref.species_indices(symbols)
    nl = knn(pos, K, cell=cell)
    return clf_ref.logits(sp, nl), clf_fast.logits(sp, nl)


@pytest.mark.parametrize("weighting", ["table", "exact"])
def test_fast_path_matches_reference_on_triclinic_sample(checkpoint, triclinic_quartz, weighting):
    pos, cell, symbols = triclinic_quartz
    ref = Classifier(checkpoint, device="cpu", fast=False)
    fast = Classifier(checkpoint, device="cpu", fast="eager")
    fast.fast = FastPhaseNet(fast.model, compile=False, weighting=weighting, chunk=100)  # several chunks
    a, b = reference_and_fast_logits(ref, fast, pos, cell, symbols)
    assert a.shape == b.shape == (len(pos), len(checkpoint.classes))
    assert float((a - b).abs().max()) < 1e-4
    assert np.array_equal(ref.result_from_logits(a).labels, fast.result_from_logits(b).labels)
    assert len(np.unique(ref.result_from_logits(a).labels)) > 1  # the comparison is not vacuous


@pytest.mark.parametrize("weighting, cache_angles", [("table", True), ("exact", True), ("table", False)])
def test_fast_path_matches_reference_with_invariant_edge_geometry(angles_checkpoint, triclinic_quartz, weighting,
                                                                  cache_angles, monkeypatch):
    from lammps_phase.model import fastpath

    if not cache_angles:  # large samples recompute the edge angles and scaled distances per layer and chunk
        monkeypatch.setattr(fastpath, "_GEOMETRY_CACHE_BYTES", 0)
    pos, cell, symbols = triclinic_quartz
    ref = Classifier(angles_checkpoint, device="cpu", fast=False)
    fast = Classifier(angles_checkpoint, device="cpu", fast="eager")
    fast.fast = FastPhaseNet(fast.model, compile=False, weighting=weighting, chunk=100)  # several chunks
    a, b = reference_and_fast_logits(ref, fast, pos, cell, symbols)
    assert float((a - b).abs().max()) < 1e-4
    assert np.array_equal(a.argmax(1).numpy(), b.argmax(1).numpy())
    assert float(a.std(dim=0).max()) > 0.1  # logits differ between atoms: the comparison has teeth


@pytest.mark.parametrize("aggregate, widths", [("max_mean", [32, 32, 32]), ("max_plus_mean", [16, 16, 16])])
def test_fast_path_matches_reference_with_max_and_mean_pooled(tmp_path, triclinic_quartz, aggregate, widths):
    """aggregate = "max_mean" / "max_plus_mean": both paths pool max and mean (side by side / summed)."""
    mean = ckpt_io.load(make_random_checkpoint(tmp_path / "mm.pt", k=K, seed=4, edge_geometry="angles",
                                               edge_angle_l=4, edge_angle_neighbors=6, aggregate=aggregate))
    pos, cell, symbols = triclinic_quartz
    ref = Classifier(mean, device="cpu", fast=False)
    fast = Classifier(mean, device="cpu", fast="eager")
    fast.fast = FastPhaseNet(fast.model, compile=False, chunk=100)
    assert fast.fast.widths == widths
    a, b = reference_and_fast_logits(ref, fast, pos, cell, symbols)
    assert float((a - b).abs().max()) < 1e-4 and float(a.std()) > 0.1


@pytest.mark.parametrize("cache_angles", [True, False])
def test_fast_path_matches_reference_with_fewer_neighbours_per_layer(tmp_path, triclinic_quartz, cache_angles,
                                                                     monkeypatch):
    """layer_k: each layer reads only its nearest neighbours, in both paths."""
    from lammps_phase.model import fastpath

    if not cache_angles:
        monkeypatch.setattr(fastpath, "_GEOMETRY_CACHE_BYTES", 0)
    ckpt = ckpt_io.load(make_random_checkpoint(tmp_path / "lk.pt", k=K, seed=2, edge_geometry="angles",
                                               edge_angle_l=4, edge_angle_neighbors=6, layer_k=[K, 6, 4]))
    pos, cell, symbols = triclinic_quartz
    ref = Classifier(ckpt, device="cpu", fast=False)
    fast = Classifier(ckpt, device="cpu", fast="eager")
    fast.fast = FastPhaseNet(fast.model, compile=False, chunk=100)
    a, b = reference_and_fast_logits(ref, fast, pos, cell, symbols)
    assert float((a - b).abs().max()) < 1e-4
    full = Classifier(ckpt_io.load(make_random_checkpoint(tmp_path / "full.pt", k=K, seed=2, edge_geometry="angles",
                                                          edge_angle_l=4, edge_angle_neighbors=6)), device="cpu", fast=False)
    _, c = reference_and_fast_logits(ref, full, pos, cell, symbols)
    assert float((a - c).abs().max()) > 1e-3  # same weights, all k neighbours per layer: different logits


def test_classify_default_is_fast_and_agrees(checkpoint, triclinic_quartz):
    pos, cell, symbols = triclinic_quartz
    fast = Classifier(checkpoint, device="cpu")
    assert fast.fast is not None
    res_fast = fast.classify(pos, cell, symbols)
    res_ref = Classifier(checkpoint, device="cpu", fast=False).classify(pos, cell, symbols)
    assert np.array_equal(res_fast.labels, res_ref.labels)
    np.testing.assert_allclose(res_fast.confidence, res_ref.confidence, atol=1e-5)
    assert {"neighbors", "convert", "network", "result"} <= set(fast.last_timings)


def test_chunk_boundaries_do_not_change_logits(checkpoint, triclinic_quartz):
    pos, cell, symbols = triclinic_quartz
    model = checkpoint.build()
    nl = knn(pos, K, cell=cell)
    sp = torch.as_tensor(Classifier(checkpoint, device="cpu", fast=False).species_indices(symbols))
    args = (sp, torch.as_tensor(nl.index), torch.as_tensor(nl.vectors))
    whole = FastPhaseNet(model, compile=False, chunk=100_000)(*args)
    n = len(pos)
    chunk = max(c for c in range(2, n // 3) if n % c == 1)  # leaves a single-atom tail ...
    pieces = FastPhaseNet(model, compile=False, chunk=chunk)
    sizes = [c.stop - c.start for c in pieces._chunks(n)]
    assert sum(sizes) == n and len(sizes) >= 3 and sizes[-1] == chunk + 1  # ... merged into the previous chunk
    assert float((pieces(*args) - whole).abs().max()) < 1e-5


def test_index_type_and_reused_storage_do_not_change_logits(checkpoint, triclinic_quartz):
    """The neighbour index is int32 (int64 is taken too), and the logits, written over the last layer's input
    chunk by chunk, equal a forward whose last layer has nothing to overwrite (the reference)."""
    pos, cell, symbols = triclinic_quartz
    model = checkpoint.build().eval()
    nl = knn(pos, K, cell=cell)
    assert nl.index.dtype == np.int32
    sp = torch.as_tensor(Classifier(checkpoint, device="cpu", fast=False).species_indices(symbols))
    fast = FastPhaseNet(model, compile=False, chunk=7)  # many chunks: every row block of the storage is reused
    small = fast(sp, torch.as_tensor(nl.index), torch.as_tensor(nl.vectors))
    wide = fast(sp, torch.as_tensor(nl.index).long(), torch.as_tensor(nl.vectors))
    assert torch.equal(small, wide) and small._base is None
    with torch.no_grad():
        ref = model(sp.long(), torch.as_tensor(nl.index).long(), torch.as_tensor(nl.vectors)).float()
    assert float((small - ref).abs().max()) < 1e-4


@pytest.mark.skipif(not compile_available("cpu"), reason="torch.compile needs a C++ compiler")
@pytest.mark.skipif(
    os.environ.get("LAMMPS_PHASE_SLOW_TESTS") != "1", reason="compiles kernels (~20-60 s); set LAMMPS_PHASE_SLOW_TESTS=1"
)
def test_compiled_kernels_match_reference(checkpoint, angles_checkpoint, triclinic_quartz):
    pos, cell, symbols = triclinic_quartz
    ref = Classifier(checkpoint, device="cpu", fast=False)
    comp = Classifier(checkpoint, device="cpu", fast="compile")
    assert comp.fast.compiled
    a, b = reference_and_fast_logits(ref, comp, pos, cell, symbols)
    assert float((a - b).abs().max()) < 1e-4
    angles_ref = Classifier(angles_checkpoint, device="cpu", fast=False)
    angles_comp = Classifier(angles_checkpoint, device="cpu", fast="compile")
    a, b = reference_and_fast_logits(angles_ref, angles_comp, pos, cell, symbols)
    assert float((a - b).abs().max()) < 1e-4
    # a second, different size reuses the compiled code (dynamic shapes): fast, no recompilation
    half = len(pos) // 2 + 7
    sp = torch.as_tensor(ref.species_indices(symbols))
    nl = knn(pos, K, cell=cell)
    t0 = time.perf_counter()
    comp.fast(sp[:half], torch.as_tensor(nl.index[:half] % half), torch.as_tensor(nl.vectors[:half]))
    assert time.perf_counter() - t0 < 5.0


def test_fast_path_refuses_models_it_cannot_reproduce(checkpoint):
    model = checkpoint.build()
    with torch.no_grad():
        model.convs[0].lin_self.weight.mul_(2.0)
    fast = FastPhaseNet(model, compile=False, verify=False)
    # corrupt the fast copy: verification must notice the disagreement
    fast.layers[1].w_i.mul_(3.0)
    with pytest.raises(LammpsPhaseError, match="disagrees"):
        fast._verify(model)


# ------------------------------------------------------------------------------------------- neighbours


def test_classifier_with_reuse_labels_like_fresh_search(checkpoint, triclinic_quartz):
    pos, cell, symbols = triclinic_quartz
    insitu = Classifier(checkpoint, device="cpu", reuse_neighbors=True)
    fresh = Classifier(checkpoint, device="cpu")
    rng = np.random.default_rng(1)
    for step in range(3):
        x = pos + rng.normal(scale=0.01 * (step + 1), size=pos.shape)
        assert np.array_equal(insitu.classify(x, cell, symbols).labels, fresh.classify(x, cell, symbols).labels)
    assert insitu.neighbor_cache.reuses >= 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_fast_path_on_cuda_matches_cpu_reference(checkpoint, triclinic_quartz):
    pos, cell, symbols = triclinic_quartz
    ref = Classifier(checkpoint, device="cpu", fast=False)
    gpu = Classifier(checkpoint, device="cuda", fast="auto")
    a, b = reference_and_fast_logits(ref, gpu, pos, cell, symbols)
    assert float((a - b.cpu()).abs().max()) < 1e-4


@pytest.mark.parametrize("kernel, args", [
    ("_bond_order", (6, [6, 16], torch.ones(12), torch.zeros(12))),
    ("_edge_angles", (4, 6)),
    ("_scaled_distances", (True,)),
])
def test_per_atom_kernels_compile_once_for_every_sample_size(kernel, args):
    """dynamic=True must hold: a kernel that specialised on the atom count would recompile (seconds each) for
    every new sample size — every frame of a local-mode run, every file of a different size."""
    graphs = []

    def counting_backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    torch._dynamo.reset()
    compiled = torch.compile(getattr(kernels, kernel), dynamic=True, backend=counting_backend)
    for n in (100, 157, 230, 1000):
        compiled(torch.randn(n, 16, 3), *args)
    assert len(graphs) == 1, f"{kernel} was traced {len(graphs)} times for 4 sample sizes"


@pytest.mark.parametrize("pool", ["max", "max_mean", "max_plus_mean"])
@pytest.mark.parametrize("geo", ["angles4", "vectors", "none"])
def test_both_forms_of_the_edge_kernel_agree(angles_checkpoint, checkpoint, geo, pool):
    """The per-neighbour form (what the compiler gets) and the whole-array form (what runs eager) are one equation:
    checked here without compiling, so CI covers the compiled path's maths too."""

    ckpt = angles_checkpoint if geo == "angles4" else checkpoint
    fast = FastPhaseNet(Classifier(ckpt, device="cpu", fast=False).model, compile=False)
    layer = fast.layers[0]
    g = torch.Generator().manual_seed(0)
    n, k, c_in = 50, K, fast.embed.shape[1] + (fast.bond_order[0].shape[0] if fast.bond_order else 0)
    h = torch.randn(n, c_in, generator=g)
    channels = layer.w_i.shape[0]
    v = torch.randn(n, channels, generator=g) if layer.w_j is not None else None
    index = torch.randint(0, n, (n, k), generator=g)
    dims = 4 if geo == "angles4" else 3
    geometry = torch.randn(n, k, dims, generator=g)
    sdist = torch.rand(n, k, generator=g) * 3
    inv_scale = torch.rand(n, 1, generator=g) + 0.5
    w_geo_t = layer.w_geo_t if geo != "none" else None
    args = (h, layer.w_i, layer.bias, v, index, geometry, sdist, inv_scale, w_geo_t, layer.table, layer.inv_step,
            layer.mlp)
    loop = kernels._edge_conv(*args, geo=geo, pool=pool)
    whole = kernels._edge_conv_batched(*args, geo=geo, pool=pool)
    assert loop.shape == whole.shape == (n, channels * (2 if pool == "max_mean" else 1))
    assert float((loop - whole).abs().max()) < 1e-5 and float(loop.std()) > 0.01


@pytest.mark.skipif(not compile_available("cpu"), reason="torch.compile needs a C++ compiler")
def test_warm_up_compiles_every_kernel_variant_a_labelling_needs(checkpoint):
    """In situ, nothing may compile inside the MD loop: after warm_up, whole samples (one chunk or several, any size)
    and halo calls (local mode) run the kernels traced there (torch._dynamo counts every graph it compiles)."""
    from torch._dynamo.utils import counters

    fast = FastPhaseNet(checkpoint.build(), compile=True, chunk=200, compile_after_atoms=0)
    fast.warm_up()
    traced = counters["stats"]["unique_graphs"]
    assert traced > 0
    for rows, halo in [(150, 0), (530, 0), (90, 40), (450, 120), (77, 0)]:
        species, index, vectors = fast._random_graph(rows + halo, seed=rows)
        if halo:
            fast(species, index[:rows].clone(), vectors[:rows].clone(), halo=lambda h, n=halo: h[:n].clone())
        else:
            fast(species, index, vectors)
    assert counters["stats"]["unique_graphs"] == traced


def test_large_samples_release_memory_between_search_and_network(monkeypatch, checkpoint, triclinic_quartz):
    from lammps_phase.inference import classify

    calls = []
    monkeypatch.setattr(classify.runtime, "release_free_memory", lambda: calls.append(1) or True)
    clf = Classifier(checkpoint, device="cpu")
    pos, cell, symbols = triclinic_quartz
    first = clf.classify(pos, cell, symbols)
    assert calls == []  # a small sample: not worth it
    monkeypatch.setattr(classify, "RELEASE_MEMORY_ATOMS", len(pos))
    again = clf.classify(pos, cell, symbols)
    assert calls == [1] and np.array_equal(first.labels, again.labels)
