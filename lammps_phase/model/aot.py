"""Ahead-of-time fused kernels: each kernel a model calls, exported once and compiled to a shared library.

``torch.compile`` traces and compiles the fused kernels of :mod:`lammps_phase.model.kernels` anew in every
process (10–60 s), which a one-off ``lammps-phase classify`` cannot amortise and an in-situ labeler must pay
before its run. Here each kernel, with the arguments one model passes it, is exported (``torch.export``, row
counts dynamic) and compiled by AOTInductor into a package in the kernel cache, once per machine
(``lammps-phase kernels CHECKPOINT``); every later
process loads the package in milliseconds and runs the same generated code that ``torch.compile`` would.

A package is found by a key: the kernel's name, the torch version, the device type, a hash of the kernel source
files, and per argument its dtype and the shape with the dynamic dimensions left out (tensors) or its value
(everything else). A change to any of them, e.g. an edited kernel, simply misses the cache.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from lammps_phase import machine_cache

__all__ = ["KERNEL_CACHE_ENV", "build", "cache_dir", "kernel_key", "load"]

KERNEL_CACHE_ENV = machine_cache.KERNEL_CACHE_ENV
_SOURCES = ("kernels.py", "features.py", "folded.py")  # the code the kernels run
#: per kernel: the dimensions of its positional tensor arguments that vary between calls, by name
DYNAMIC: dict[str, dict[int, dict[int, str]]] = {
    "scaled_distances": {0: {0: "rows"}},
    "bond_order": {0: {0: "rows"}},
    "edge_angles": {0: {0: "rows"}},
    # h (rows, width), W_i (C, width), v (atoms, C), index / geometry / s_ij / 1/s_i (rows, ...), w(s) table (grid, C)
    "edge_conv": {0: {0: "rows", 1: "width"}, 1: {1: "width"}, 3: {0: "atoms"}, 4: {0: "rows"}, 5: {0: "rows"},
                  6: {0: "rows"}, 7: {0: "rows"}, 9: {0: "grid"}},
    "head": {0: {0: "rows"}},
}
#: sizes of the example inputs: distinct from each other and from every static size, so export keeps them apart
_EXAMPLE = {"rows": 97, "atoms": 131, "width": 37, "grid": 211}
_LOADED: dict[str, Callable] = {}


def cache_dir() -> Path:
    """Where packages live: $LAMMPS_PHASE_KERNEL_CACHE, else ~/.cache/lammps-phase/kernels."""
    return machine_cache.kernel_dir()


@functools.lru_cache(maxsize=None)
def _source_hash() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha1()
    for name in _SOURCES:
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:12]


def _describe(name: str, position: int, arg: Any) -> str:
    dynamic = DYNAMIC.get(name, {}).get(position, {})
    if isinstance(arg, torch.Tensor):
        shape = ",".join("*" if d in dynamic else str(s) for d, s in enumerate(arg.shape))
        return f"{arg.dtype}[{shape}]"
    if isinstance(arg, (list, tuple)):
        return "(" + ";".join(_describe(name, -1, a) for a in arg) + ")"
    return repr(arg)


def kernel_key(name: str, args: Sequence[Any], kwargs: dict, device: torch.device) -> Optional[str]:
    """The cache key of one kernel call, or None when it cannot be exported (a kernel without a dynamic-shape
    table, or arguments the wrapper cannot flatten)."""
    if name not in DYNAMIC or any(isinstance(a, dict) for a in args):
        return None
    parts = [name, torch.__version__, device.type, _source_hash(), torch.backends.cpu.get_cpu_capability()]
    parts += [_describe(name, i, a) for i, a in enumerate(args)]
    parts += [f"{k}={_describe(name, -1, v)}" for k, v in sorted(kwargs.items())]
    return f"{name}-" + hashlib.sha1("|".join(parts).encode()).hexdigest()[:20]


def _flatten(args: Sequence[Any]) -> tuple[list[torch.Tensor], list[tuple[int, int]], Callable]:
    """Tensors of the arguments (top level and inside lists/tuples), where each came from (position, index in
    its list or −1), and a function rebuilding the arguments from new tensors in the same order."""
    tensors, origin = [], []
    for i, a in enumerate(args):
        if isinstance(a, torch.Tensor):
            tensors.append(a)
            origin.append((i, -1))
        elif isinstance(a, (list, tuple)):
            for j, b in enumerate(a):
                if isinstance(b, torch.Tensor):
                    tensors.append(b)
                    origin.append((i, j))

    def rebuild(new: Sequence[torch.Tensor]) -> list[Any]:
        out = [list(a) if isinstance(a, (list, tuple)) else a for a in args]
        for t, (i, j) in zip(new, origin):
            if j < 0:
                out[i] = t
            else:
                out[i][j] = t
        return [type(args[i])(o) if isinstance(args[i], tuple) else o for i, o in enumerate(out)]

    return tensors, origin, rebuild


def load(key: str) -> Optional[Callable]:
    """The built kernel of this :func:`kernel_key`, loaded (once per process), or None if it is not in the cache.
    It takes the call's arguments as the kernel does."""
    if key not in _LOADED:
        path = cache_dir() / f"{key}.pt2"
        if not path.is_file():
            return None
        try:
            # the package's C++ loader itself: torch._inductor.aoti_load_package wraps the same, but importing
            # torch._inductor costs 3 s, more than a one-off classification of 10⁵ atoms
            _LOADED[key] = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1)
        except Exception as err:  # noqa: BLE001 - a package this torch cannot load is a cache miss, said once
            warnings.warn(f"kernel package {path} does not load ({type(err).__name__}: {err}); "
                          "rebuild with `lammps-phase kernels`", RuntimeWarning, stacklevel=2)
            return None
    package = _LOADED[key]

    def run(*call_args: Any) -> Any:
        out = package.boxed_run(list(_flatten(call_args)[0]))  # a flat list: one tensor, or a tuple's tensors
        return out[0] if len(out) == 1 else tuple(out)

    return run


