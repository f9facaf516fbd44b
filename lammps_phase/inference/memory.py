"""Label memory: each atom's class probabilities averaged over successive labellings.

One labelling sees one instant, and the thermal motion of that instant can put an atom next to an interface or a
free surface on either side of the model's boundary. Measured on held-out BKS runs continued by MD and labelled
every 0.1 ps (``benchmarks/label_memory.py --md 1.0``, ``sio2.pt``), ``w`` = 0.5 lifts atoms within 3 Å of an
interface from 0.899 to 0.907, and the outer 2 Å of hot slabs and clusters from 0.907 / 0.769 to 0.931 / 0.809.
The truth those runs carry is itself taken from time-averaged positions (:mod:`lammps_phase.data.variants`).

The average is exponential, so it needs one row per atom and nothing else::

    m_t = w · p_t + (1 − w) · m_{t−1}          label = argmax m_t,   confidence = max m_t

``w`` = 1 is no memory; ``w`` = 0.5 weighs the last labellings ½, ¼, ⅛, … (about three labellings). A row that
holds no distribution yet (all zeros: an atom never labelled, or created since) starts from ``p_t``. In LAMMPS the
rows live in a ``fix property/atom d2_…`` array, so they move with their atoms between ranks and are written to
restart files (:class:`lammps_phase.insitu.labeler.PhaseLabeler`, ``memory=``).

The price is lag: a change of phase shows in the label once its probability outweighs the memory of the old phase,
after 1–2 labellings with ``w`` = 0.5. Label often enough that this is shorter than what you resolve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from lammps_phase.errors import LammpsPhaseError

__all__ = ["LabelMemory", "check_weight"]


def check_weight(weight: float, name: str = "memory_weight") -> float:
    """The weight of the newest labelling, 0 < w ≤ 1 (1: no memory); ``name``: the option it came from."""
    try:
        w = float(weight)
    except (TypeError, ValueError):
        raise LammpsPhaseError(f"{name} {weight!r} must be a number in (0, 1]: 1 is no memory, 0.5 "
                               "averages about three labellings") from None
    if not 0.0 < w <= 1.0:
        raise LammpsPhaseError(f"{name} {weight} must lie in (0, 1]: 1 is no memory, 0.5 averages about "
                               "three labellings")
    return w


@dataclass
class LabelMemory:
    """Rows of averaged class probabilities, one per atom, updated in place by :meth:`update`.

    ``values`` (n, classes) is the caller's array (a LAMMPS per-atom array, or one kept between frames);
    ``weight`` is ``w`` of the module docstring.
    """

    values: np.ndarray
    weight: float = 0.5
    ids: Optional[np.ndarray] = None  # the atoms the rows belong to, once :meth:`follow` has been used

    def __post_init__(self) -> None:
        self.weight = check_weight(self.weight)
        if not isinstance(self.values, np.ndarray) or self.values.ndim != 2:
            raise LammpsPhaseError("the label memory needs an (atoms, classes) array")

    def follow(self, ids: np.ndarray) -> None:
        """Reorder the rows to the atoms ``ids`` (one per atom, unique) of the next labelling: rows of atoms seen
        before move with them, new atoms start empty, atoms gone are forgotten. For frames whose atoms come in
        another order each time (a dump written without ``sort id``) or change in number."""
        ids = np.asarray(ids).astype(np.int64).ravel()
        if len(np.unique(ids)) != len(ids):
            raise LammpsPhaseError("atom ids repeat within a frame: the label memory cannot tell the atoms apart")
        rows = np.zeros((len(ids), self.values.shape[1]))
        if self.ids is not None and len(self.ids):
            order = np.argsort(self.ids)
            where = np.clip(np.searchsorted(self.ids, ids, sorter=order), 0, len(self.ids) - 1)
            seen = self.ids[order[where]] == ids
            rows[seen] = self.values[order[where[seen]]]
        self.values, self.ids = rows, ids

    @classmethod
    def empty(cls, atoms: int, classes: int, weight: float = 0.5) -> "LabelMemory":
        """A memory for ``atoms`` atoms that has seen nothing yet."""
        return cls(np.zeros((atoms, classes)), weight)

    def update(self, probabilities: np.ndarray) -> np.ndarray:
        """Blend one labelling's probabilities (n, classes) into the rows; returns the updated rows (a view)."""
        p = np.asarray(probabilities)
        if p.shape != self.values.shape:
            raise LammpsPhaseError(f"the label memory holds {self.values.shape[0]} atoms × {self.values.shape[1]} "
                                   f"classes but this labelling has {p.shape[0]} × {p.shape[1]}: give the memory "
                                   "one column per class of the model")
        fresh = ~(self.values.sum(axis=1) > 0.5)  # never written (zeros), or not a distribution at all
        self.values *= 1.0 - self.weight
        self.values += self.weight * p
        self.values[fresh] = p[fresh]
        return self.values
