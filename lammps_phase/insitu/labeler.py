'''In-situ phase labels inside LAMMPS: the callback for ``fix python/invoke`` (DESIGN.md §5).

Deck idiom (labels every 100 steps, written by ``dump custom``)::

    fix        phase all property/atom i_phase d_phase_conf
    python     phase_step input 1 SELF format p here """
    from lammps_phase.insitu import PhaseLabeler
    labeler = PhaseLabeler("checkpoints/sio2.pt", types="Si O")
    def phase_step(ptr): labeler(ptr)
    """
    python     phase_step invoke        # optional: label now, print the classes, define v_phase_* for thermo
    fix        label all python/invoke 100 end_of_step phase_step
    thermo_style custom step temp pe v_phase_alpha_quartz v_phase_other
    dump       d all custom 100 dump.phase id type x y z i_phase d_phase_conf

Why the optional ``python phase_step invoke`` line: LAMMPS checks ``thermo_style`` variables when the
command is read, and LAMMPS 29 Sep 2021 forbids commands from Python during a run, so the phase-fraction
variables can only be defined by a call outside a run. That call also labels the initial configuration
(step 0 dumps then hold real labels) and prints the class table to the screen and the log. Per class
``<name>`` it defines ``v_phase_<name>`` (fraction of all atoms, equal-style) and ``v_phase_other``;
their values are those of the latest labelling. ``${phase_thermo}`` expands to all of them, so
``thermo_style custom step temp pe ${phase_thermo}`` works whatever the model's classes are. Without
that line the class table goes to the screen only.

Text ``${name}`` in ``checkpoint`` and ``types`` is replaced by the LAMMPS variable ``name`` at the first
call (LAMMPS does not substitute inside the triple-quoted block), so ``-var checkpoint my.pt`` works.

Two modes, identical labels:

* ``mode="gather"`` (default): owned atoms of every rank are gathered to rank 0 with ``MPI Gatherv`` of
  numpy buffers, labelled there as one periodic sample (sorted by atom ID, so the result does not depend
  on the decomposition), and scattered back.
* ``mode="local"``: every rank labels its own atoms from its owned + ghost atoms, no communication but
  one small reduction. The model has no global pooling, so an atom's label depends only on atoms within
  ``receptive_hops`` k-NN hops; the ghost shell must hold them all. Each call checks this exactly (every
  atom within ``hops − 1`` hops of an owned atom must have its true k nearest neighbours inside the part
  of the ghost shell that is guaranteed complete); otherwise it stops with the ``comm_modify cutoff`` to
  set. With CUDA each rank uses the GPU of its node-local rank (modulo the device count).

Errors (deck mistakes, missing checkpoint, a too thin ghost shell) stop the run on all ranks with one line
``ERROR: lammps-phase: …`` on the screen (and in the log when raised outside a run), followed by LAMMPS'
own ERROR line. A failure of the classifier itself does the same unless ``on_error="skip"``, which sets
that step's labels to −1 and confidence to 0 on every rank and prints a WARNING.
'''

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import sys
import time
from ctypes import c_char_p, c_void_p
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np

from lammps_phase import runtime
from lammps_phase.errors import LammpsPhaseError

__all__ = ["PhaseLabeler", "local_ghost_cutoff"]

MODES = ("gather", "local")
ON_ERROR = ("stop", "skip")
#: How far beyond the observed ghost shell atoms may have moved in or out since the last reneighboring:
#: the default neighbour skin of metal/real units (2 Å). Ghosts are exchanged within cutghost of the
#: subdomain at reneighboring; afterwards each atom moves at most skin/2, so everything within
#: (observed extent − skin) is certainly present.
GHOST_GUARD = 2.0
#: Set-up margin on the receptive field in local mode, so a run does not stop later when the structure
#: expands (melting, tension): the shell must exceed hops × (largest k-th neighbour distance) × this.
RECEPTIVE_SAFETY = 1.1
_LMP_INT, _LMP_DOUBLE = 0, 2  # lammps.constants LAMMPS_INT, LAMMPS_DOUBLE (extract_atom_datatype)
_VARIABLE_REFERENCE = re.compile(r"\$\{(\w+)\}")


def _lammps_log_fd() -> Optional[int]:
    """The descriptor of the log file LAMMPS writes in this process (``-log``/``-l``, else log.lammps), or None.

    Found through /proc (Linux): the open, writable descriptor of that file. Writing through LAMMPS' own
    descriptor (after flushing its buffers) keeps the line where it belongs among LAMMPS' own lines.
    """
    try:
        with open("/proc/self/cmdline", "rb") as handle:
            args = [a.decode(errors="replace") for a in handle.read().split(b"\0")]
        name = "log.lammps"
        for flag, value in zip(args, args[1:]):
            if flag in ("-log", "-l"):
                name = value
        if name == "none":
            return None
        want = os.stat(name)
        for entry in os.listdir("/proc/self/fd"):
            fd = int(entry)
            try:
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != (want.st_dev, want.st_ino):
                    continue
                with open(f"/proc/self/fdinfo/{fd}") as info:
                    flags = int(re.search(r"flags:\s*([0-7]+)", info.read()).group(1), 8)
            except (OSError, AttributeError, ValueError):
                continue
            if flags & 3:  # O_WRONLY or O_RDWR
                return fd
    except (OSError, ValueError):
        return None
    return None


