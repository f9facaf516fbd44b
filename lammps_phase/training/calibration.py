"""Confidence that means what it says: temperature scaling and the default "other" threshold.

A network trained with cross-entropy is over-confident: 0.99 does not mean right 99 times in 100. Temperature
scaling (Guo et al. 2017) divides the logits by one number T fitted on held-out validation atoms, minimising
their negative log-likelihood; labels do not change, confidences do. The shipped threshold is then the largest
confidence below which atoms are called "other" (−1) while costing at most `MAX_ACCURACY_DROP` of the
validation accuracy: uncertain atoms are marked, and in-distribution accuracy barely moves.

With a neighbour consensus (:mod:`lammps_phase.inference.consensus`) the labels and confidences are those of the
blended probabilities, so the threshold is chosen on them, over each validation snapshot's own k-NN graph, and the
weight is stored beside it: a checkpoint's threshold and consensus are one choice. The temperature is fitted on the
network's logits either way. The blend is less sure than its parts (the shipped model: validation ECE 0.0009 for the
scaled network, 0.011 for its blend with w = 0.5, under-confident): a second temperature fitted to the blend made its
confidence calibrated (ECE 0.0011) but the threshold then cost more atoms at interfaces, clusters and voids than
the under-confident blend does (benchmarks/RESULTS.md, "Session 24"), so labels came first. The α/β order pooling
(:mod:`lammps_phase.inference.order_pooling`) follows the consensus in the same way: its rounds are stored with the
threshold chosen on what it serves.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.inference.consensus import check_consensus
from lammps_phase.inference.order_pooling import check_rounds, order_pairs, served_probabilities

MAX_ACCURACY_DROP = 0.0015  # at most 0.15 % of validation atoms turn from right to "other": the target is <= 0.2 %
# on held-out runs, and a threshold fitted on one set of runs spends a little more on another
_LOG_T_RANGE = (math.log(0.05), math.log(20.0))
_HIGHEST_THRESHOLD = 1.0 - 1e-6  # checkpoints hold thresholds in [0, 1)


@dataclass(frozen=True)
class Calibration:
    temperature: float  # logits are divided by this before the softmax
    threshold: float  # default confidence threshold (atoms below it are labelled -1)
    nll_before: float
    nll_after: float
    ece_before: float  # expected calibration error (15 bins), before and after scaling
    ece_after: float
    accuracy: float  # validation accuracy without a threshold
    accuracy_with_threshold: float  # counting atoms below the threshold as wrong
    other_fraction: float  # validation atoms below the threshold
    atoms: int
    consensus: float = 0.0  # neighbour-consensus weight the labels, accuracies and threshold above were measured with
    accuracy_network: float = 0.0  # validation accuracy of the network alone (= accuracy without a consensus)
    ece_network: float = 0.0  # ECE of the scaled network alone (= ece_after without a consensus; with one, the blend's)
    pooling: int = 0  # rounds of α/β order pooling after the consensus, measured with like the consensus

    def to_dict(self) -> dict[str, float]:
        return {key: float(value) for key, value in self.__dict__.items()}


def _nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    return float(torch.nn.functional.cross_entropy(logits / temperature, labels))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, iterations: int = 60) -> float:
    """T > 0 minimising the NLL of softmax(logits / T): golden-section search on log T (the NLL is unimodal in it)."""
    lo, hi = _LOG_T_RANGE
    golden = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
    fa, fb = _nll(logits, labels, math.exp(a)), _nll(logits, labels, math.exp(b))
    for _ in range(iterations):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - golden * (hi - lo)
            fa = _nll(logits, labels, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + golden * (hi - lo)
            fb = _nll(logits, labels, math.exp(b))
    return math.exp((lo + hi) / 2.0)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Σ_bins (atoms in bin / atoms) · |accuracy in bin − mean confidence in bin|, equal-width confidence bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(total)


def choose_threshold(confidence: np.ndarray, correct: np.ndarray, max_drop: float = MAX_ACCURACY_DROP) -> float:
    """The largest threshold t < 1 such that the atoms right but below t are at most `max_drop` of all atoms (a
    threshold of 1 would call every atom short of certainty "other": a perfectly read validation set stops below)."""
    right = np.sort(confidence[correct])
    allowed = int(math.floor(max_drop * len(confidence)))
    if allowed == 0 or len(right) == 0:
        return 0.0
    # exactly `allowed` right atoms lie below right[allowed] (ties aside, which only lower the count)
    return min(float(right[min(allowed, len(right) - 1)]), _HIGHEST_THRESHOLD)


def calibrate(logits: torch.Tensor, labels: torch.Tensor, max_drop: float = MAX_ACCURACY_DROP,
              consensus: float = 0.0, index: Optional[np.ndarray] = None, pooling: int = 0,
              pairs: Sequence[tuple[int, int]] = ()) -> Calibration:
    """Fit the temperature and choose the threshold on validation logits (N, C) and labels (N,; -1 = ignored).

    ``consensus`` > 0: the threshold, labels and accuracies are those of the probabilities blended with weight
    ``consensus`` over the k-NN graph ``index`` (N, k; rows index the same N atoms, :func:`validation_graph`);
    ``pooling`` > 0: then pooled over it for that many rounds between the class ``pairs``
    (:func:`lammps_phase.inference.order_pooling.order_pairs`)."""
    logits = torch.as_tensor(logits, dtype=torch.float64)
    labels = torch.as_tensor(labels, dtype=torch.int64)
    pooling = check_rounds(pooling) if pairs else 0
    if (consensus > 0 or pooling) and (index is None or len(index) != len(labels)):
        raise LammpsPhaseError("a calibration with a neighbour consensus or order pooling needs the validation "
                               "atoms' k-NN graph (index, one row per atom)")
    keep = labels >= 0
    if int(keep.sum()) < 100:
        raise LammpsPhaseError(f"calibration needs validation atoms with labels: {int(keep.sum())} is too few (>= 100)")
    truth = labels[keep]
    temperature = fit_temperature(logits[keep], truth)
    scaled = torch.softmax(logits / temperature, dim=-1)
    served = scaled  # what a user is given: the scaled network, or its blend with the neighbours' (and pooled)
    if consensus > 0 or pooling:  # over every atom (an unlabelled one still votes for its neighbours), scored on
        # the labelled ones
        served = torch.from_numpy(served_probabilities(scaled, np.asarray(index), consensus, pairs, pooling)).double()
    raw = torch.softmax(logits[keep], dim=-1).max(dim=-1)
    network = scaled[keep].max(dim=-1)
    network_right = (network.indices == truth).numpy()  # scaling never changes which class wins: raw's too
    after = served[keep].max(dim=-1)
    correct = (after.indices == truth).numpy()
    conf_after = after.values.numpy()
    threshold = choose_threshold(conf_after, correct, max_drop)
    kept_right = correct & (conf_after >= threshold)
    return Calibration(
        temperature=temperature, threshold=threshold,
        nll_before=_nll(logits[keep], truth, 1.0), nll_after=_nll(logits[keep], truth, temperature),
        ece_before=expected_calibration_error(raw.values.numpy(), network_right),
        ece_after=expected_calibration_error(conf_after, correct),
        accuracy=float(correct.mean()), accuracy_with_threshold=float(kept_right.mean()),
        other_fraction=float((conf_after < threshold).mean()), atoms=int(len(truth)),
        consensus=float(consensus), accuracy_network=float(network_right.mean()),
        ece_network=expected_calibration_error(network.values.numpy(), network_right), pooling=pooling)


def validation_graph(data: Any, k: int) -> np.ndarray:
    """The k-NN graph (N, k) of every atom of a SampleSet, rows and entries indexing the whole set (each snapshot's
    own neighbour list shifted by where the snapshot starts): what a consensus over the validation atoms reads."""
    offsets = np.asarray(data.offsets, dtype=np.int64)
    starts = np.repeat(offsets[:-1], np.diff(offsets))
    return np.asarray(data.index[:, :k], dtype=np.int64) + starts[:, None]


def snapshot_graphs(data: Any) -> Iterator[tuple[np.ndarray, Any, np.ndarray]]:
    """(species, neighbour list, labels) per snapshot of a SampleSet: the graphs the network and the domain read."""
    from lammps_phase.inference.neighbors import INDEX_DTYPE, NeighborList

    for s in range(len(data)):
        lo, hi = int(data.offsets[s]), int(data.offsets[s + 1])
        vectors = np.asarray(data.vectors[lo:hi], dtype=np.float32)
        graph = NeighborList(index=np.asarray(data.index[lo:hi], dtype=INDEX_DTYPE), vectors=vectors,
                             distances=np.linalg.norm(vectors, axis=-1).astype(np.float32))
        yield np.asarray(data.species[lo:hi], dtype=np.int64), graph, np.asarray(data.labels[lo:hi], dtype=np.int64)


def validation_logits(classifier: Any, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, C) and labels (N,) of every atom of a SampleSet, through the Classifier (the inference path)."""
    logits, labels = [], []
    for species, graph, truth in snapshot_graphs(data):
        logits.append(classifier.logits(species, graph).float().cpu())
        labels.append(torch.from_numpy(truth))
    return torch.cat(logits), torch.cat(labels)


def calibrate_checkpoint(checkpoint: Any, val: Any, consensus: float = 0.0, pooling: int = 0) -> Calibration:
    """Calibration on the validation snapshots (a SampleSet), the threshold chosen with neighbour consensus
    ``consensus`` and ``pooling`` rounds of order pooling; whatever calibration the checkpoint held before is not
    read."""
    from lammps_phase.inference.classify import Classifier

    raw = copy.copy(checkpoint)
    raw.calibration, raw.domain = {}, {}  # fit on the raw softmax, whatever the checkpoint held before
    classifier = Classifier(raw, device="auto", threshold=0.0, check_domain=False, consensus=0.0)
    logits, labels = validation_logits(classifier, val)
    return calibrate(logits, labels, consensus=check_consensus(consensus), index=validation_graph(val, checkpoint.k),
                     pooling=pooling, pairs=order_pairs(checkpoint.classes))


def training_domain(checkpoint: Any, train: Any) -> Any:
    """The geometry envelope of the training snapshots (:mod:`lammps_phase.inference.domain`)."""
    from lammps_phase.inference import domain

    return domain.measure(((sp, g.index, g.distances) for sp, g, _ in snapshot_graphs(train)),
                          checkpoint.elements, checkpoint.k)
