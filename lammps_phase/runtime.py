"""Where this process runs: its MPI rank and job size as the launcher announced them, its share of the cores, and
handing freed memory back to the system.

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


def release_free_memory() -> bool:
    """Give memory the process has freed back to the system (glibc ``malloc_trim``); False where the C library has
    no such call. Why: the temporaries of a large neighbour search, once freed, stay in the process's heap
    (≈ 0.1 kB per atom) right before the network's peak, whose large tensors are mapped afresh and never reuse
    them."""
    global _LIBC
    try:
        if _LIBC is None:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _LIBC.malloc_trim(ctypes.c_size_t(0))
        return True
    except (OSError, AttributeError):
        return False
