"""Where this process runs: its MPI rank and job size as the launcher announced them, its share of the cores, and
how its heap treats the labelling's large temporaries (kept for the next call, or handed back to the system).

Read from the environment, never from MPI itself: the LAMMPS-embedded interpreter and the heating workers must
know their rank before (or without) initialising MPI. One place for the launcher variables of Open MPI, MPICH,
PMIx, MVAPICH and Slurm.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Optional, Sequence, Union

WORLD_RANK = ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK")
WORLD_SIZE = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")
LOCAL_RANK = ("OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID")
LOCAL_SIZE = ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE", "MV2_COMM_WORLD_LOCAL_SIZE")


def _first_count(names: Sequence[str], default: int) -> int:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return default


def world_rank() -> int:
    """This process's rank in its MPI job (0 when not started by a launcher)."""
    return _first_count(WORLD_RANK, 0)


def world_size() -> int:
    """Ranks in this process's MPI job (1 when not started by a launcher)."""
    return max(1, _first_count(WORLD_SIZE, 1))


def local_size() -> int:
    """Ranks of this job on this node (1 when unknown)."""
    return max(1, _first_count(LOCAL_SIZE, 1))


def local_rank() -> int:
    """This process's rank on its node, as the launchers publish it (0 outside MPI)."""
    return _first_count(LOCAL_RANK, 0)


def default_threads() -> int:
    """Cores this process may use: its CPU affinity, shared among MPI ranks on the node if they share it.

    With ``mpirun --bind-to core`` each rank's affinity is already its own cores; without binding every
    rank sees all cores, so they are divided by the node-local rank count to avoid oversubscription.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    local = local_size()
    if local > 1 and cores >= (os.cpu_count() or cores):
        cores = cores // local
    return max(1, cores)


def set_threads(threads: Union[int, str, None]) -> int:
    """Set torch's intra-op threads: an int, "auto" (:func:`default_threads`), or None (leave as is)."""
    import numpy as np
    import torch

    from lammps_phase.errors import LammpsPhaseError

    if threads is None:
        return torch.get_num_threads()
    if threads == "auto":
        n = default_threads()
    elif isinstance(threads, (int, np.integer)) and not isinstance(threads, bool) and threads >= 1:
        n = int(threads)
    else:
        raise LammpsPhaseError(f"threads must be a positive integer, 'auto' or None, not {threads!r}")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


_LIBC: Optional[ctypes.CDLL] = None
#: LAMMPS_PHASE_HEAP=default leaves the C library's heap settings alone (see tune_heap)
HEAP_ENV = "LAMMPS_PHASE_HEAP"
HEAP_MMAP_THRESHOLD = 32 * 2**20  # blocks up to this size come from the heap and are reused between labellings
HEAP_TRIM_THRESHOLD = 256 * 2**20  # free heap kept for reuse; beyond it glibc hands memory back as usual
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_HEAP_TUNED: Optional[bool] = None


def _libc() -> ctypes.CDLL:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return _LIBC


def tune_heap() -> bool:
    """Keep the labelling's large temporaries in the heap between calls (glibc ``mallopt``; once per process);
    False where the C library has no such call or LAMMPS_PHASE_HEAP=default.

    Why: by default glibc maps every block above a threshold (128 kB, rising to at most 32 MB as blocks are freed)
    afresh and trims the heap's free top at twice it, so the 10-30 MB tensors of a 10⁵-atom labelling are mapped,
    zero-filled and faulted in page by page on every call: 0.2-0.3 µs per atom, 10 % of the call. With a fixed
    32 MB mapping threshold and a 256 MB trim threshold they are reused. Blocks above 32 MB (samples of several
    10⁵ atoms) are still mapped and returned at once, so the peak of a 10⁶-atom call is unchanged; the process
    keeps up to 256 MB of freed heap between labellings."""
    global _HEAP_TUNED
    if _HEAP_TUNED is None:
        _HEAP_TUNED = False
        if os.environ.get(HEAP_ENV, "").strip().lower() != "default":
            try:
                mallopt = _libc().mallopt
                _HEAP_TUNED = bool(mallopt(_M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD)) and bool(
                    mallopt(_M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD))
            except (OSError, AttributeError):
                pass
    return _HEAP_TUNED


def release_free_memory() -> bool:
    """Give memory the process has freed back to the system (glibc ``malloc_trim``); False where the C library has
    no such call. Why: the temporaries of a large neighbour search, once freed, stay in the process's heap
    (≈ 0.1 kB per atom) right before the network's peak, whose large tensors are mapped afresh and never reuse
    them."""
    try:
        _libc().malloc_trim(ctypes.c_size_t(0))
        return True
    except (OSError, AttributeError):
        return False
