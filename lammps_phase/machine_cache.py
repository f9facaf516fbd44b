"""Where lammps-phase keeps what it builds once per machine: the network's kernels and the native libraries.

Torch-free, so the compiled neighbour search can find its folder without importing torch. Both folders may be
moved with an environment variable; by default they sit side by side in ~/.cache/lammps-phase.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["KERNEL_CACHE_ENV", "NATIVE_CACHE_ENV", "kernel_dir", "native_dir"]

KERNEL_CACHE_ENV = "LAMMPS_PHASE_KERNEL_CACHE"
NATIVE_CACHE_ENV = "LAMMPS_PHASE_NATIVE_CACHE"


def kernel_dir() -> Path:
    """The network's kernels built ahead of time: $LAMMPS_PHASE_KERNEL_CACHE, else ~/.cache/lammps-phase/kernels."""
    env = os.environ.get(KERNEL_CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "lammps-phase" / "kernels"


def native_dir() -> Path:
    """Compiled C helpers: $LAMMPS_PHASE_NATIVE_CACHE, else ``native`` beside :func:`kernel_dir`."""
    env = os.environ.get(NATIVE_CACHE_ENV)
    return Path(env) if env else kernel_dir().parent / "native"