def _write_log_line(line: str) -> bool:
    """Append one line to LAMMPS' log file through its descriptor; False where there is none (other ranks)."""
    fd = _lammps_log_fd()
    if fd is None:
        return False
    with contextlib.suppress(OSError):
        ctypes.CDLL(None).fflush(None)  # LAMMPS' buffered log lines first
        os.write(fd, (line + "\n").encode())
        return True
    return False


def _report_deck_error(message: str) -> None:
    """An error while LAMMPS reads the deck (the PhaseLabeler constructor): one ``ERROR: lammps-phase: ...`` line
    on the screen and in the log (rank 0), before LAMMPS' own "Could not process Python string". Outside LAMMPS
    (plain Python) nothing is printed: the exception says it."""
    if runtime.world_rank() != 0:
        return
    line = f"ERROR: lammps-phase: {' '.join(message.split())}"
    logged = _write_log_line(line)
    try:
        inside_lammps = os.path.basename(os.readlink("/proc/self/exe")).startswith("lmp")
    except OSError:
        inside_lammps = False
    if logged or inside_lammps:
        print(line, flush=True)


def _deck_errors_to_log(init: Any) -> Any:
    """Constructor errors reach the LAMMPS log as one line (LAMMPS itself would only say "Could not process
    Python string"), then propagate as a LammpsPhaseError."""
    import functools

    @functools.wraps(init)
    def checked(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except LammpsPhaseError as err:
            _report_deck_error(str(err))
            raise
        except (TypeError, ValueError) as err:  # e.g. a misspelt keyword argument
            message = f"PhaseLabeler: {err}; see help(lammps_phase.insitu.labeler.PhaseLabeler)"
            _report_deck_error(message)
            raise LammpsPhaseError(message) from None

    return checked


def _checkpoint_argument(checkpoint: Any) -> str:
    """The checkpoint path, checked now unless it names a LAMMPS variable (resolved at the first call)."""
    if not isinstance(checkpoint, (str, os.PathLike)) or not str(checkpoint).strip():
        raise LammpsPhaseError(f"checkpoint {checkpoint!r} must be the path of a .pt file, e.g. \"checkpoints/sio2.pt\"")
    text = str(checkpoint)
    if not _VARIABLE_REFERENCE.search(text):
        if os.path.isdir(text):
            raise LammpsPhaseError(f"checkpoint {text} is a folder: give the path of a .pt file (e.g. checkpoints/sio2.pt)")
        if not os.path.isfile(text):
            raise LammpsPhaseError(f"checkpoint {text} does not exist: give the path of a .pt file "
                                   "(e.g. checkpoints/sio2.pt)")
    return text


def _types_argument(types: Any) -> str:
    """The type map as text ("Si O"), checked for form now (the model's elements are checked at the first call)."""
    if isinstance(types, str):
        text = types
    elif isinstance(types, (list, tuple)) and all(isinstance(t, str) for t in types):
        text = " ".join(types)
    else:
        raise LammpsPhaseError(f'types {types!r} must name one element per LAMMPS atom type: types="Si O" or ["Si", "O"]')
    if not _VARIABLE_REFERENCE.search(text):
        if not text.split():
            raise LammpsPhaseError('types is empty: give one element per LAMMPS atom type, e.g. types="Si O"')
        bad = [t for t in text.split() if not re.fullmatch(r"[A-Z][a-z]?", t)]
        if bad:
            raise LammpsPhaseError(f"types {text!r}: {' '.join(bad)} is not an element symbol; give one symbol per "
                                   'LAMMPS atom type, separated by spaces, e.g. types="Si O"')
    return text


class _Stop(Exception):
    """Raised on every rank after the error was reported once; becomes a LammpsPhaseError in __call__."""


class _ClassifierFailure(Exception):
    """The model or neighbour search failed on a well-formed deck: skippable with on_error="skip"."""


@dataclass
class _State:
    """What the first call learned; constant for the rest of the run."""

    comm: Any
    rank: int
    size: int
    checkpoint: str
    type_map: list[str]
    classes: list[str]
    k: int
    hops: int
    classifier: Any  # Classifier on ranks that label (rank 0 in gather mode, all ranks in local mode)
    variables_defined: bool
    shell_checked: bool = False
    cpus: Optional[frozenset] = None  # gather mode, rank 0: the cores of every rank on its node (borrowed while labelling)


class PhaseLabeler:
    """Label every atom each time LAMMPS calls it; write ``i_phase`` / ``d_phase_conf``.

    checkpoint  path of a segmentation checkpoint (may contain ``${var}``); loaded once per process.
    types       element per LAMMPS atom type, "Si O" or ["Si", "O"] (type 1 = Si).
    mode        "gather" (classify on rank 0) or "local" (each rank from its ghost shell).
    device      "auto" (CUDA if available, else CPU), "cpu", "cuda", "cuda:N".
    threshold   confidence below which an atom is labelled −1 ("other").
    on_error    "stop" (default) or "skip": a failing classification gives −1 labels for that step.
    labels, confidence  names of the fix property/atom vectors written (i_… integer, d_… float);
                the fraction variables are named after ``labels`` without its ``i_`` (v_phase_<class>).
    borrow_cores  gather mode: while rank 0 classifies, the other ranks sleep instead of spinning in MPI
                and rank 0 runs its threads on their cores too (they would idle otherwise).
    compile     "auto": compile the fused kernels at the first labelling (a one-off 5-60 s, best done by
                `python <function> invoke` before the run; ~4x faster calls after), eager kernels where no
                compiler works; False: eager kernels only; True: compile or fail. The environment variable
                LAMMPS_PHASE_COMPILE=0 forces False.

    Call with the pointer LAMMPS passes (``SELF`` with ``format p``) or with a ``lammps`` object.
    """

    @_deck_errors_to_log
    def __init__(
        self,
        checkpoint: str,
        types: Union[str, Sequence[str]],
        mode: str = "gather",
        device: str = "auto",
        threshold: float = 0.0,
        on_error: str = "stop",
        labels: str = "i_phase",
        confidence: str = "d_phase_conf",
        borrow_cores: bool = True,
        compile: Union[bool, str] = "auto",
    ) -> None:
        if mode not in MODES:
            raise LammpsPhaseError(f"PhaseLabeler mode {mode!r} is unknown: use 'gather' or 'local'")
        if on_error not in ON_ERROR:
            raise LammpsPhaseError(f"PhaseLabeler on_error {on_error!r} is unknown: use 'stop' or 'skip'")
        if not re.fullmatch(r"i_\w+", labels):
            raise LammpsPhaseError(f"labels {labels!r} must name an integer property/atom vector, e.g. 'i_phase'")
        if not re.fullmatch(r"d_\w+", confidence):
            raise LammpsPhaseError(
                f"confidence {confidence!r} must name a float property/atom vector, e.g. 'd_phase_conf'"
            )
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            threshold = float("nan")
        if not 0.0 <= threshold < 1.0:
            raise LammpsPhaseError(f"threshold {threshold} must lie in [0, 1): it is a softmax probability")
        self.checkpoint = _checkpoint_argument(checkpoint)
        self.types = _types_argument(types)
        self.mode = mode
        self.device = device
        self.threshold = float(threshold)
        self.on_error = on_error
        self.labels = labels
        self.confidence = confidence
        self.prefix = labels[2:]
        self.borrow_cores = bool(borrow_cores)
        if compile not in (True, False, "auto"):
            raise LammpsPhaseError(f"PhaseLabeler compile must be True, False or 'auto', not {compile!r}")
        if os.environ.get("LAMMPS_PHASE_COMPILE", "").strip().lower() in ("0", "false", "no", "off"):
            compile = False
        self.compile = compile
        self._state: Optional[_State] = None

    # ------------------------------------------------------------------------------------------ entry point

    def __call__(self, ptr: Any) -> None:
        lmp = _as_lammps(ptr)
        try:
            first = self._state is None
            state = self._state or self._set_up(lmp)
            started = time.perf_counter()
            if self.mode == "local" and lmp.is_running:
                labels, confidence, counts = self._label_local(lmp, state)
            else:  # before the first run LAMMPS has no ghost atoms: the initial labelling is gathered
                labels, confidence, counts = self._label_gathered(lmp, state)
        except _Stop as stop:  # already reported; re-raised here so LAMMPS prints a two-line traceback
            raise LammpsPhaseError(str(stop)) from None
        _write_property(lmp, self.labels, labels)
        _write_property(lmp, self.confidence, confidence)
        self._publish_fractions(lmp, state, counts)
        if first:  # the one-off cost (kernel compilation) is said once, so nobody mistakes it for the per-call cost
            fast = getattr(state.classifier, "fast", None)
            kernels = "no fused" if fast is None else ("compiled" if fast.compiled else "eager")
            _announce(lmp, state.rank, f"lammps-phase: first labelling {time.perf_counter() - started:.1f} s "
                                       f"({kernels} kernels on rank 0)")

    # ------------------------------------------------------------------------------------------ set-up

    def _set_up(self, lmp: Any) -> _State:
        comm = _communicator(lmp)
        rank, size = comm.Get_rank(), comm.Get_size()
        error = None
        try:
            checkpoint = _substitute(lmp, self.checkpoint, "checkpoint")
            type_map = _substitute(lmp, self.types, "types").split()
            self._check_properties(lmp)
            _check_type_map(lmp, type_map)
        except LammpsPhaseError as err:
            error = str(err)
        _agree(lmp, comm, error)

        classifier = None
        cpus = self._node_cpus(comm) if self.mode == "gather" and self.borrow_cores else None
        try:
            if self.mode == "local" or rank == 0:
                from lammps_phase.inference.classify import Classifier

                with _on_cpus(cpus):  # torch's worker threads start here and keep these cores
                    classifier = Classifier.load(
                        checkpoint, device=self._rank_device(comm), threshold=self.threshold, type_map=type_map,
                        reuse_neighbors=self.mode == "gather",  # consecutive calls see the same atoms, slightly moved
                        threads=len(cpus) if cpus else "auto",
                        fast={True: "compile", False: "eager"}.get(self.compile, "auto"),
                        compile_after_atoms=0,  # every later call is another labelling: compile at once
                    )
                ckpt = classifier.checkpoint
            else:
                from lammps_phase.model import checkpoint as ckpt_io

                ckpt = ckpt_io.load(checkpoint, type_map=type_map)
            error = None
        except Exception as err:  # noqa: BLE001 - e.g. CUDA out of memory on one rank: all ranks must stop
            error = _describe(err)
        _agree(lmp, comm, error)

        state = _State(
            comm=comm,
            rank=rank,
            size=size,
            checkpoint=checkpoint,
            type_map=type_map,
            classes=list(ckpt.classes),
            k=int(ckpt.k),
            hops=ckpt.config.receptive_hops,
            classifier=classifier,
            variables_defined=False,
            cpus=cpus,
        )
        device = classifier.device if classifier is not None else "-"
        table = ", ".join(f"{i} = {name}" for i, name in enumerate(state.classes)) + ", -1 = other"
        _announce(
            lmp,
            rank,
            f"lammps-phase: {self.labels} classes: {table}; model {checkpoint} (k = {state.k}, "
            f"{state.hops} hops), mode {self.mode}, device {device} on rank 0, {size} rank(s)",
        )
        if not lmp.is_running:
            self._define_fraction_variables(lmp, state)
        elif rank == 0:
            print(
                f"lammps-phase: phase fractions are not available to thermo: put `python <function> invoke` "
                f"before thermo_style to define v_{self.prefix}_<class>",
                flush=True,
            )
        self._state = state
        return state

    def _check_properties(self, lmp: Any) -> None:
        fix_line = f"fix {self.prefix} all property/atom {self.labels} {self.confidence}"
        for name, wanted, kind in ((self.labels, _LMP_INT, "integer"), (self.confidence, _LMP_DOUBLE, "float")):
            dtype = lmp.extract_atom_datatype(name)
            if dtype is None or dtype < 0:
                raise LammpsPhaseError(
                    f"no per-atom property {name} to write the labels into: add `{fix_line}` before this command"
                )
            if dtype != wanted:
                raise LammpsPhaseError(f"per-atom property {name} is not {kind}: define it as in `{fix_line}`")

    def _node_cpus(self, comm: Any) -> Optional[frozenset]:
        """On rank 0: the union of the CPU sets of all ranks on its node (None elsewhere or off Linux)."""
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

    def _rank_device(self, comm: Any) -> str:
        """Local mode with CUDA: one GPU per node-local rank (round robin); otherwise the user's choice."""
        if self.device != "auto" or self.mode != "local":
            return self.device
        import torch

        if not torch.cuda.is_available():
            return "cpu"
        from mpi4py import MPI

        node_rank = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()
        return f"cuda:{node_rank % torch.cuda.device_count()}"

    # ------------------------------------------------------------------------------------------ gather mode

    def _label_gathered(self, lmp: Any, state: _State) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from mpi4py import MPI

        comm, rank = state.comm, state.rank
        nlocal = int(lmp.extract_global("nlocal"))
        x = _atom_array(lmp, "x", nlocal, np.float64, 3)
        types = _atom_array(lmp, "type", nlocal, np.int32)
        ids = _atom_array(lmp, "id", nlocal, np.int64)

        counts = np.zeros(state.size, dtype=np.int64)
        comm.Allgather(np.array([nlocal], dtype=np.int64), counts)
        displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
        total = int(counts.sum())
        if total == 0:  # every atom deleted: labels for zero atoms and the run carries on, as in local mode
            labels = np.empty(0, dtype=np.int32)
            return labels, np.empty(0, dtype=np.float64), self._counts(comm, labels, state)
        root = rank == 0
        x_all = np.empty((total if root else 0, 3), dtype=np.float64)
        types_all = np.empty(total if root else 0, dtype=np.int32)
        ids_all = np.empty(total if root else 0, dtype=np.int64)
        comm.Gatherv(x, [x_all, counts * 3, displs * 3, MPI.DOUBLE], root=0)
        comm.Gatherv(types, [types_all, counts, displs, MPI.INT32_T], root=0)
        comm.Gatherv(ids, [ids_all, counts, displs, MPI.INT64_T], root=0)

        labels_all = np.empty(total if root else 0, dtype=np.int32)
        conf_all = np.empty(total if root else 0, dtype=np.float64)
        error = None
        if root:
            try:
                order = np.argsort(ids_all, kind="stable")  # decomposition-independent atom order
                with _on_cpus(state.cpus):
                    labels_all[order], conf_all[order] = self._classify_box(lmp, state, x_all[order], types_all[order])
            except Exception as err:  # noqa: BLE001 - any failure of the model is reported, never half-applied
                error = _describe(err)
        if self.borrow_cores and state.size > 1:
            _quiet_barrier(comm, sleep=not root)
        error = comm.bcast(error, root=0)
        if error is not None:
            return self._failed(lmp, state, nlocal, error)

        labels = np.empty(nlocal, dtype=np.int32)
        conf = np.empty(nlocal, dtype=np.float64)
        comm.Scatterv([labels_all, counts, displs, MPI.INT32_T], labels, root=0)
        comm.Scatterv([conf_all, counts, displs, MPI.DOUBLE], conf, root=0)
        return labels, conf, self._counts(comm, labels, state)

    def _classify_box(self, lmp: Any, state: _State, x: np.ndarray, types: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxlo, boxhi, xy, yz, xz, periodicity, _ = lmp.extract_box()
        result = state.classifier.classify_lammps_box(
            x, boxlo, boxhi, types, xy=xy, xz=xz, yz=yz, pbc=[bool(p) for p in periodicity], type_map=state.type_map
        )
        return result.labels, result.confidence.astype(np.float64)

    # ------------------------------------------------------------------------------------------ local mode

    def _label_local(self, lmp: Any, state: _State) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from mpi4py import MPI

        comm = state.comm
        nlocal = int(lmp.extract_global("nlocal"))
        nall = nlocal + int(lmp.extract_global("nghost"))
        x = _atom_array(lmp, "x", nall, np.float64, 3)
        types = _atom_array(lmp, "type", nall, np.int32)
        labels = np.empty(nlocal, dtype=np.int32)
        conf = np.empty(nlocal, dtype=np.float64)
        config_error, failure = None, None
        try:
            shell = _GhostShell(lmp, x, nlocal)
        except LammpsPhaseError as err:
            shell, config_error = None, str(err)
        reach = comm.allreduce(shell.local_reach if shell is not None else 0.0, op=MPI.MAX)
        try:
            if nlocal and shell is not None:
                shell.use_reach(reach)
                labels[:], conf[:] = self._classify_local(state, shell, x, types, nlocal)
        except LammpsPhaseError as err:
            config_error = str(err)
        except _ClassifierFailure as err:
            failure = str(err)
        _agree(lmp, comm, config_error)
        failures = [f for f in comm.allgather(failure) if f is not None]
        if failures:
            return self._failed(lmp, state, nlocal, failures[0])
        state.shell_checked = True
        return labels, conf, self._counts(comm, labels, state)

    def _classify_local(
        self, state: _State, shell: "_GhostShell", x: np.ndarray, types: np.ndarray, nlocal: int
    ) -> tuple[np.ndarray, np.ndarray]:
        from lammps_phase.inference.neighbors import NeighborList

        clf, k, hops = state.classifier, state.k, state.hops
        try:
            atoms, index, vectors, distances, n_rows = _receptive_graph(x, nlocal, k, hops)
        except LammpsPhaseError:
            raise
        except Exception as err:  # noqa: BLE001 - e.g. non-finite coordinates after a blow-up
            raise _ClassifierFailure(_describe(err)) from None
        kth = distances[:n_rows, k - 1]
        kth_max = float(kth[:nlocal].max())
        if not state.shell_checked:
            shell.require(hops * kth_max * RECEPTIVE_SAFETY, hops, kth_max)
        shell.require_exact(atoms[:n_rows], kth, hops, kth_max)
        try:
            species = clf.species_indices(types[atoms], state.type_map)
            logits = clf.logits(species, NeighborList(index=index, vectors=vectors, distances=distances))
            result = clf.result_from_logits(logits[:nlocal], nearest=distances[:nlocal, 0])
        except Exception as err:  # noqa: BLE001
            raise _ClassifierFailure(_describe(err)) from None
        return result.labels, result.confidence.astype(np.float64)

    # ------------------------------------------------------------------------------------------ shared

    def _failed(self, lmp: Any, state: _State, nlocal: int, error: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        step = int(lmp.extract_global("ntimestep"))
        message = f"labelling failed at step {step}: {error}"
        if self.on_error == "stop":
            _stop(lmp, state.comm, message + " (PhaseLabeler on_error='skip' keeps the run going)")
        warning = f"WARNING: lammps-phase: {message}; {self.labels} = -1 and confidence 0 for all atoms"
        _announce(lmp, state.rank, warning)
        labels = np.full(nlocal, -1, dtype=np.int32)
        conf = np.zeros(nlocal, dtype=np.float64)
        return labels, conf, self._counts(state.comm, labels, state)

    @staticmethod
    def _counts(comm: Any, labels: np.ndarray, state: _State) -> np.ndarray:
        """Atoms per class over all ranks; the last entry counts "other" (−1)."""
        c = len(state.classes)
        local = np.bincount(np.where(labels < 0, c, labels), minlength=c + 1).astype(np.int64)
        total = np.empty_like(local)
        comm.Allreduce(local, total)
        return total

    def _define_fraction_variables(self, lmp: Any, state: _State) -> None:
        names = self._fraction_names(state)
        for name in names:
            lmp.command(f"variable {name}_value string 0")
            lmp.command(f"variable {name} equal v_{name}_value")
        # all of them as thermo keywords, so a deck need not know the class names: thermo_style ... ${phase_thermo}
        lmp.command(f'variable {self.prefix}_thermo string "{" ".join("v_" + n for n in names)}"')
        state.variables_defined = True

    def _fraction_names(self, state: _State) -> list[str]:
        return [f"{self.prefix}_{re.sub(r'[^0-9A-Za-z_]', '_', c)}" for c in state.classes] + [f"{self.prefix}_other"]

    def _publish_fractions(self, lmp: Any, state: _State, counts: np.ndarray) -> None:
        if not state.variables_defined:
            return
        fractions = counts / max(int(counts.sum()), 1)
        for name, value in zip(self._fraction_names(state), fractions):
            lmp.set_variable(f"{name}_value", f"{value:.6f}")


def local_ghost_cutoff(
    classifier: Any,
    positions: np.ndarray,
    cell: np.ndarray,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    pbc: Sequence[bool] = (True, True, True),
) -> float:
    """The ``comm_modify cutoff`` (Å) that ``mode="local"`` needs for a structure like this one.

    hops × largest k-th neighbour distance × RECEPTIVE_SAFETY + GHOST_GUARD, rounded up to whole Å:
    the figure the labeler's own check asks for, known before the run.
    """
    from lammps_phase.inference.neighbors import knn

    neighbors = knn(positions, classifier.k, cell=cell, pbc=tuple(bool(p) for p in pbc), origin=origin)
    kth = float(neighbors.distances[:, classifier.k - 1].max())
    return float(np.ceil(classifier.receptive_hops * kth * RECEPTIVE_SAFETY + GHOST_GUARD))


# ---------------------------------------------------------------------------------------------- geometry


def _receptive_graph(
    x: np.ndarray, nlocal: int, k: int, hops: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """k-NN graph of everything the owned atoms' labels depend on, in compact numbering.

    Atoms within ``hops − 1`` k-NN hops of an owned atom need their true neighbour rows; atoms exactly
    ``hops`` away enter only through their species, so they get placeholder self-loop rows. Owned atoms
    come first. Returns (atoms as indices into x, index, vectors, distances, rows with true neighbours).
    """
    from scipy.spatial import cKDTree

    if len(x) <= k:
        raise LammpsPhaseError(f"only {len(x)} owned + ghost atoms on this rank, the model needs more than k = {k}")
    tree = cKDTree(x)
    compact = np.full(len(x), -1, dtype=np.int64)
    compact[:nlocal] = np.arange(nlocal)
    atoms = [np.arange(nlocal)]
    rows_index, rows_dist = [], []
    frontier = np.arange(nlocal)
    n = nlocal
    for _ in range(hops):
        if frontier.size == 0:
            break
        dist, idx = tree.query(x[frontier], k + 1)
        drop = idx == frontier[:, None]
        drop[~drop.any(axis=1), -1] = True  # coincident atoms crowded the atom out: drop the farthest
        idx = idx[~drop].reshape(-1, k)
        rows_index.append(idx)
        rows_dist.append(dist[~drop].reshape(-1, k))
        new = np.unique(idx)
        new = new[compact[new] < 0]
        compact[new] = n + np.arange(len(new))
        n += len(new)
        atoms.append(new)
        frontier = new
    atoms_arr = np.concatenate(atoms)
    nbr = np.concatenate(rows_index)
    n_rows = len(nbr)
    index = np.empty((len(atoms_arr), k), dtype=np.int64)
    index[:n_rows] = compact[nbr]
    index[n_rows:] = np.arange(n_rows, len(atoms_arr))[:, None]  # never read by owned atoms' labels
    vectors = np.zeros((len(atoms_arr), k, 3), dtype=np.float32)
    vectors[:n_rows] = x[nbr] - x[atoms_arr[:n_rows], None, :]
    distances = np.zeros((len(atoms_arr), k), dtype=np.float32)
    distances[:n_rows] = np.concatenate(rows_dist)
    return atoms_arr, index, vectors, distances, n_rows


class _GhostShell:
    """The region around this rank's subdomain in which every atom is certainly present as owned or ghost.

    Measured, not configured: LAMMPS 29 Sep 2021 exposes neither the ghost cutoff nor the skin to Python.
    LAMMPS sends ghosts within one cutoff of every subdomain face; the farthest ghost over all faces and
    ranks (``reach``) estimates it from below up to the skin, so every atom within ``reach − GHOST_GUARD``
    of the subdomain is present. (One global figure, because a face facing vacuum has no ghosts.) Faces
    on a non-periodic box boundary are open: no atom exists beyond them. Works in fractional coordinates,
    so triclinic boxes are handled like orthogonal ones (distance to a face = Δfraction × face spacing).
    """

    def __init__(self, lmp: Any, x: np.ndarray, nlocal: int) -> None:
        from lammps_phase.cell import lammps_box_to_cell

        boxlo, boxhi, xy, yz, xz, periodicity, _ = lmp.extract_box()
        cell, origin = lammps_box_to_cell(boxlo, boxhi, xy, xz, yz)
        self.origin = origin
        self.inverse = np.linalg.inv(cell)
        volume = abs(float(np.linalg.det(cell)))
        self.spacing = volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
        if int(lmp.extract_global("triclinic")):
            sub_lo = np.array(lmp.extract_global("sublo_lambda"), dtype=np.float64)
            sub_hi = np.array(lmp.extract_global("subhi_lambda"), dtype=np.float64)
        else:
            lengths = np.diag(cell)
            sub_lo = (np.array(lmp.extract_global("sublo"), dtype=np.float64) - origin) / lengths
            sub_hi = (np.array(lmp.extract_global("subhi"), dtype=np.float64) - origin) / lengths
        self.sub_lo, self.sub_hi = sub_lo, sub_hi
        self.x = x
        periodic = np.array([bool(p) for p in periodicity])
        self.open_lo = ~periodic & (sub_lo <= 1e-12)
        self.open_hi = ~periodic & (sub_hi >= 1.0 - 1e-12)
        ghosts = self._fractional(x[nlocal:])
        if len(ghosts):
            beyond = np.concatenate([(sub_lo - ghosts.min(axis=0)), (ghosts.max(axis=0) - sub_hi)])
            self.local_reach = float(np.maximum(beyond * np.tile(self.spacing, 2), 0.0).max())
        else:
            self.local_reach = 0.0
        self.reach = self.local_reach
        self.width = max(self.reach - GHOST_GUARD, 0.0)

    def use_reach(self, reach: float) -> None:
        """Adopt the ghost reach agreed over all ranks."""
        self.reach = reach
        self.width = max(reach - GHOST_GUARD, 0.0)

    def _fractional(self, x: np.ndarray) -> np.ndarray:
        return (x - self.origin) @ self.inverse

    def require(self, needed: float, hops: int, kth: float) -> None:
        """Set-up check: the complete part of the shell must be at least ``needed`` Å wide (if it matters)."""
        if not (self.open_lo.all() and self.open_hi.all()) and self.width < needed:
            raise LammpsPhaseError(self._message(needed, hops, kth))

    def require_exact(self, row_atoms: np.ndarray, kth: np.ndarray, hops: int, kth_max: float) -> None:
        """Every atom whose neighbour row matters must have all its k neighbours inside the complete region."""
        frac = self._fractional(self.x[row_atoms])
        lo = np.where(self.open_lo, -np.inf, self.sub_lo - self.width / self.spacing)
        hi = np.where(self.open_hi, np.inf, self.sub_hi + self.width / self.spacing)
        room = np.minimum((frac - lo) * self.spacing, (hi - frac) * self.spacing).min(axis=1)
        if np.any(kth > room * (1.0 + 1e-9)):
            depth = np.maximum(np.maximum(self.sub_lo - frac, frac - self.sub_hi), 0.0) * self.spacing
            needed = float((kth + depth.max(axis=1)).max())
            raise LammpsPhaseError(self._message(max(needed, hops * kth_max * RECEPTIVE_SAFETY), hops, kth_max))

    def _message(self, needed: float, hops: int, kth: float) -> str:
        cutoff = np.ceil(needed + GHOST_GUARD)
        return (
            f"mode='local' needs every atom within {needed:.1f} Å of each subdomain (model receptive field: "
            f"{hops} hops x {kth:.2f} Å k-th neighbour distance), but the ghost atoms reach only "
            f"{self.reach:.1f} Å (of which {GHOST_GUARD:g} Å skin are not guaranteed): "
            f"add `comm_modify cutoff {cutoff:g}` before the run, or use mode='gather'"
        )


# ---------------------------------------------------------------------------------------------- LAMMPS glue


@contextlib.contextmanager
def _on_cpus(cpus: Optional[frozenset]):
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


def _quiet_barrier(comm: Any, sleep: bool, interval: float = 2e-4) -> None:
    """A barrier that, where ``sleep``, waits in short sleeps: MPI's own wait spins and would hold the core
    that rank 0 is borrowing."""
    request = comm.Ibarrier()
    if not sleep:
        request.Wait()
        return
    while not request.Test():
        time.sleep(interval)


def _as_lammps(ptr: Any) -> Any:
    from lammps import lammps

    return ptr if isinstance(ptr, lammps) else lammps(ptr=ptr)


def _communicator(lmp: Any) -> Any:
    try:
        from mpi4py import MPI
    except ImportError:
        raise LammpsPhaseError("the in-situ labeler needs mpi4py: install python3-mpi4py (Debian) or mpi4py") from None
    comm = lmp.get_mpi_comm()
    return comm if comm is not None else MPI.COMM_SELF  # a serial LAMMPS build: every process is alone


def _atom_array(lmp: Any, name: str, n: int, dtype: type, width: int = 1) -> np.ndarray:
    """A contiguous copy of the first n rows of a per-atom array (empty without touching LAMMPS when n = 0)."""
    shape = (n, width) if width > 1 else (n,)
    if n == 0:
        return np.empty(shape, dtype=dtype)
    view = lmp.numpy.extract_atom(name, nelem=n, dim=width)
    return np.ascontiguousarray(np.asarray(view).reshape(shape), dtype=dtype)


def _write_property(lmp: Any, name: str, values: np.ndarray) -> None:
    if len(values) == 0:
        return
    view = lmp.numpy.extract_atom(name, nelem=len(values))
    view[:] = values


def _substitute(lmp: Any, text: str, what: str) -> str:
    """Replace ``${name}`` by the value of LAMMPS string/index variable ``name``."""

    def value(match: "re.Match[str]") -> str:
        name = match.group(1)
        fetch = lmp.lib.lammps_extract_variable
        fetch.restype = c_void_p  # a string-style variable comes back as char*; the wrapper cannot return it
        address = fetch(lmp.lmp, name.encode(), None)
        if not address:
            raise LammpsPhaseError(
                f"{what} {text!r} refers to LAMMPS variable {name}, which is not defined: add "
                f"`variable {name} index <value>` to the deck or pass -var {name} <value>"
            )
        return c_char_p(address).value.decode()

    return _VARIABLE_REFERENCE.sub(value, text)


def _check_type_map(lmp: Any, type_map: list[str]) -> None:
    ntypes = int(lmp.extract_global("ntypes"))
    if not type_map:
        raise LammpsPhaseError(
            f'types is empty: give one element per LAMMPS atom type (this system has {ntypes}), e.g. types="Si O"'
        )
    if len(type_map) != ntypes:
        raise LammpsPhaseError(
            f"types {' '.join(type_map)!r} names {len(type_map)} element(s) but the system has {ntypes} atom types: "
            "give exactly one element per LAMMPS type, in type order"
        )


def _describe(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if isinstance(err, LammpsPhaseError) else f"{type(err).__name__}: {text}"


def _announce(lmp: Any, rank: int, message: str) -> None:
    """One line on the screen (rank 0); through LAMMPS' print (screen and log) when outside a run."""
    if not lmp.is_running:
        lmp.command(f'print """{message}"""')
    elif rank == 0:
        print(message, flush=True)


def _stop(lmp: Any, comm: Any, message: str) -> None:
    """Report on rank 0, then raise on every rank (all ranks call this together) so LAMMPS stops them all.

    Outside a run LAMMPS answers a Python error with MPI_Abort, which can kill rank 0 before its log is
    written; so the report is flushed to the file system and the ranks wait for each other first.
    """
    rank = comm.Get_rank()
    if not lmp.is_running:
        lmp.command(f'print """ERROR: lammps-phase: {message}"""')
    elif rank == 0:
        print(f"ERROR: lammps-phase: {message}", file=sys.stderr, flush=True)
        _write_log_line(f"ERROR: lammps-phase: {message}")  # LAMMPS takes no commands during a run
    sys.stdout.flush()
    ctypes.CDLL(None).fflush(None)  # LAMMPS' screen and log FILE streams
    comm.Barrier()
    raise _Stop(message)


def _agree(lmp: Any, comm: Any, error: Optional[str]) -> None:
    """Collective: if any rank hit an error, every rank stops with the first rank's message."""
    errors = [e for e in comm.allgather(error) if e is not None]
    if errors:
        _stop(lmp, comm, errors[0])
