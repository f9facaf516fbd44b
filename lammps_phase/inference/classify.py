"""Classifier: positions + box + species → per-atom phase labels and confidence.

The whole configuration is one graph (DESIGN.md §3): periodic k-NN once, then one forward pass,
chunked over atoms so memory stays bounded for millions of atoms.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence, Union

import numpy as np
import torch

from lammps_phase.model import checkpoint as ckpt_io
from lammps_phase.model import fastpath
from lammps_phase import runtime
from lammps_phase.elements import element_indices
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.cell import lammps_box_to_cell
from lammps_phase.inference.domain import TrainingDomain, outside
from lammps_phase.inference.consensus import consensus_weight
from lammps_phase.inference.order_pooling import order_pairs, pooling_rounds, served_probabilities
from lammps_phase.inference.memory import LabelMemory
from lammps_phase.inference.neighbors import NeighborCache, NeighborList, knn

if TYPE_CHECKING:
    import ase

OTHER = -1
#: Å. Two atoms closer than this overlap: no phase the model was trained on has them, so they are labelled
#: OTHER with confidence 0 rather than given a confident label for an impossible structure.
MIN_SEPARATION = 0.5
#: from this many atoms on, freed heap memory goes back to the system between the neighbour search and the network
#: (≈ 0.1 kB per atom less at the peak, for the 10⁶-atom memory target; it costs ≈ 0.06 µs per atom, and the network's
#: tensors then fault their pages in afresh, so below a few 10⁵ atoms, where the saving is tens of MB, it is skipped)
RELEASE_MEMORY_ATOMS = 400_000
SpeciesLike = Union[Sequence[str], np.ndarray]


@dataclass
class PhaseResult:
    """Labels (int32, −1 = other), confidence (max softmax probability) and the class names."""

    labels: np.ndarray
    confidence: np.ndarray
    classes: list[str]
    #: atoms whose neighbourhood lies outside the training data's geometry (labelled −1, confidence 0)
    unfamiliar: int = 0

    def fractions(self) -> dict[str, float]:
        """Fraction of atoms per class name (and "other"), in class order."""
        n = max(len(self.labels), 1)
        counts = np.bincount(self.labels + 1, minlength=len(self.classes) + 1)
        out = {name: counts[i + 1] / n for i, name in enumerate(self.classes)}
        out["other"] = counts[0] / n
        return out


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" → CUDA when available, else CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):  # meta, mps, ...: devices the model cannot label on
        raise LammpsPhaseError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LammpsPhaseError(f"device {device!r} requested but torch has no CUDA here: use 'cpu' or 'auto'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise LammpsPhaseError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                               f"numbered from 0: use 'cuda:0' .. 'cuda:{torch.cuda.device_count() - 1}' or 'auto'")
    return dev


def check_threshold(threshold: float) -> float:
    """A confidence threshold is a probability: a finite number in [0, 1]."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise LammpsPhaseError(f"threshold {threshold!r} must be a number in [0, 1]: atoms whose confidence (the "
                               "largest class probability) is below it are labelled -1 (other)")
    return value


def pbc_flags(pbc: Union[bool, Sequence[bool]]) -> tuple[bool, bool, bool]:
    """Periodicity per axis from one flag (all axes) or three."""
    flags = np.asarray(pbc, dtype=object).reshape(-1)
    if flags.size == 1:
        flags = np.repeat(flags, 3)
    if flags.size != 3 or not all(isinstance(f, (bool, np.bool_)) or f in (0, 1) for f in flags):
        raise LammpsPhaseError(f"pbc must be one bool or three (x, y, z), e.g. pbc=(True, True, False); got {pbc!r}")
    return tuple(bool(f) for f in flags)  # type: ignore[return-value]


