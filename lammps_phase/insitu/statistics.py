"""What in-situ labelling costs each rank: atoms owned, atoms put through the model, bytes moved, seconds.

Exact counts, not timings: they are what a scaling study on a shared or oversubscribed machine can trust
(docs/scaling.md). `PhaseLabeler.stats` holds them per rank; `PhaseLabeler.report` prints them.

Kept always (a few integers per call): ``labeler.stats`` holds, on each rank, the last call and
per-mode totals of atoms owned, atoms put through the model ("labelled": gather mode all atoms on rank 0 and
none elsewhere; local mode exactly the atoms the rank owns), bytes this
rank sent and received for the labelling, and wall seconds. ``labeler.report(ptr)`` (collective) prints one
line per rank and mode; from the deck, define ``def phase_report(ptr): labeler.report(ptr)`` next to
``phase_step`` and after the run::

    python     phase_report input 1 SELF format p exists
    python     phase_report invoke
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = ["CallStats", "LabelerStats", "ModeTotals", "Traffic", "recording_deck_code"]


@dataclass(frozen=True)
class CallStats:
    """One labelling seen from one rank.

    Bytes are the payload of the collectives of that labelling as this rank sees them, its own share never
    counted (MPI's algorithms may move more internally): Gatherv/Scatterv — a non-root rank its own atoms, the
    root everybody else's; Allgather — own part out, the others' parts in; Allreduce — the vector out and in;
    bcast — the root out, the others in; allgathered error agreements (a pickled None unless something
    failed) as this rank's message out and one of the same size in from every other rank. ``atom_sent``/``atom_received`` are the part that scales with atoms
    (gather mode: x 24 + type 4 + id 8 B per atom in, label 4 + confidence 8 B per atom back; local mode: each
    layer's float32 inputs of the halo atoms, 4 B × the summed layer input widths per halo atom; building the
    halo plan adds 8 B per atom ID asked and 1 B per answer to the other bytes).
    """

    mode: str  # the path taken: "gather" or "local"
    step: int
    owned: int  # atoms this rank owns
    labelled: int  # atoms this rank put through the model
    sent: int  # bytes, all of this labelling's collectives
    received: int
    atom_sent: int  # of which per-atom arrays
    atom_received: int
    seconds: float  # wall time of the call on this rank (waiting included)


@dataclass
class ModeTotals:
    """Sums over the labellings of one mode on one rank."""

    calls: int = 0
    owned: int = 0
    labelled: int = 0
    sent: int = 0
    received: int = 0
    atom_sent: int = 0
    atom_received: int = 0
    seconds: float = 0.0

    def add(self, call: CallStats) -> None:
        self.calls += 1
        for name in ("owned", "labelled", "sent", "received", "atom_sent", "atom_received", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(call, name))


@dataclass
class LabelerStats:
    """This rank's labelling statistics: the last call and totals per mode ("gather", "local")."""

    last: Optional[CallStats] = None
    by_mode: dict = field(default_factory=dict)  # mode -> ModeTotals

    def add(self, call: CallStats) -> None:
        self.last = call
        self.by_mode.setdefault(call.mode, ModeTotals()).add(call)

    def lines(self, rank: int, size: int) -> list[str]:
        """One line per mode used, per-labelling means."""
        out = []
        for mode, t in self.by_mode.items():
            n = max(t.calls, 1)
            ratio = f"{t.labelled / t.owned:.2f}" if t.owned else "-"
            out.append(f"lammps-phase: stats rank {rank} of {size}, mode {mode}: {t.calls} labelling(s); per "
                       f"labelling owned {t.owned / n:.0f}, labelled {t.labelled / n:.0f} ({ratio} x owned), "
                       f"sent {t.sent / n:.0f} B, received {t.received / n:.0f} B "
                       f"(atom arrays {t.atom_sent / n:.0f} / {t.atom_received / n:.0f} B), {t.seconds / n:.4f} s")
        return out or [f"lammps-phase: stats rank {rank} of {size}: no labelling yet"]

    def gathered_lines(self, comm: Any) -> list[str]:
        """Collective: every rank's lines, in rank order."""
        rank, size = comm.Get_rank(), comm.Get_size()
        return [line for mine in comm.allgather(self.lines(rank, size)) for line in mine]


class Traffic:
    """What the current call sends, receives and labels on this rank (see CallStats)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.mode = "gather"
        self.labelled = 0
        self.sent = self.received = self.atom_sent = self.atom_received = 0

    def add(self, sent: int = 0, received: int = 0, atoms: bool = False) -> None:
        if self.size < 2:  # one rank: nothing leaves it
            return
        self.sent += int(sent)
        self.received += int(received)
        if atoms:
            self.atom_sent += int(sent)
            self.atom_received += int(received)

    def call(self, step: int, owned: int, seconds: float) -> CallStats:
        """This call's statistics, once it is done."""
        return CallStats(mode=self.mode, step=step, owned=owned, labelled=self.labelled, sent=self.sent,
                         received=self.received, atom_sent=self.atom_sent, atom_received=self.atom_received,
                         seconds=seconds)

    def allgathered(self, obj: Any) -> None:
        """An allgather of a pickled object (error agreement): the same-size message from every rank assumed."""
        n = len(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
        self.add(n, n * (self.size - 1))


def recording_deck_code(json_name: str) -> str:
    """Python lines for a deck's ``python phase_step ... here`` block, replacing ``def phase_step(ptr): labeler(ptr)``:
    label, keep every call's CallStats, and ``dump_stats(ptr)`` (call it after the run) reports and writes them to
    ``json_name`` (``{rank}`` is replaced by the MPI rank). Used by benchmarks/scaling.py and the statistics test."""
    return "\n".join([
        "import dataclasses, json",
        "from mpi4py import MPI",
        "history = []",
        "def phase_step(ptr):",
        "    labeler(ptr)",
        "    history.append(dataclasses.asdict(labeler.stats.last))",
        "def dump_stats(ptr):",
        "    labeler.report(ptr)",
        f"    with open({json_name!r}.format(rank=MPI.COMM_WORLD.Get_rank()), 'w') as f: json.dump(history, f)",
    ])
