"""Where a process runs: rank and job size from the launcher's variables, and its share of the cores."""

import os

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
