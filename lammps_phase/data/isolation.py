"""Where a LAMMPS run executes: in this process, or in a child process that may die on a LAMMPS ERROR.

Debian's LAMMPS has no C++ exceptions: an ERROR ends the whole process. So in a serial caller each run is
executed in a child process (``python -m lammps_phase.data.isolation JOB``, optionally under
``mpirun -np ranks``) and an ERROR comes back as :class:`LammpsPhaseError` quoting the ERROR line of the run's
log. A caller that is itself an MPI job (``mpirun -np 2 python script.py``) runs in-process on all ranks; gathers
are collective, so every rank gets the same snapshots, and only rank 0 writes files.

A run is named by its kind ("heating", "slab", ...); :func:`implementation` finds its in-process function in
:mod:`lammps_phase.data.heating` (bulk runs) or :mod:`lammps_phase.data.variants` (slabs, strain, interfaces).
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lammps_phase import runtime
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.data.md_session import error_line, lammps_has_exceptions
from lammps_phase.data.potentials import Potential


@dataclass(frozen=True)
class CrystalData:
    """The part of a crystal a run needs, in a form that pickles into a child process."""

    name: str
    cell: np.ndarray
    positions: np.ndarray
    symbols: tuple[str, ...]

    @classmethod
    def of(cls, crystal: Any) -> "CrystalData":
        symbols = tuple(str(s) for s in crystal.symbols)
        positions = np.asarray(crystal.positions, dtype=float)
        if positions.shape != (len(symbols), 3):
            raise LammpsPhaseError(f"crystal has {len(symbols)} symbols but positions of shape {positions.shape}")
        return cls(str(getattr(crystal, "name", "crystal")), np.asarray(crystal.cell, dtype=float), positions, symbols)


def run_supercell(crystal: Any, min_length: float | None) -> Any:
    """The crystal repeated to at least ``min_length`` Å per axis (unchanged when ``min_length`` is falsy),
    near-orthogonal when possible."""
    if not min_length:
        return crystal
    from lammps_phase.data.structures import supercell

    try:
        return supercell(crystal, min_length, orthogonal=True)
    except LammpsPhaseError:  # no near-orthogonal choice of cell: LAMMPS takes the triclinic box
        return supercell(crystal, min_length, orthogonal=False)


def implementation(kind: str) -> Callable[..., Any]:
    """The in-process function of a run kind: bulk runs in heating, surfaces/strain/interfaces in variants."""
    from lammps_phase.data import heating

    if kind in heating.IMPLEMENTATIONS:
        return heating.IMPLEMENTATIONS[kind]
    from lammps_phase.data import variants

    if kind not in variants.IMPLEMENTATIONS:
        raise LammpsPhaseError(f"unknown run kind {kind!r}")
    return variants.IMPLEMENTATIONS[kind]


def dispatch(kind: str, kwargs: dict[str, Any], *, log_path: str | Path | None, isolate: bool | None,
             ranks: int) -> Any:
    """Run ``kind`` with ``kwargs`` in this process, or (``isolate``; default: when LAMMPS lacks exceptions and
    this is not an MPI job) in a child process on ``ranks`` MPI ranks; the crystal is first repeated to
    ``kwargs["supercell_min_length"]``. Returns what the run returns."""
    if isolate is None:
        isolate = not lammps_has_exceptions() and runtime.world_size() == 1
    kwargs = dict(kwargs)
    kwargs["crystal"] = CrystalData.of(run_supercell(kwargs["crystal"], kwargs.pop("supercell_min_length", None)))
    potential = kwargs.get("potential")
    if isolate and isinstance(potential, Potential):
        kwargs["potential"] = potential.name  # registry entries travel by name
    scratch = Path(tempfile.mkdtemp(prefix="lammps_phase_"))
    try:
        log = Path(log_path) if log_path else scratch / "log.lammps"
        log.parent.mkdir(parents=True, exist_ok=True)
        kwargs = {**kwargs, "log_path": log}
        if not isolate:
            return implementation(kind)(**kwargs)
        job, result = scratch / "job.pkl", scratch / "result.pkl"
        with open(job, "wb") as fh:
            pickle.dump({"kind": kind, "kwargs": kwargs, "result": str(result)}, fh)
        command = [sys.executable, "-m", "lammps_phase.data.isolation", str(job)]
        if ranks > 1:
            mpirun = shutil.which("mpirun")
            if mpirun is None:
                raise LammpsPhaseError("ranks > 1 needs mpirun on PATH; install openmpi-bin or use ranks=1")
            command = [mpirun, "--allow-run-as-root", "--oversubscribe", "-np", str(ranks), *command]
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0 or not result.exists():
            line = error_line(log)
            if line is None:
                output = (proc.stderr or proc.stdout or "").strip().splitlines()
                errors = [ln.strip() for ln in output if "Error" in ln or "ERROR" in ln]
                line = errors[-1] if errors else (" | ".join(output[-3:]) or f"exit status {proc.returncode}")
            where = f" (log: {log})" if log_path else ""
            phase = getattr(kwargs.get("crystal"), "name", "crystal")
            raise LammpsPhaseError(f"LAMMPS {kind} run of {phase} failed: {line}{where}")
        with open(result, "rb") as fh:
            payload = pickle.load(fh)
        if "error" in payload:
            raise LammpsPhaseError(payload["error"])
        return payload["result"]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _worker(job_path: str) -> None:
    """The child process: run the pickled job and pickle its result (or our own error) for the parent."""
    with open(job_path, "rb") as fh:
        job = pickle.load(fh)
    try:
        payload = {"result": implementation(job["kind"])(**job["kwargs"])}
    except LammpsPhaseError as exc:  # our own verdicts (e.g. "not liquid") travel back as such
        payload = {"error": str(exc)}
    if runtime.world_rank() == 0:
        with open(job["result"], "wb") as fh:
            pickle.dump(payload, fh)


if __name__ == "__main__":
    # run from the imported module, so that CrystalData, the run registry and the results are those of
    # lammps_phase.data.* rather than of a second copy of this module named __main__
    from lammps_phase.data.isolation import _worker as _module_worker

    _module_worker(sys.argv[1])