def build(name: str, fn: Callable, args: Sequence[Any], kwargs: dict, device: torch.device) -> Optional[Path]:
    """Export ``fn`` for calls like this one (rows dynamic) and compile it into the cache; the package path, or None
    when this call cannot be exported (see :func:`kernel_key`). Written under a temporary name and renamed, so
    concurrent builders (several MPI ranks) and interrupted builds never leave a broken package."""
    key = kernel_key(name, args, kwargs, device)
    if key is None:
        return None
    path = cache_dir() / f"{key}.pt2"
    if path.is_file():
        return path
    example = _example_args(name, args, device)
    tensors, origin, rebuild = _flatten(example)
    dynamic = DYNAMIC[name]
    dims = {d: torch.export.Dim(d, min=2) for d in _EXAMPLE}
    shapes = [{axis: dims[label] for axis, label in dynamic.get(i, {}).items()} if j < 0 else None
              for i, j in origin]

    class Kernel(torch.nn.Module):
        def forward(self, *new: torch.Tensor) -> Any:
            return fn(*rebuild(new), **kwargs)

    program = torch.export.export(Kernel(), tuple(tensors), dynamic_shapes=(tuple(s or None for s in shapes),))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key}.", suffix=".pt2")
    os.close(handle)
    try:
        torch._inductor.aoti_compile_and_package(program, package_path=tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache may serve other users of the machine
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _example_args(name: str, args: Sequence[Any], device: torch.device) -> list[Any]:
    """The call's arguments with every dynamic dimension resized to its example size (fresh random values;
    integer tensors, i.e. neighbour indices, drawn below the example atom count)."""
    dynamic = DYNAMIC[name]
    g = torch.Generator().manual_seed(0)
    out = list(args)
    for i, labels in dynamic.items():
        a = args[i]
        if not isinstance(a, torch.Tensor):
            continue
        shape = [(_EXAMPLE[labels[d]] if d in labels else s) for d, s in enumerate(a.shape)]
        if a.dtype.is_floating_point:
            value = torch.rand(shape, generator=g, dtype=a.dtype) + 0.5
        else:
            value = torch.randint(0, _EXAMPLE["atoms"], shape, generator=g, dtype=a.dtype)
        out[i] = value.to(device)
    return out