def species_to_elements(species: SpeciesLike, type_map: Optional[Sequence[str]] = None) -> np.ndarray:
    """Element names per atom, from element names or from LAMMPS types (1-based) through a type map."""
    arr = np.asarray(species)
    if arr.dtype.kind in "iu" or (arr.dtype.kind == "f" and arr.size and np.all(arr == np.round(arr))):
        if type_map is None:
            raise LammpsPhaseError("species are LAMMPS atom types: give a type map, e.g. types \"Si O\" (type 1 = Si)")
        types = arr.astype(np.int64)
        table = np.asarray(list(type_map), dtype=object)
        bad = np.unique(types[(types < 1) | (types > len(table))])
        if bad.size:
            raise LammpsPhaseError(
                f"atom type(s) {' '.join(map(str, bad))} are not in the type map \"{' '.join(type_map)}\" "
                f"(it covers types 1..{len(table)}): give one element per LAMMPS type"
            )
        return table[types - 1].astype(str)
    return arr.astype(str)


class Classifier:
    """A loaded phase model ready to label configurations.

    >>> clf = Classifier.load("checkpoints/sio2.pt")
    >>> res = clf.classify(positions, cell, ["Si", "O", "O", ...])
    >>> res.labels, res.confidence, clf.classes
    """

    def __init__(
        self,
        checkpoint: ckpt_io.Checkpoint,
        device: str = "auto",
        threshold: Optional[float] = None,
        chunk: int = 32768,
        fast: Union[bool, str] = "auto",
        threads: Union[int, str, None] = "auto",
        reuse_neighbors: bool = False,
        compile_after_atoms: Optional[int] = None,
        check_domain: bool = True,
        consensus: Union[float, str, None] = None,
        pooling: Union[int, str, None] = None,
    ) -> None:
        """``threshold``: confidence below which an atom is −1 ("other"); None = the checkpoint's calibrated
        default (0 for an uncalibrated checkpoint). ``consensus``: weight w of the k nearest neighbours' mean class
        probabilities in each atom's own (:mod:`lammps_phase.inference.consensus`; 0 = the network alone); None or
        "checkpoint" = the weight the checkpoint's threshold was calibrated with (0 for older checkpoints).
        ``pooling``: rounds over which α- or β-quartz is decided by the region (:mod:`lammps_phase.inference.order_pooling`;
        0 = off); None or "checkpoint" = the checkpoint's calibrated rounds.
        ``check_domain``: atoms whose neighbourhood lies outside the geometry of the training data (:mod:`lammps_phase.inference.domain`, stored in calibrated checkpoints)
        are −1 with confidence 0 instead of a confident guess. ``fast``: the fused inference path of :mod:`lammps_phase.model.fastpath` (same labels, logits within
        float32 noise): "auto"/True (compiled once enough atoms were seen, else eager kernels), "compile",
        "eager", or False for the reference PhaseNet forward. ``threads``: torch threads and neighbour-search
        workers, "auto" = this rank's cores. ``reuse_neighbors``: keep a Verlet-style candidate list between
        :meth:`classify` calls (successive snapshots of the same atoms) and rebuild it only when an atom may have
        changed its k nearest; it pays only against scipy's tree search (with the compiled search a fresh search,
        0.65 µs/atom at 10⁵ atoms on 2 threads, is 3x cheaper than a successful reuse). ``compile_after_atoms``
        (fast="auto"): compile once this many atoms were labelled (default 200 000; 0 = at the first call, for
        repeated in-situ calls). Making a Classifier tunes the process's heap (:func:`lammps_phase.runtime.tune_heap`).
        """
        if checkpoint.kind != "segmentation":
            raise LammpsPhaseError(
                f"a {checkpoint.kind!r} checkpoint labels one environment centre at a time; "
                "the Classifier needs a segmentation checkpoint"
            )
        if checkpoint.config.input_abs or checkpoint.config.graph != "input":
            raise LammpsPhaseError(
                "this checkpoint is an ablation model (absolute positions or embedding-space graph) that cannot "
                "label whole samples; use a model trained with graph='input' and input_abs=false"
            )
        self.checkpoint = checkpoint
        self.device = resolve_device(device)
        self.model = checkpoint.build().to(self.device)
        self.threshold = check_threshold(checkpoint.default_threshold if threshold is None else threshold)
        self.consensus = consensus_weight(consensus, checkpoint.default_consensus)
        self.pooling = pooling_rounds(pooling, checkpoint.default_pooling)
        self.order_pairs = order_pairs(checkpoint.classes)
        self.temperature = checkpoint.temperature
        self.domain = TrainingDomain.from_dict(checkpoint.domain) if checkpoint.domain and check_domain else None
        self.chunk = int(chunk)
        self.threads = runtime.set_threads(threads)
        runtime.tune_heap()
        self.fast: Optional[fastpath.FastPhaseNet] = None
        if fast not in (True, False, "auto", "compile", "eager"):
            raise LammpsPhaseError(f"fast must be True, False, 'auto', 'compile' or 'eager', not {fast!r}")
        if fast is not False:
            mode = {"compile": True, "eager": False}.get(fast, "auto")  # type: ignore[arg-type]
            extra = {} if compile_after_atoms is None else {"compile_after_atoms": int(compile_after_atoms)}
            try:
                self.fast = fastpath.FastPhaseNet(self.model, compile=mode, **extra)
            except LammpsPhaseError as err:
                if "tabulate" not in str(err):
                    raise
                # a weighting too steep for the interpolation table: evaluate it exactly (same labels, slower)
                self.fast = fastpath.FastPhaseNet(self.model, compile=mode, weighting="exact", **extra)
        self.neighbor_cache = NeighborCache(self.k, workers=self.threads) if reuse_neighbors else None
        self.last_timings: dict[str, float] = {}

    @classmethod
    def load(
        cls,
        path: Union[str, os.PathLike],
        device: str = "auto",
        threshold: Optional[float] = None,
        type_map: Optional[Sequence[str]] = None,
        fast: Union[bool, str] = "auto",
        threads: Union[int, str, None] = "auto",
        reuse_neighbors: bool = False,
        compile_after_atoms: Optional[int] = None,
        check_domain: bool = True,
        consensus: Union[float, str, None] = None,
        pooling: Union[int, str, None] = None,
    ) -> "Classifier":
        """The classifier of a checkpoint file, or of an ensemble file (``.toml``: several checkpoints read as
        one, :mod:`lammps_phase.inference.ensemble`)."""
        from lammps_phase.inference import ensemble

        if ensemble.is_ensemble(path):
            return ensemble.EnsembleClassifier.load(
                path, device=device, threshold=threshold, type_map=type_map, fast=fast, threads=threads,
                reuse_neighbors=reuse_neighbors, compile_after_atoms=compile_after_atoms, check_domain=check_domain,
                consensus=consensus, pooling=pooling)
        return cls(
            ckpt_io.load(path, type_map=type_map),
            device=device,
            threshold=threshold,
            fast=fast,
            threads=threads,
            reuse_neighbors=reuse_neighbors,
            compile_after_atoms=compile_after_atoms,
            check_domain=check_domain,
            consensus=consensus,
            pooling=pooling,
        )

    @property
    def classes(self) -> list[str]:
        return list(self.checkpoint.classes)

    @property
    def elements(self) -> list[str]:
        return self.checkpoint.elements

    @property
    def k(self) -> int:
        return self.checkpoint.k

    @property
    def receptive_hops(self) -> int:
        return self.checkpoint.config.receptive_hops

    @property
    def hop_neighbors(self) -> list[int]:
        """Neighbour count of each receptive hop, from the labelled atom outwards (ModelConfig.hop_neighbors)."""
        return self.checkpoint.config.hop_neighbors

    @property
    def kernels(self) -> str:
        """Which kernels label: "ahead-of-time", "compiled" or "eager" (the fused fast path) or "no fused" (the
        reference forward)."""
        if self.fast is None:
            return "no fused"
        return self.fast.kernel_kind

    @property
    def halo_widths(self) -> list[int]:
        """Widths of the arrays a halo supplies in one labelling (in-situ local mode): each layer's input, then
        with a consensus the class probabilities, then with order pooling (q, q·s) once per pair and round."""
        if self.fast is None:
            raise LammpsPhaseError("labelling with a halo from other ranks needs the fused path (fast != False)")
        return (list(self.fast.layer_input_widths) + ([len(self.classes)] if self.consensus > 0 else [])
                + [2] * (self.pooling * len(self.order_pairs)))

    @property
    def post_processed(self) -> bool:
        """Whether the labels come from probabilities reworked over the neighbour graph (consensus, pooling)."""
        return self.consensus > 0 or bool(self.pooling and self.order_pairs)

    def served_probabilities(self, probabilities: Union[np.ndarray, torch.Tensor], index: np.ndarray,
                             halo: Optional[fastpath.Halo] = None) -> np.ndarray:
        """What a user is given from calibrated probabilities (R, C) of the rows of the k-NN graph ``index``: the
        neighbour consensus, then the α/β order pooling (each when switched on); ``halo`` as in :meth:`logits`."""
        return served_probabilities(probabilities, index, self.consensus, self.order_pairs, self.pooling, halo)

    def receptive_radius(self, neighbors: NeighborList) -> float:
        """Distance (Å) beyond which atoms cannot influence labels in this structure (ModelConfig.receptive_radius)."""
        return self.checkpoint.config.receptive_radius(neighbors.distances)

    def species_indices(self, species: SpeciesLike, type_map: Optional[Sequence[str]] = None) -> np.ndarray:
        return element_indices(species_to_elements(species, type_map), self.elements,
                               "fix the type map or use a checkpoint trained for these elements")

    @torch.no_grad()
    def logits(self, species_idx: np.ndarray, neighbors: NeighborList, halo: Optional[fastpath.Halo] = None
               ) -> torch.Tensor:
        """Raw logits (M, C) for the atoms that own rows of ``neighbors`` (all atoms unless a query was used).

        ``halo``: the atoms after the rows get their layer inputs from it (:meth:`FastPhaseNet.__call__
        <lammps_phase.model.fastpath.FastPhaseNet.__call__>`; in-situ local mode), which needs the fused path."""
        dev = self.device
        t0 = time.perf_counter()
        sp = torch.as_tensor(species_idx, device=dev)
        index = torch.as_tensor(neighbors.index[:, : self.k], device=dev)
        vec = torch.as_tensor(np.ascontiguousarray(neighbors.vectors[:, : self.k]), dtype=torch.float32, device=dev)
        t1 = time.perf_counter()
        if halo is not None:
            if self.fast is None:
                raise LammpsPhaseError("labelling with a halo from other ranks needs the fused path (fast != False)")
            out = self.fast(sp, index, vec, halo=halo)
        elif self.fast is not None and index.shape[0] == sp.shape[0]:
            out = self.fast(sp, index, vec)
        else:  # reference path, also for neighbour lists of a query subset
            out = self.model(sp, index, vec, chunk=self.chunk)
        if out.device.type == "cuda":
            torch.cuda.synchronize(out.device)
        self.last_timings.update(convert=t1 - t0, network=time.perf_counter() - t1)
        return out

    def probabilities(self, logits: torch.Tensor) -> np.ndarray:
        """(M, C) calibrated class probabilities: the softmax of the logits over the checkpoint's temperature."""
        return ckpt_io.calibrated_probabilities(logits, self.temperature).cpu().numpy()

    def result_from_logits(self, logits: torch.Tensor, threshold: Optional[float] = None,
                           nearest: Optional[np.ndarray] = None, unfamiliar: Optional[np.ndarray] = None,
                           memory: Optional[LabelMemory] = None) -> PhaseResult:
        """Labels and calibrated confidences (softmax of logits / temperature); ``nearest`` (distance of each atom
        to its nearest neighbour) marks overlapping atoms (< MIN_SEPARATION), ``unfamiliar`` (bool per atom) atoms
        outside the training domain: both become OTHER with confidence 0. With ``memory`` the probabilities are
        blended into it first and the labels read from the blend (:mod:`lammps_phase.inference.memory`)."""
        if memory is not None:
            return self.result_from_probabilities(self.probabilities(logits), threshold, nearest, unfamiliar, memory)
        # the largest softmax probability, exp(z_max - z_max) / Σ exp(z - z_max), without the other
        # probabilities (4x faster than softmax then max)
        z = logits.float() / self.temperature
        top, lab = z.max(dim=-1, keepdim=True)
        conf = torch.exp(z - top).sum(dim=-1).reciprocal()
        labels = lab.squeeze(-1).to(torch.int32).cpu().numpy()
        return self._result(labels, conf.cpu().numpy().astype(np.float32), threshold, nearest, unfamiliar)

    def result_from_probabilities(self, probabilities: np.ndarray, threshold: Optional[float] = None,
                                  nearest: Optional[np.ndarray] = None, unfamiliar: Optional[np.ndarray] = None,
                                  memory: Optional[LabelMemory] = None) -> PhaseResult:
        """:meth:`result_from_logits` from calibrated class probabilities (M, C), e.g. after a neighbour consensus."""
        if memory is not None:
            probabilities = memory.update(probabilities)
        labels = np.argmax(probabilities, axis=1).astype(np.int32)
        confidence = probabilities[np.arange(len(labels)), labels].astype(np.float32)
        return self._result(labels, confidence, threshold, nearest, unfamiliar)

    def _result(self, labels: np.ndarray, confidence: np.ndarray, threshold: Optional[float],
                nearest: Optional[np.ndarray], unfamiliar: Optional[np.ndarray]) -> PhaseResult:
        """The threshold and the screens' verdicts applied to labels and confidences."""
        thr = self.threshold if threshold is None else check_threshold(threshold)
        if thr > 0:
            labels[confidence < thr] = OTHER
        if nearest is not None:
            overlap = np.asarray(nearest)[: len(labels)] < MIN_SEPARATION
            labels[overlap] = OTHER
            confidence[overlap] = 0.0
        count = 0
        if unfamiliar is not None:
            flagged = np.asarray(unfamiliar, dtype=bool)[: len(labels)]
            labels[flagged] = OTHER
            confidence[flagged] = 0.0
            count = int(flagged.sum())
        return PhaseResult(labels=labels, confidence=confidence, classes=self.classes, unfamiliar=count)

    def classify(
        self,
        positions: np.ndarray,
        cell: Optional[np.ndarray],
        species: SpeciesLike,
        pbc: Sequence[bool] = (True, True, True),
        origin: Sequence[float] = (0.0, 0.0, 0.0),
        type_map: Optional[Sequence[str]] = None,
        threshold: Optional[float] = None,
        memory: Optional[LabelMemory] = None,
    ) -> PhaseResult:
        """Label every atom. ``cell`` rows are the box vectors; ``species`` element names, or LAMMPS types + type_map;
        ``memory``: rows of earlier labellings' probabilities, one per atom, updated in place (:class:`LabelMemory`)."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise LammpsPhaseError(f"positions must be an (N, 3) array, got shape {positions.shape}")
        if len(species) != len(positions):
            raise LammpsPhaseError(f"{len(species)} species for {len(positions)} atoms: give one species per atom")
        if not np.isfinite(positions).all():
            bad = int(np.flatnonzero(~np.isfinite(positions).all(axis=1))[0])
            raise LammpsPhaseError(f"atom {bad} (0-based) has a non-finite position {positions[bad].tolist()}: "
                                   "the configuration is broken (a blown-up run?); nothing to label")
        sp = self.species_indices(species, type_map)
        t0 = time.perf_counter()
        periodic = pbc_flags(pbc)
        if self.neighbor_cache is not None:
            nl = self.neighbor_cache.get(positions, cell, pbc=periodic, origin=origin, species=sp)
        else:
            nl = knn(positions, self.k, cell=cell, pbc=periodic, origin=origin, workers=self.threads)
        self.last_timings = {"neighbors": time.perf_counter() - t0}
        nearest, unfamiliar = self._screen(sp, nl, len(nl.index))
        if self.neighbor_cache is None:  # ours alone: the distances go before the network, which needs none
            nl = NeighborList(index=nl.index, vectors=nl.vectors, distances=np.empty((len(nl.index), 0), np.float32))
        if len(positions) >= RELEASE_MEMORY_ATOMS:
            runtime.release_free_memory()  # the search's freed temporaries, before the network's peak
        return self._label(sp, nl, len(nl.index), nearest, unfamiliar, threshold, None, memory)

    def classify_neighbors(
        self,
        species_idx: np.ndarray,
        neighbors: NeighborList,
        labelled: Optional[int] = None,
        threshold: Optional[float] = None,
        halo: Optional[fastpath.Halo] = None,
        memory: Optional[LabelMemory] = None,
    ) -> PhaseResult:
        """Label from a neighbour list already built: the one road from a graph to labels.

        :meth:`classify` builds the periodic graph of a whole sample; the in-situ local mode builds the graph
        of its owned + ghost atoms and labels only the owned ones, the first ``labelled`` rows (default: all).
        ``species_idx`` comes from :meth:`species_indices`, one per atom the rows point at; ``halo``: see :meth:`logits`;
        ``memory``: one row per labelled atom (:meth:`classify`).
        """
        n = len(neighbors.index) if labelled is None else int(labelled)
        nearest, unfamiliar = self._screen(species_idx, neighbors, n)
        return self._label(species_idx, neighbors, n, nearest, unfamiliar, threshold, halo, memory)

    def _screen(self, species_idx: np.ndarray, neighbors: NeighborList, n: int
                ) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """What the distances say about the first n rows, before any network: each atom's nearest-neighbour
        distance (overlaps) and, with a training domain, whether its neighbourhood lies outside it."""
        t0 = time.perf_counter()
        nearest = neighbors.distances[:n, 0].copy()
        unfamiliar = None
        if self.domain is not None:
            unfamiliar = outside(self.domain, species_idx, neighbors.index[:n], neighbors.distances[:n],
                                 threads=self.threads)
        self.last_timings["screen"] = time.perf_counter() - t0
        return nearest, unfamiliar

    def _label(self, species_idx: np.ndarray, neighbors: NeighborList, n: int, nearest: np.ndarray,
               unfamiliar: Optional[np.ndarray], threshold: Optional[float], halo: Optional[fastpath.Halo],
               memory: Optional[LabelMemory] = None) -> PhaseResult:
        """The network on the graph, then labels of the first n rows with the screen's verdicts applied."""
        logits = self.logits(species_idx, neighbors, halo)
        t1 = time.perf_counter()
        if self.post_processed:
            probabilities = self.served_probabilities(self.probabilities(logits), neighbors.index[:, : self.k], halo)
            result = self.result_from_probabilities(probabilities[:n], threshold, nearest=nearest,
                                                    unfamiliar=unfamiliar, memory=memory)
        else:
            result = self.result_from_logits(logits[:n], threshold, nearest=nearest, unfamiliar=unfamiliar,
                                             memory=memory)
        self.last_timings["result"] = time.perf_counter() - t1
        return result

    def classify_lammps_box(
        self,
        positions: np.ndarray,
        boxlo: Sequence[float],
        boxhi: Sequence[float],
        species: SpeciesLike,
        xy: float = 0.0,
        xz: float = 0.0,
        yz: float = 0.0,
        pbc: Sequence[bool] = (True, True, True),
        type_map: Optional[Sequence[str]] = None,
        threshold: Optional[float] = None,
        memory: Optional[LabelMemory] = None,
    ) -> PhaseResult:
        """Same as :meth:`classify` with the box given as LAMMPS does (lo/hi bounds and tilt factors)."""
        cell, origin = lammps_box_to_cell(boxlo, boxhi, xy, xz, yz)
        return self.classify(positions, cell, species, pbc=pbc, origin=origin, type_map=type_map, threshold=threshold,
                             memory=memory)

    def classify_atoms(self, atoms: "ase.Atoms", threshold: Optional[float] = None) -> PhaseResult:
        """Same as :meth:`classify` for an :class:`ase.Atoms`: its chemical symbols, cell (rows), ``pbc`` and
        cell displacement (origin). Atoms periodic in no direction are labelled without the cell."""
        pbc = tuple(bool(p) for p in np.broadcast_to(atoms.pbc, 3))
        cell = np.asarray(atoms.cell[:], dtype=np.float64) if any(pbc) else None
        origin = np.asarray(atoms.get_celldisp(), dtype=np.float64).reshape(3)
        return self.classify(atoms.get_positions(), cell, atoms.get_chemical_symbols(), pbc=pbc, origin=origin,
                             threshold=threshold)
