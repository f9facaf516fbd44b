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

Three modes, identical labels:

* ``mode="gather"`` (default): owned atoms of every rank are gathered to rank 0 (``MPI Gatherv``), labelled
  there as one periodic sample (sorted by atom ID: independent of the decomposition), and scattered back.
* ``mode="local"``: every rank labels exactly its own atoms (:mod:`lammps_phase.insitu.local_mode`): their k
  nearest neighbours lie within the ghost atoms the pair style keeps anyway (≈ 4–5 Å for SiO2; BKS keeps 12 Å),
  and before each layer the ranks exchange the features of the ghosts in those rows
  (:mod:`lammps_phase.insitu.halo`; bytes ∝ the subdomain's surface). A ghost shell too thin for the rows stops
  the run with the ``comm_modify cutoff`` to set (short-cutoff potentials, e.g. Tersoff). With CUDA each rank
  uses the GPU of its node-local rank. Kernels are compiled at set-up (``python <function> invoke``), not in
  the run.
* ``mode="auto"``: local on more than one rank (from ``auto_local_atoms`` atoms, default 0) when the ghost shell
  holds the rows, else gather: local costs no more than gather on one node (benchmarks/insitu_overhead.py:
  +1.5 % against +2.0 % at 38 880 atoms, 2 ranks) and spares rank 0's memory. The choice and why is printed
  once; a fallback to gather names the ``comm_modify cutoff`` local mode would need.

Errors (deck mistakes, missing checkpoint, a too thin ghost shell) stop the run on all ranks with one line
``ERROR: lammps-phase: …`` on the screen (and in the log when raised outside a run), followed by LAMMPS'
own ERROR line. A failure of the classifier itself does the same unless ``on_error="skip"``, which sets
that step's labels to −1 and confidence to 0 on every rank and prints a WARNING.

Statistics (atoms owned and labelled, bytes moved, per rank): ``labeler.stats`` and ``labeler.report(ptr)``,
see :mod:`lammps_phase.insitu.statistics`.
'''

from __future__ import annotations

import pickle
import re
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np

from lammps_phase import runtime
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.consensus import consensus_argument
from lammps_phase.inference.order_pooling import pooling_argument
from lammps_phase.inference.memory import LabelMemory, check_weight
from lammps_phase.insitu.collectives import (Stop, agree, announce, choose_mode, describe, node_cpus, node_device,
                                             on_cpus, quiet_barrier, stop)
from lammps_phase.insitu.lammps_glue import (VARIABLE_REFERENCE, as_lammps, atom_array, check_memory, check_properties,
                                             check_type_map, checkpoint_argument, communicator, deck_errors_to_log,
                                             define_fraction_variables, memory_rows, option_arguments,
                                             property_arguments, publish_fractions, substitute, threshold_argument,
                                             types_argument, write_property)
from lammps_phase.insitu.halo import HaloExchange, HaloPlan, current_plan
from lammps_phase.insitu.local_mode import ClassifierFailure, GhostShell, checked_rows, owned_rows
from lammps_phase.insitu.statistics import LabelerStats, Traffic

__all__ = ["PhaseLabeler"]

#: mode="auto" labels locally on several ranks from this many atoms on (0: always); below it, gathered
AUTO_LOCAL_ATOMS = 0


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
    hops: list[int]
    classifier: Any  # Classifier on ranks that label (rank 0 in gather mode, all ranks in local mode)
    variables_defined: bool
    shell_checked: bool = False
    cpus: Optional[frozenset] = None  # gather mode, rank 0: the cores of every rank on its node (borrowed while labelling)
    mode: str = "gather"  # the mode in use: the user's, or what mode="auto" chose
    halo_plan: Optional[HaloPlan] = None  # local mode: who sends whom which atoms' features, while it holds


class PhaseLabeler:
    """Label every atom each time LAMMPS calls it; write ``i_phase`` / ``d_phase_conf``.

    checkpoint  path of a segmentation checkpoint (may contain ``${var}``); loaded once per process. An ensemble file
                (``.toml``, :mod:`lammps_phase.inference.ensemble`) labels in gather mode only, at its networks' cost.
    types       element per LAMMPS atom type, "Si O" or ["Si", "O"] (type 1 = Si).
    mode        "gather" (classify on rank 0), "local" (each rank its own atoms) or "auto" (local on several
                ranks from ``auto_local_atoms`` atoms, when the ghost shell allows; else gather).
    memory      None, or a per-atom array with one column per class (``fix property/atom … d2_phase_memory 10``):
                the labels then come from each atom's class probabilities averaged over the labellings,
                ``memory_weight`` on the newest (:mod:`lammps_phase.inference.memory`; 1 = no memory). The array
                moves with its atoms between ranks and goes into restart files.
    consensus   weight of each atom's k nearest neighbours' mean class probabilities in its own (0: off;
                :mod:`lammps_phase.inference.consensus`); None or "checkpoint": the weight the checkpoint's
                threshold was calibrated with (``lammps-phase info``); in local mode one more halo exchange brings the
                probabilities of neighbours other ranks own, so labels stay those of gather mode.
    pooling     rounds over which α- or β-quartz is decided by the region (0: off;
                :mod:`lammps_phase.inference.order_pooling`); None or "checkpoint": the checkpoint's calibrated
                rounds; in local mode one small halo exchange per round, labels again those of gather mode.
    device      "auto" (CUDA if available, else CPU), "cpu", "cuda", "cuda:N".
    threshold   confidence below which an atom is labelled −1 ("other"); None: the checkpoint's calibrated default.
    on_error    "stop" (default) or "skip": a failing classification gives −1 labels for that step.
    labels, confidence  names of the fix property/atom vectors written (i_… integer, d_… float);
                the fraction variables are named after ``labels`` without its ``i_`` (v_phase_<class>).
    borrow_cores  gather mode: while rank 0 classifies, the other ranks sleep instead of spinning in MPI
                and rank 0 runs its threads on their cores too (they would idle otherwise).
    compile     "auto": the fused kernels built ahead of time (`lammps-phase kernels`) if there are, else
                compiled at set-up (a one-off 5-60 s, best done by `python <function> invoke` before the run;
                ~3x faster calls after), eager kernels where no compiler works; False: eager kernels only;
                True: compile or fail. The environment variable LAMMPS_PHASE_COMPILE=0 forces False.

    Call with the pointer LAMMPS passes (``SELF`` with ``format p``) or with a ``lammps`` object.
    """

    @deck_errors_to_log
    def __init__(
        self,
        checkpoint: str,
        types: Union[str, Sequence[str]],
        mode: str = "gather",
        device: str = "auto",
        threshold: Optional[float] = None,
        on_error: str = "stop",
        labels: str = "i_phase",
        confidence: str = "d_phase_conf",
        borrow_cores: bool = True,
        compile: Union[bool, str] = "auto",
        auto_local_atoms: int = AUTO_LOCAL_ATOMS,
        memory: Optional[str] = None,
        memory_weight: float = 0.5,
        consensus: Union[float, str, None] = None,
        pooling: Union[int, str, None] = None,
    ) -> None:
        compile = option_arguments(mode, on_error, compile, auto_local_atoms)
        # a "${name}" (inputs/phase_labels.lmp) is read from the LAMMPS variable at set-up, like the checkpoint
        named = isinstance(consensus, str) and VARIABLE_REFERENCE.search(consensus)
        self.consensus: Union[float, str, None] = consensus if named else consensus_argument(consensus)
        named = isinstance(pooling, str) and VARIABLE_REFERENCE.search(pooling)
        self.pooling: Union[int, str, None] = pooling if named else pooling_argument(pooling)
        self.auto_local_atoms = auto_local_atoms
        property_arguments(labels, confidence, memory)
        self.memory, self.memory_weight = memory, check_weight(memory_weight)
        threshold = threshold_argument(threshold)
        self.checkpoint = checkpoint_argument(checkpoint)
        self.types = types_argument(types)
        self.mode = mode
        self.device = device
        self.threshold = threshold
        self.on_error = on_error
        self.labels = labels
        self.confidence = confidence
        self.prefix = labels[2:]
        self.borrow_cores = bool(borrow_cores)
        self.compile = compile
        self._state: Optional[_State] = None
        self.stats = LabelerStats()
        self._traffic = Traffic(1)

    # ------------------------------------------------------------------------------------------ entry point

    def __call__(self, ptr: Any) -> None:
        lmp = as_lammps(ptr)
        try:
            first = self._state is None
            state = self._state or self._set_up(lmp)
            started = time.perf_counter()
            self._traffic = Traffic(state.size)
            if state.mode == "local" and lmp.is_running:
                labels, confidence, counts = self._label_local(lmp, state)
            else:  # before the first run LAMMPS has no ghost atoms: the initial labelling is gathered
                labels, confidence, counts = self._label_gathered(lmp, state)
        except Stop as stopped:  # already reported; re-raised here so LAMMPS prints a two-line traceback
            raise LammpsPhaseError(str(stopped)) from None
        write_property(lmp, self.labels, labels)
        write_property(lmp, self.confidence, confidence)
        if state.variables_defined:
            publish_fractions(lmp, self._fraction_names(state), counts)
        self.stats.add(self._traffic.call(int(lmp.extract_global("ntimestep")), len(labels),
                                          time.perf_counter() - started))
        if first:  # the one-off cost (kernel compilation) is said once, so nobody mistakes it for the per-call cost
            kernels = state.classifier.kernels if state.classifier is not None else "no fused"
            announce(lmp, state.rank, f"lammps-phase: first labelling {time.perf_counter() - started:.1f} s "
                                       f"({kernels} kernels on rank 0)")

    def report(self, ptr: Any = None) -> list[str]:
        """Collective: the statistics of every rank (see CallStats), one line per rank and mode, in rank order.

        Printed by rank 0 (through LAMMPS' print, so also to the log, when called outside a run with the
        pointer, e.g. ``python phase_report invoke``); returned on every rank.
        """
        lmp = as_lammps(ptr) if ptr is not None else None
        if self._state is not None:
            comm = self._state.comm
        elif lmp is not None:
            comm = communicator(lmp)
        else:
            from mpi4py import MPI

            comm = MPI.COMM_WORLD
        rank, lines = comm.Get_rank(), self.stats.gathered_lines(comm)
        for line in lines:
            if lmp is not None:
                announce(lmp, rank, line)
            elif rank == 0:
                print(line, flush=True)
        return lines

    # ------------------------------------------------------------------------------------------ set-up

    def _set_up(self, lmp: Any) -> _State:
        from lammps_phase.inference import ensemble

        comm = communicator(lmp)
        rank, size = comm.Get_rank(), comm.Get_size()
        error = None
        try:
            checkpoint = checkpoint_argument(substitute(lmp, self.checkpoint, "checkpoint"))
            if ensemble.is_ensemble(checkpoint) and self.mode == "local":
                raise LammpsPhaseError(
                    f"checkpoint {checkpoint} is an ensemble, which labels in gather mode (rank 0 runs its networks on "
                    "the whole box): use mode=\"gather\" (or \"auto\"), or one checkpoint (.pt) for local mode")
            type_map = substitute(lmp, self.types, "types").split()
            consensus = consensus_argument(substitute(lmp, self.consensus, "consensus")
                                           if isinstance(self.consensus, str) else self.consensus)
            pooling = pooling_argument(substitute(lmp, self.pooling, "pooling")
                                       if isinstance(self.pooling, str) else self.pooling)
            check_properties(lmp, self.labels, self.confidence)
            check_type_map(lmp, type_map)
        except LammpsPhaseError as err:
            error = str(err)
        agree(lmp, comm, error)

        if ensemble.is_ensemble(checkpoint):  # local mode's halo calls run one network layer by layer
            mode, why = "gather", " (an ensemble: rank 0 labels the whole box)"
        else:
            mode, why = choose_mode(lmp, comm, self.mode, self.auto_local_atoms)
        classifier = None
        cpus = node_cpus(comm) if self.borrow_cores and (mode == "gather" or self.mode == "auto") else None
        try:
            if mode == "local" or rank == 0:
                from lammps_phase.inference import cell_knn
                from lammps_phase.inference.classify import Classifier

                borrowed = cpus if mode == "gather" else None  # local mode: each rank its own cores
                with on_cpus(borrowed):  # torch's worker threads start here and keep these cores
                    classifier = Classifier.load(
                        checkpoint, device=self._rank_device(comm, mode), threshold=self.threshold, type_map=type_map,
                        # keeping candidates between labellings pays only against scipy's tree: a fresh compiled
                        # search (0.65 µs/atom, 10⁵ atoms, 2 threads) is 3x cheaper than even a successful reuse
                        reuse_neighbors=mode == "gather" and not cell_knn.available(),
                        threads=len(borrowed) if borrowed else "auto",
                        fast={True: "compile", False: "eager"}.get(self.compile, "auto"),
                        compile_after_atoms=0,  # every later call is another labelling: compile at once
                        consensus=consensus,
                        pooling=pooling,
                    )
                    if mode == "local" and classifier.fast is not None:
                        # now (at `python … invoke`, before the run), not at the first labelling inside the run,
                        # where every rank would wait for the slowest compiler; gather mode's rank 0 compiles at
                        # its first labelling, which is this same invoke
                        classifier.fast.warm_up()
                ckpt = classifier.checkpoint
            else:
                ckpt = ensemble.lead_checkpoint(checkpoint, type_map=type_map)  # classes, k, hops: all they need
            error = None
        except Exception as err:  # noqa: BLE001 - e.g. CUDA out of memory on one rank: all ranks must stop
            error = describe(err)
        agree(lmp, comm, error)

        state = _State(
            comm=comm,
            rank=rank,
            size=size,
            checkpoint=checkpoint,
            type_map=type_map,
            classes=list(ckpt.classes),
            k=int(ckpt.k),
            hops=ckpt.config.hop_neighbors,
            classifier=classifier,
            variables_defined=False,
            cpus=cpus,
            mode=mode,
        )
        if self.memory is not None:
            error = None
            try:
                check_memory(lmp, self.memory, len(state.classes))
            except LammpsPhaseError as err:
                error = str(err)
            agree(lmp, comm, error)
        device = classifier.device if classifier is not None else "-"
        labelling = (f", threshold {classifier.threshold:.3f}, neighbour consensus {classifier.consensus:g}"
                     + (f", alpha/beta-quartz pooling {classifier.pooling} rounds" if classifier.pooling else "")
                     if classifier is not None else "")
        table = ", ".join(f"{i} = {name}" for i, name in enumerate(state.classes)) + ", -1 = other"
        announce(
            lmp,
            rank,
            f"lammps-phase: {self.labels} classes: {table}; model {checkpoint} (k = {state.k}, "
            f"receptive hops to the {state.hops} nearest){labelling}, mode {mode}{why}, device {device} on rank 0, "
            f"{size} rank(s)",
        )
        if not lmp.is_running:
            define_fraction_variables(lmp, self._fraction_names(state), self.prefix)
            state.variables_defined = True
        elif rank == 0:
            print(
                f"lammps-phase: phase fractions are not available to thermo: put `python <function> invoke` "
                f"before thermo_style to define v_{self.prefix}_<class>",
                flush=True,
            )
        self._state = state
        return state

    def _rank_device(self, comm: Any, mode: str) -> str:
        """Local mode with CUDA: one GPU per node-local rank (round robin; collective); otherwise the user's choice."""
        return self.device if self.device != "auto" or mode == "gather" else node_device(comm)

    # ------------------------------------------------------------------------------------------ gather mode

    def _label_gathered(self, lmp: Any, state: _State) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from mpi4py import MPI

        comm, rank = state.comm, state.rank
        nlocal = int(lmp.extract_global("nlocal"))
        x = atom_array(lmp, "x", nlocal, np.float64, 3)
        types = atom_array(lmp, "type", nlocal, np.int32)
        ids = atom_array(lmp, "id", nlocal, np.int64)

        traffic = self._traffic
        traffic.mode = "gather"
        counts = np.zeros(state.size, dtype=np.int64)
        comm.Allgather(np.array([nlocal], dtype=np.int64), counts)
        traffic.add(8, 8 * (state.size - 1))
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
        others = total - nlocal  # the root's share of the gathered atoms
        per_atom_in = x.itemsize * 3 + types.itemsize + ids.itemsize
        columns = len(state.classes) if self.memory is not None else 0
        if columns:  # each atom's remembered probabilities travel with it
            memory = memory_rows(lmp, self.memory, nlocal, columns).copy()
            memory_all = np.empty((total if root else 0, columns))
            comm.Gatherv(memory, [memory_all, counts * columns, displs * columns, MPI.DOUBLE], root=0)
            per_atom_in += memory.itemsize * columns
        traffic.add(0 if root else nlocal * per_atom_in, others * per_atom_in if root else 0, atoms=True)
        if root:
            traffic.labelled = total

        labels_all = np.empty(total if root else 0, dtype=np.int32)
        conf_all = np.empty(total if root else 0, dtype=np.float64)
        error = None
        if root:
            try:
                order = np.argsort(ids_all, kind="stable")  # decomposition-independent atom order
                remembered = LabelMemory(memory_all[order], self.memory_weight) if columns else None
                with on_cpus(state.cpus):
                    labels_all[order], conf_all[order] = self._classify_box(lmp, state, x_all[order], types_all[order],
                                                                            remembered)
                if columns:
                    memory_all[order] = remembered.values
            except Exception as err:  # noqa: BLE001 - any failure of the model is reported, never half-applied
                error = describe(err)
        if self.borrow_cores and state.size > 1:
            quiet_barrier(comm, sleep=not root)
        error = comm.bcast(error, root=0)
        pickled = len(pickle.dumps(error, protocol=pickle.HIGHEST_PROTOCOL))
        traffic.add(pickled if root else 0, 0 if root else pickled)
        if error is not None:
            return self._failed(lmp, state, nlocal, error)

        labels = np.empty(nlocal, dtype=np.int32)
        conf = np.empty(nlocal, dtype=np.float64)
        comm.Scatterv([labels_all, counts, displs, MPI.INT32_T], labels, root=0)
        comm.Scatterv([conf_all, counts, displs, MPI.DOUBLE], conf, root=0)
        per_atom_out = labels.itemsize + conf.itemsize
        if columns:
            comm.Scatterv([memory_all, counts * columns, displs * columns, MPI.DOUBLE], memory, root=0)
            memory_rows(lmp, self.memory, nlocal, columns)[:] = memory
            per_atom_out += memory.itemsize * columns
        traffic.add(others * per_atom_out if root else 0, 0 if root else nlocal * per_atom_out, atoms=True)
        return labels, conf, self._counts(comm, labels, state)

    def _classify_box(self, lmp: Any, state: _State, x: np.ndarray, types: np.ndarray,
                      memory: Optional[LabelMemory] = None) -> tuple[np.ndarray, np.ndarray]:
        boxlo, boxhi, xy, yz, xz, periodicity, _ = lmp.extract_box()
        result = state.classifier.classify_lammps_box(
            x, boxlo, boxhi, types, xy=xy, xz=xz, yz=yz, pbc=[bool(p) for p in periodicity], type_map=state.type_map,
            memory=memory,
        )
        return result.labels, result.confidence.astype(np.float64)

    # ------------------------------------------------------------------------------------------ local mode

    def _label_local(self, lmp: Any, state: _State) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every rank labels its own atoms; the layers' features of the ghosts in their rows come from the ranks
        that own them (:mod:`lammps_phase.insitu.halo`). Collective throughout: every rank takes every step."""
        from mpi4py import MPI

        comm = state.comm
        traffic = self._traffic
        traffic.mode = "local"
        nlocal = int(lmp.extract_global("nlocal"))
        nall = nlocal + int(lmp.extract_global("nghost"))
        x = atom_array(lmp, "x", nall, np.float64, 3)
        types = atom_array(lmp, "type", nall, np.int32)
        ids = atom_array(lmp, "id", nall, np.int64)
        config_error, failure, rows, shell = None, None, None, None
        try:
            shell = GhostShell(lmp, x, nlocal)
        except LammpsPhaseError as err:
            config_error = str(err)
        reach = comm.allreduce(shell.local_reach if shell is not None else 0.0, op=MPI.MAX)
        traffic.add(8, 8)
        try:
            if nlocal and shell is not None:
                shell.use_reach(reach)
                rows = checked_rows(shell, x, ids, types, nlocal, state.k, first=not state.shell_checked)
        except LammpsPhaseError as err:
            config_error = str(err)
        except ClassifierFailure as err:
            failure = str(err)
        if self.mode == "auto" and not state.shell_checked:
            traffic.allgathered(config_error)
            thin = next((e for e in comm.allgather(config_error) if e is not None), None)
            if thin is not None:  # auto chose local, but the ghost shell cannot hold the rows: gather
                state.mode = "gather"
                if state.cpus and state.classifier is not None:  # rank 0 now borrows the node's cores
                    state.classifier.threads = runtime.set_threads(len(state.cpus))
                announce(lmp, state.rank, f"lammps-phase: mode auto falls back to gather: {thin}")
                self._traffic = Traffic(state.size)  # the local attempt's rows were not used
                return self._label_gathered(lmp, state)
        traffic.allgathered(config_error)
        agree(lmp, comm, config_error)
        failure = self._first_failure(comm, failure)
        if failure is not None:
            return self._failed(lmp, state, nlocal, failure)
        state.shell_checked = True

        if rows is None:  # no atoms here: this rank still takes part in every exchange
            rows = owned_rows(x, ids, types, 0, state.k)
        plan = current_plan(state.halo_plan, comm, ids[:nlocal], rows, shell, traffic)
        if plan is not state.halo_plan:
            state.halo_plan = plan
            traffic.allgathered(plan.error)
            agree(lmp, comm, plan.error)
        exchange = HaloExchange(plan, state.classifier.halo_widths, traffic)
        labels = np.empty(nlocal, dtype=np.int32)
        conf = np.empty(nlocal, dtype=np.float64)
        remembered = None
        try:
            if nlocal:
                species = state.classifier.species_indices(np.concatenate([types[:nlocal], rows.halo_types]),
                                                           state.type_map)
                if self.memory is not None:  # a copy: written back only once every rank has succeeded
                    remembered = LabelMemory(memory_rows(lmp, self.memory, nlocal, len(state.classes)).copy(),
                                             self.memory_weight)
                result = state.classifier.classify_neighbors(species, rows.neighbors, labelled=nlocal, halo=exchange,
                                                             memory=remembered)
                labels[:], conf[:] = result.labels, result.confidence
        except Exception as err:  # noqa: BLE001 - the other ranks' exchanges must still complete
            failure = describe(err)
        exchange.finish()
        traffic.labelled = nlocal
        failure = self._first_failure(comm, failure)
        if failure is not None:
            return self._failed(lmp, state, nlocal, failure)
        if remembered is not None:
            memory_rows(lmp, self.memory, nlocal, len(state.classes))[:] = remembered.values
        return labels, conf, self._counts(comm, labels, state)

    # ------------------------------------------------------------------------------------------ shared

    def _first_failure(self, comm: Any, failure: Optional[str]) -> Optional[str]:
        """Collective: the first rank's classifier failure, or None if every rank succeeded."""
        self._traffic.allgathered(failure)
        return next((f for f in comm.allgather(failure) if f is not None), None)

    def _failed(self, lmp: Any, state: _State, nlocal: int, error: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        step = int(lmp.extract_global("ntimestep"))
        message = f"labelling failed at step {step}: {error}"
        if self.on_error == "stop":
            stop(lmp, state.comm, message + " (PhaseLabeler on_error='skip' keeps the run going)")
        warning = f"WARNING: lammps-phase: {message}; {self.labels} = -1 and confidence 0 for all atoms"
        announce(lmp, state.rank, warning)
        labels = np.full(nlocal, -1, dtype=np.int32)
        conf = np.zeros(nlocal, dtype=np.float64)
        return labels, conf, self._counts(state.comm, labels, state)

    def _counts(self, comm: Any, labels: np.ndarray, state: _State) -> np.ndarray:
        """Atoms per class over all ranks; the last entry counts "other" (−1)."""
        c = len(state.classes)
        local = np.bincount(np.where(labels < 0, c, labels), minlength=c + 1).astype(np.int64)
        total = np.empty_like(local)
        comm.Allreduce(local, total)
        self._traffic.add(local.nbytes, total.nbytes)
        return total

    def _fraction_names(self, state: _State) -> list[str]:
        return [f"{self.prefix}_{re.sub(r'[^0-9A-Za-z_]', '_', c)}" for c in state.classes] + [f"{self.prefix}_other"]
