"""Where a process runs: rank and job size from the launcher's variables, and its share of the cores."""

import os
import sys

import pytest
import torch

from lammps_phase import runtime
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.runtime import default_threads, set_threads

LAUNCHER_VARIABLES = runtime.WORLD_RANK + runtime.WORLD_SIZE + runtime.LOCAL_RANK + runtime.LOCAL_SIZE


@pytest.fixture
def no_launcher(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_outside_a_launcher_this_is_rank_0_of_1(no_launcher):
    assert (runtime.world_rank(), runtime.world_size(), runtime.local_rank(), runtime.local_size()) == (0, 1, 0, 1)


@pytest.mark.parametrize("launcher", [
    {"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "8", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
     "OMPI_COMM_WORLD_LOCAL_SIZE": "4"},
    {"PMI_RANK": "3", "PMI_SIZE": "8", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "4"},
    {"PMIX_RANK": "3", "PMIX_SIZE": "8", "SLURM_LOCALID": "1", "SLURM_NTASKS_PER_NODE": "4"},
])
def test_every_launcher_is_read_the_same(no_launcher, launcher):
    for name, value in launcher.items():
        no_launcher.setenv(name, value)
    assert (runtime.world_rank(), runtime.world_size(), runtime.local_rank(), runtime.local_size()) == (3, 8, 1, 4)


def test_threads_follow_the_cores_of_this_process(no_launcher):
    before = torch.get_num_threads()
    try:
        assert 1 <= default_threads() <= (os.cpu_count() or 1)
        assert set_threads(1) == 1 and torch.get_num_threads() == 1
        with pytest.raises(LammpsPhaseError, match="threads"):
            set_threads(0)
        no_launcher.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", str(64 * (os.cpu_count() or 1)))
        assert default_threads() == 1  # many ranks sharing the node: never below one thread, never above the share
    finally:
        torch.set_num_threads(before)


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _holes_in_the_heap(libc, blocks: int = 400, size: int = 160_000) -> list:
    """Touched blocks side by side, every other one freed: free() keeps such holes resident (it trims only the heap's
    top). Returns the live ones."""
    import ctypes

    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free(libc.malloc(2 * size))  # freeing a mapped block raises glibc's mmap threshold: the blocks go on the heap
    allocated = []
    for _ in range(blocks):
        allocated.append(libc.malloc(size))
        ctypes.memset(allocated[-1], 1, size)
    for block in allocated[::2]:
        libc.free(block)
    return allocated[1::2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_heap_memory_goes_back_to_the_system():
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    live = _holes_in_the_heap(libc)
    before = _resident_bytes()
    assert runtime.release_free_memory() is True
    released = before - _resident_bytes()
    for block in live:
        libc.free(block)
    assert released > 20 * 2**20  # of the 32 MB in holes


_FREED_BLOCK = """
import ctypes, sys
from lammps_phase import runtime
def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
tuned = runtime.tune_heap()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 24 * 2**20  # a labelling temporary of ~10^5 atoms
block = libc.malloc(size)
ctypes.memset(block, 1, size)
before = resident()
libc.free(block)
print(tuned, before - resident())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.parametrize("setting", ["", "default"])
def test_a_tuned_heap_keeps_a_freed_labelling_temporary_for_the_next_call(setting):
    """Tuned, a freed 24 MB block stays in the process for reuse (no fresh pages to fault in next call); with
    LAMMPS_PHASE_HEAP=default glibc maps such a block and hands it back at once, as it always did."""
    import subprocess

    env = dict(os.environ, **{runtime.HEAP_ENV: setting})
    out = subprocess.run([sys.executable, "-c", _FREED_BLOCK], env=env, capture_output=True, text=True, check=True)
    tuned, returned = out.stdout.split()
    if setting == "default":
        assert tuned == "False" and int(returned) > 20 * 2**20
    else:
        assert tuned == "True" and int(returned) < 2**20
