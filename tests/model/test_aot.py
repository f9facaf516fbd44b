"""Ahead-of-time kernels (lammps_phase.model.aot): built once into the kernel cache, then found by every new
evaluator of the same model, which runs them from its first call without compiling and gives the eager path's
logits (whole samples, halo calls, row chunks passed in place); another model misses the cache; eager stays eager
when asked."""

from __future__ import annotations

import pytest

from conftest import make_random_checkpoint
from lammps_phase.model import aot, geometry_kernel
from lammps_phase.model import checkpoint as ckpt_io
from lammps_phase.model.fastpath import FastPhaseNet, compile_available

pytestmark = pytest.mark.skipif(not compile_available("cpu"), reason="building kernels needs a C++ compiler")


@pytest.mark.parametrize("geometry", ["torch", "native"])
def test_kernels_built_ahead_of_time_are_found_and_agree_with_eager(tmp_path, monkeypatch, geometry):
    """With the graph geometry from the torch kernels every step is built; with the C geometry
    (lammps_phase.model.geometry_kernel) only the layers and the head are, and nothing else is needed."""
    from pathlib import Path

    from torch._dynamo.utils import counters

    monkeypatch.setenv(aot.KERNEL_CACHE_ENV, str(tmp_path / "kernels"))
    monkeypatch.setenv(geometry_kernel.GEOMETRY_ENV, "torch" if geometry == "torch" else "")
    model = ckpt_io.load(make_random_checkpoint(tmp_path / "m.pt", edge_geometry="angles")).build()
    builder = FastPhaseNet(model, compile="auto")
    if geometry == "native" and builder.geometry is None:
        pytest.skip("the C geometry does not build here")
    assert builder.aot is None  # an empty cache
    built = builder.build_kernels()
    assert all(path.endswith(".pt2") for path, _ in built)
    names = {Path(path).name.split("-")[0] for path, _ in built}
    if geometry == "torch":
        assert names == {"bond_order", "edge_angles", "scaled_distances", "edge_conv", "head"}
    else:
        assert names == {"edge_conv", "head"}
    assert builder.kernel_kind == "ahead-of-time"

    fresh = FastPhaseNet(model, compile="auto")  # e.g. a new process: found in the cache, used at once
    assert fresh.kernel_kind == "ahead-of-time"
    eager = FastPhaseNet(model, compile=False)
    assert eager.aot is None and eager.kernel_kind == "eager"
    chunked = FastPhaseNet(model, compile="auto", chunk=100)  # row chunks at an offset go to the kernels in place
    traced = counters["stats"]["unique_graphs"]
    for rows, halo in [(150, 0), (90, 40), (333, 0)]:
        species, index, vectors = fresh._random_graph(rows + halo, seed=rows)
        index, vectors = index[:rows].clone(), vectors[:rows].clone()
        extra = {"halo": (lambda h, n=halo: h[:n].clone())} if halo else {}
        got, want = fresh(species, index, vectors, **extra), eager(species, index, vectors, **extra)
        assert got.shape == (rows, want.shape[1])
        assert float((got - want).abs().max()) < 1e-4
        assert float((chunked(species, index, vectors, **extra) - want).abs().max()) < 1e-4
    assert counters["stats"]["unique_graphs"] == traced  # nothing was compiled: the packages ran

    other = ckpt_io.load(make_random_checkpoint(tmp_path / "o.pt", channels=(24, 24, 24))).build()
    assert FastPhaseNet(other, compile="auto").aot is None  # other widths: other kernels, not built
