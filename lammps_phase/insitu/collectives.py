"""What the ranks of an in-situ labeler do together: agree on errors, stop as one, wait without spinning,
and lend rank 0 the cores of the ranks that only wait for it.

Every function named collective here must be called by all ranks at once, or the run hangs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time
from typing import Any, Iterator, Optional

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.insitu.lammps_glue import write_log_line

__all__ = ["Stop", "agree", "announce", "describe", "node_cpus", "node_device", "on_cpus", "quiet_barrier", "stop"]


class Stop(Exception):
    """Raised on every rank after the error was reported once; becomes a LammpsPhaseError in the labeler."""


def describe(err: BaseException) -> str:
    """One line for an error: our own messages as they are, anything else prefixed by its type."""
    text = " ".join(str(err).split())
    return text if isinstance(err, LammpsPhaseError) else f"{type(err).__name__}: {text}"


def announce(lmp: Any, rank: int, message: str) -> None:
    """One line on the screen (rank 0); through LAMMPS' print (screen and log) when outside a run."""
    if not lmp.is_running:
        lmp.command(f'print """{message}"""')
    elif rank == 0:
        print(message, flush=True)


def stop(lmp: Any, comm: Any, message: str) -> None:
    """Collective: report on rank 0, then raise on every rank so LAMMPS stops them all.

    Outside a run LAMMPS answers a Python error with MPI_Abort, which can kill rank 0 before its log is
    written; so the report is flushed to the file system and the ranks wait for each other first.
    """
    rank = comm.Get_rank()
    if not lmp.is_running:
        lmp.command(f'print """ERROR: lammps-phase: {message}"""')
    elif rank == 0:
        print(f"ERROR: lammps-phase: {message}", file=sys.stderr, flush=True)
        write_log_line(f"ERROR: lammps-phase: {message}")  # LAMMPS takes no commands during a run
    sys.stdout.flush()
    ctypes.CDLL(None).fflush(None)  # LAMMPS' screen and log FILE streams
    comm.Barrier()
    raise Stop(message)


def agree(lmp: Any, comm: Any, error: Optional[str]) -> None:
    """Collective: if any rank hit an error, every rank stops with the first rank's message."""
    errors = [e for e in comm.allgather(error) if e is not None]
    if errors:
        stop(lmp, comm, errors[0])


def quiet_barrier(comm: Any, sleep: bool, interval: float = 2e-4) -> None:
    """Collective: a barrier that, where ``sleep``, waits in short sleeps: MPI's own wait spins and would
    hold the core that rank 0 is borrowing."""
    request = comm.Ibarrier()
    if not sleep:
        request.Wait()
        return
    while not request.Test():
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------- CPU borrowing


def node_cpus(comm: Any) -> Optional[frozenset]:
    """Collective: on rank 0, the union of the CPU sets of all ranks on its node (None elsewhere or off Linux)."""
    from mpi4py import MPI

    try:
        mine = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: no affinity control, threads stay as they are
        mine = []
    everyone = comm.gather((MPI.Get_processor_name(), mine), root=0)
    if comm.Get_rank() != 0 or not mine:
        return None
    host = everyone[0][0]
    return frozenset(c for name, cores in everyone if name == host for c in cores)


def node_device(comm: Any) -> str:
    """"cuda:<node-local rank modulo the GPUs>" (one GPU per rank, round robin), or "cpu" without CUDA.
    Collective where CUDA is available."""
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    from mpi4py import MPI

    node_rank = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()
    return f"cuda:{node_rank % torch.cuda.device_count()}"


@contextlib.contextmanager
def on_cpus(cpus: Optional[frozenset]) -> Iterator[None]:
    """Run the calling thread (and the threads it starts) on ``cpus``, then return it to its own cores."""
    if not cpus:
        yield
        return
    own = os.sched_getaffinity(0)
    if own == cpus:
        yield
        return
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, own)


def choose_mode(lmp: Any, comm: Any, mode: str, auto_local_atoms: int) -> tuple[str, str]:
    """The labeler's mode and, for mode="auto", why (printed once): local on more than one rank from
    ``auto_local_atoms`` atoms on, else gather. Collective."""
    if mode != "auto":
        return mode, ""
    from mpi4py import MPI

    size = comm.Get_size()
    nodes = len(set(comm.allgather(MPI.Get_processor_name())))
    atoms = int(lmp.get_natoms())
    where = f"{atoms} atoms on {size} rank(s), {nodes} node(s)"
    if size == 1:
        return "gather", f" (auto: {where}; one rank labels its whole periodic box)"
    if atoms >= auto_local_atoms:
        return "local", f" (auto: {where}, >= {auto_local_atoms} atoms: each rank labels its own)"
    return "gather", f" (auto: {where}, < {auto_local_atoms} atoms: rank 0 labels all, borrowing the node's cores)"
