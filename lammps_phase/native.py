"""C helpers built at first use: the compiler call, the per-machine cache they live in, and loading them.

Every C file of lammps-phase (the neighbour search and training-domain screen of :mod:`lammps_phase.inference`, the
graph geometry of :mod:`lammps_phase.model.geometry_kernel`) is compiled with the system compiler (``$CC``, else
``cc``) and OpenMP into ``$LAMMPS_PHASE_NATIVE_CACHE``, else ``~/.cache/lammps-phase/native``; a library's name
hashes its source, the compiler and flags and the platform, so an edit or another machine simply misses. Without a
working compiler :class:`NativeLibrary` warns once and the caller keeps its Python path.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shlex
import subprocess
import warnings
from pathlib import Path
from typing import Callable, Optional

from lammps_phase import machine_cache
from lammps_phase.atomic_write import atomic_path

__all__ = ["NATIVE_CACHE_ENV", "NativeLibrary", "build", "cache_dir"]

NATIVE_CACHE_ENV = machine_cache.NATIVE_CACHE_ENV
_FLAGS = ("-O3", "-fopenmp", "-shared", "-fPIC", "-std=c99")
_WARNED: set[str] = set()  # failures already warned about, by message


def cache_dir() -> Path:
    """$LAMMPS_PHASE_NATIVE_CACHE, else ``native`` beside the kernel cache (~/.cache/lammps-phase/native)."""
    return machine_cache.native_dir()


def _compiler() -> list[str]:
    return shlex.split(os.environ.get("CC", "").strip() or "cc")


@functools.lru_cache(maxsize=None)
def _key(source: Path, compiler: tuple[str, ...]) -> str:
    """Hash of the C source, the compiler command and flags, and the platform: the library's name in the cache."""
    parts = [source.read_bytes(), " ".join(compiler + _FLAGS).encode(),
             f"{platform.system()}-{platform.machine()}".encode()]
    return hashlib.sha1(b"\0".join(parts)).hexdigest()[:16]


def build(source: Path, compile_missing: bool = True) -> Optional[Path]:
    """The shared library of a C file (``_name.c``) in the native cache, ``name-<hash>.so``, compiled there with
    $CC (else ``cc``) and OpenMP when missing; None when missing and not ``compile_missing``. Raises (OSError, ...)
    when it cannot be built."""
    compiler = _compiler()
    path = cache_dir() / f"{source.stem.lstrip('_')}-{_key(source, tuple(compiler))}.so"
    if not path.is_file():
        if not compile_missing:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            proc = subprocess.run([*compiler, *_FLAGS, str(source), "-o", str(tmp), "-lm"],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise OSError(f"{' '.join(compiler)} failed: {proc.stderr.strip()[-500:]}")
    return path


class NativeLibrary:
    """A C file, built into the native cache at first use (:func:`build`) and loaded with
    ``configure`` setting its ctypes signatures. When it cannot be built, ``failure`` keeps why and one warning
    says it, naming ``fallback`` (what serves instead) — unless ``quiet()`` says another helper already did."""

    def __init__(self, source: Path, configure: Callable[[ctypes.CDLL], None], what: str, fallback: str,
                 quiet: Callable[[], bool] = lambda: False) -> None:
        self.source, self.configure, self.what, self.fallback, self.quiet = source, configure, what, fallback, quiet
        self.failure: Optional[str] = None
        self._loaded: dict[str, ctypes.CDLL] = {}  # by path: the cache folder may change between calls

    def get(self) -> Optional[ctypes.CDLL]:
        """The loaded library; None when it cannot be built (or once it failed, unless already in the cache)."""
        try:
            path = build(self.source, compile_missing=self.failure is None)
            if path is None:
                return None
            if str(path) not in self._loaded:
                lib = ctypes.CDLL(str(path))
                self.configure(lib)
                self._loaded[str(path)] = lib
            return self._loaded[str(path)]
        except Exception as err:  # noqa: BLE001 - no compiler, a failed build or an unwritable cache: fallback
            if self.failure is None:
                self.failure = f"{type(err).__name__}: {err}"
                if not self.quiet() and self.failure not in _WARNED:  # one warning per cause (no compiler: one)
                    _WARNED.add(self.failure)
                    warnings.warn(f"{self.what} is unavailable ({self.failure}); {self.fallback}. Install a C compiler "
                                  "with OpenMP (e.g. `apt-get install gcc`) or point $CC at one",
                                  RuntimeWarning, stacklevel=4)
            return None
