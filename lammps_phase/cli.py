"""Command line: ``lammps-phase {classify,info,doctor,report}`` and ``lammps-phase-train``.

Every failure the user can fix ends as one line ``lammps-phase: error: …`` and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from lammps_phase import __version__
from lammps_phase.errors import LammpsPhaseError

if TYPE_CHECKING:
    from lammps_phase.inference.classify import Classifier

#: the prefix of every error line, whichever entry point printed it
PROG = "lammps-phase"

def _types(text: Optional[str]) -> Optional[list[str]]:
    return text.split() if text else None


def _probability(text: str) -> float:
    """argparse type of --threshold: a number in [0, 1] (nan and inf refused)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability: give a number in [0, 1] (e.g. 0.5)")
    return value


def _consensus(text: str) -> Optional[float]:
    """argparse type of classify --consensus: a weight in [0, 1], or "checkpoint" (None: the checkpoint's own)."""
    from lammps_phase.inference.consensus import consensus_argument

    try:
        return consensus_argument(text)
    except LammpsPhaseError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _pooling(text: str) -> Optional[int]:
    """argparse type of --pooling: whole rounds in [0, MAX_ROUNDS], or "checkpoint" (None: the model's own)."""
    from lammps_phase.inference.order_pooling import pooling_argument

    try:
        return pooling_argument(text)
    except LammpsPhaseError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _weight(text: str) -> float:
    from lammps_phase.inference.memory import check_weight

    try:
        return check_weight(text, "--memory")
    except LammpsPhaseError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _positive(text: str) -> float:
    """argparse type of lengths such as --bin-width: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0.0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number (Å)")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line, like every other error of lammps-phase (usage: see --help)."""

    def error(self, message: str):  # type: ignore[override]
        print(f"{PROG}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


#: from this many atoms in a frame on, `classify` says when the kernels built ahead of time would label faster
KERNEL_HINT_ATOMS = 20_000


def kernel_hint(clf: Classifier, model: str) -> str:
    """One line saying how to get the faster kernels, or "" when they are in use or cannot be built here."""
    from lammps_phase.model.kernels import compile_available

    fast = clf.fast
    if fast is None or fast.aot is not None or not compile_available(clf.device):
        return ""
    return (f"note: no kernels built ahead of time for {model} on this machine: the eager kernels label ≈ 2.5x "
            f"slower (and large inputs compile in this process); `lammps-phase kernels {model}` builds them once "
            "(1-2 min)")


def cmd_classify(args: argparse.Namespace) -> int:
    import numpy as np

    from lammps_phase.inference.classify import Classifier
    from lammps_phase.inference.formats import DumpWriter, count_frames, read_frames
    from lammps_phase.inference.memory import LabelMemory

    from lammps_phase.atomic_write import check_output

    type_map = _types(args.types)
    check_output(args.output, inputs=[args.input, args.model], option="-o")  # before any work; never an input
    source = read_frames(args.input)  # the format is judged now: a file that is no dump fails before the model loads
    clf = Classifier.load(args.model, device=args.device, threshold=args.threshold, type_map=type_map,
                          consensus=args.consensus, pooling=args.pooling)
    memory = LabelMemory.empty(0, len(clf.classes), args.memory) if args.memory is not None else None
    total = count_frames(args.input)
    names = clf.classes + ["other"]
    width = max(8, *(len(n) for n in names))
    out = sys.stdout
    header = "timestep  " + "".join(f"{n:>{width + 1}}" for n in names)
    print(f"classifying {args.input} with {args.model} (classes: "
          + ", ".join(f"{i}={c}" for i, c in enumerate(clf.classes)) + ", -1=other)", file=out)
    print(header, file=out)
    frames = 0
    unfamiliar = 0
    hint = "" if args.quiet else kernel_hint(clf, str(args.model))
    # The bar (stderr) and the table (stdout) share the terminal: rows go through bar.write, which clears the bar,
    # prints the row on its own line and redraws the bar below; leaving the `with` (also on an error) closes the
    # bar with a newline, so an error message starts a line of its own.
    with _bar(total, args.quiet) as bar, DumpWriter(args.output) as writer:
        for frame in source:
            if hint and frame.natoms >= KERNEL_HINT_ATOMS:
                bar.write(hint, file=sys.stderr)
                hint = ""
            if memory is not None:
                memory.follow(_atom_ids(frame, memory))
            res = clf.classify(
                frame.positions(), frame.cell(), frame.species(type_map), pbc=frame.pbc, origin=frame.boxlo,
                memory=memory,
            )
            writer.write(
                frame,
                extra={"phase": res.labels.astype(np.int64), "phase_conf": res.confidence},
                formats={"phase_conf": "%.4f"},
            )
            fr = res.fractions()
            if res.unfamiliar:
                unfamiliar += res.unfamiliar
                bar.write(f"warning: timestep {frame.timestep}: {res.unfamiliar} atom(s) "
                          f"({100 * res.unfamiliar / max(len(res.labels), 1):.1f} %) lie outside the geometry of "
                          "the model's training data (bond lengths, neighbour shells): labelled -1 (other); check "
                          "--types and the structure", file=sys.stderr)
            bar.write(f"{frame.timestep:>8d}  " + "".join(f"{fr[n]:>{width + 1}.4f}" for n in names), file=out)
            frames += 1
            bar.update(1)
        if frames == 0:  # inside the `with`: no output file is left behind
            raise LammpsPhaseError(f"{args.input} contains no frames")
    print(f"wrote {frames} frame(s) with columns phase, phase_conf to {args.output}", file=out)
    return 0


def _atom_ids(frame, memory):
    """The frame's atom ids for the label memory; without an id column, atoms are taken in file order, which
    needs the same number of atoms in every frame."""
    import numpy as np

    if "id" in frame.columns:
        return np.asarray(frame.columns["id"])
    if memory.ids is not None and len(memory.ids) != frame.natoms:
        raise LammpsPhaseError(f"timestep {frame.timestep} has {frame.natoms} atoms, the frame before "
                               f"{len(memory.ids)}, and no id column to match them by: --memory needs an id column "
                               "(dump custom ... id ...) when atoms come and go")
    return np.arange(1, frame.natoms + 1)


def cmd_ensemble(args: argparse.Namespace) -> int:
    """Write an ensemble file (lammps_phase.inference.ensemble), calibrated on held-out snapshots when given."""
    from lammps_phase.atomic_write import check_output
    from lammps_phase.inference.ensemble import SUFFIX, is_ensemble, write_ensemble

    if not is_ensemble(args.output):
        raise LammpsPhaseError(f"an ensemble file ends in {SUFFIX} (that is how lammps-phase tells it from a checkpoint): "
                               f"not {args.output}")
    check_output(args.output, inputs=args.member, option="output")
    validation = None
    if args.calibrate_on:
        from lammps_phase.data.datasets import SampleSet

        validation = SampleSet.load(args.calibrate_on)
    elif args.consensus or args.pooling:
        raise LammpsPhaseError("--consensus and --pooling are what the threshold is chosen with: each needs "
                               "--calibrate-on VAL_SAMPLES.h5")
    calibration = write_ensemble(args.output, args.member, validation, consensus=args.consensus, pooling=args.pooling)
    fitted = (f"temperature {calibration['temperature']:.3f}, threshold {calibration['threshold']:.3f}"
              + (f" with consensus {calibration['consensus']:g}" if calibration.get("consensus") else "")
              + (f", pooling {calibration['pooling']:g} rounds" if calibration.get("pooling") else "")
              if calibration else "uncalibrated (temperature 1, threshold 0): give --calibrate-on VAL_SAMPLES.h5")
    print(f"{args.output}: {len(args.member)} members, {fitted}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Refit a checkpoint's temperature and threshold on held-out snapshots (its training domain kept)."""
    from lammps_phase.atomic_write import check_output
    from lammps_phase.data.datasets import SampleSet
    from lammps_phase.model import checkpoint as ckpt_io
    from lammps_phase.training.calibration import calibrate_checkpoint

    check_output(args.output, inputs=[args.checkpoint, args.on], option="-o")
    ckpt = ckpt_io.load(args.checkpoint)
    validation = SampleSet.load(args.on)
    if validation.k < ckpt.k:
        raise LammpsPhaseError(f"{args.on} holds {validation.k} neighbours per atom, the checkpoint reads {ckpt.k}: "
                               "make the snapshots with the checkpoint's k (lammps-phase-train --stage datasets)")
    if list(validation.classes) != ckpt.classes or list(validation.elements) != ckpt.elements:
        raise LammpsPhaseError(f"{args.on} labels {', '.join(validation.classes)} from "
                               f"{' '.join(validation.elements)}, the checkpoint {', '.join(ckpt.classes)} from "
                               f"{' '.join(ckpt.elements)}: calibrate on the validation snapshots of the checkpoint's "
                               "own training config")
    fitted = calibrate_checkpoint(ckpt, validation, args.consensus, args.pooling)
    ckpt.calibration = fitted.to_dict()
    ckpt_io.save(ckpt, args.output)
    blend = (f" with consensus {fitted.consensus:g}" if fitted.consensus else "") + (
        f", pooling {fitted.pooling} rounds" if fitted.pooling else "")
    print(f"{args.output}: temperature {fitted.temperature:.3f}, threshold {fitted.threshold:.3f}{blend} on "
          f"{fitted.atoms} validation atoms: accuracy {fitted.accuracy:.4f} (network alone "
          f"{fitted.accuracy_network:.4f}), {fitted.accuracy_with_threshold:.4f} with the threshold "
          f"({100 * fitted.other_fraction:.2f} % below it)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from lammps_phase.inference import ensemble
    from lammps_phase.model import checkpoint as ckpt_io

    if ensemble.is_ensemble(args.checkpoint):
        members, calibration = ensemble.read_ensemble(args.checkpoint)
        if args.json:
            print(json.dumps({"ensemble": str(args.checkpoint), "members": [str(m) for m in members],
                              "calibration": calibration}, indent=2))
            return 0
        print(f"ensemble         {args.checkpoint}: the mean calibrated probabilities of {len(members)} checkpoints")
        for m in members:
            print(f"member           {m}")
        print("calibration      " + (", ".join(f"{k} {v:.3f}" for k, v in calibration.items()) or "none"))
        print(f"(each member: lammps-phase info {members[0]})")
        return 0
    ck = ckpt_io.load(args.checkpoint)
    cfg = ck.config
    info = {
        "checkpoint": str(args.checkpoint),
        "kind": ck.kind,
        "classes": {i: c for i, c in enumerate(ck.classes)},
        "elements": ck.elements,
        "k": cfg.k,
        "receptive_field_hops": cfg.receptive_hops,
        "receptive_hop_neighbors": cfg.hop_neighbors,
        "length_scale": cfg.length_scale,
        "config": cfg.to_dict(),
        "data_fingerprint": ck.data_fingerprint,
        "metrics": ck.metrics,
        "calibration": ck.calibration,
        "training_domain": ck.domain,
        "package_version": ck.package_version,
    }
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"checkpoint       {args.checkpoint}  ({ck.kind}, written by lammps-phase {ck.package_version})")
    print("classes          " + ", ".join(f"{i}={c}" for i, c in enumerate(ck.classes)) + ", -1=other")
    print(f"elements         {' '.join(ck.elements)}")
    print(f"k                {cfg.k}")
    radius = ck.metrics.get("receptive_radius_angstrom")
    extra = f"{radius:.1f} Å in its training structures: " if radius else ""
    print(f"receptive field  {extra}{cfg.receptive_hops} hops to the {cfg.hop_neighbors} nearest neighbours")
    print(f"layers           EdgeConv {cfg.channels} over {cfg.layer_neighbors} neighbours, pooled by "
          f"{cfg.aggregate.replace('_', ' and ')} → head {cfg.head}; graph {cfg.graph}; "
          f"spatial weighting {'on' if cfg.spatial_weighting else 'off'}; length scale {cfg.length_scale}")
    if ck.calibration:
        cal = ck.calibration
        blend = (f" with neighbour consensus {ck.default_consensus:g}" if ck.default_consensus else "") + (
            f", α/β order pooling {ck.default_pooling} rounds" if ck.default_pooling else "")
        before, after = cal.get("ece_before", float("nan")), cal.get("ece_after", float("nan"))
        ece = (f"ECE {before:.4f} raw → {cal['ece_network']:.4f} scaled → {after:.4f} with the consensus"
               if ck.default_consensus and "ece_network" in cal else f"ECE {before:.4f} → {after:.4f}")
        print(f"calibration      temperature {ck.temperature:.3f}, default threshold {ck.default_threshold:.3f}{blend} "
              f"(validation: {ece}, {100 * cal.get('other_fraction', 0.0):.2f} % of atoms below the threshold)")
    else:
        print("calibration      none (raw softmax; threshold 0)")
    print("training domain  " + ("distance envelope of the training data: atoms outside it are labelled -1"
                                 if ck.domain else "none (every atom gets a class)"))
    print(f"data fingerprint {ck.data_fingerprint or '-'}")
    for key, val in ck.metrics.items():
        if key != "receptive_radius_angstrom":
            print(f"metric           {key} = {json.dumps(val, default=str)}")
    return 0


def cmd_kernels(args: argparse.Namespace) -> int:
    """Build the fused kernels of each checkpoint ahead of time (lammps_phase.model.aot), once per machine."""
    from lammps_phase.inference.classify import Classifier
    from lammps_phase.model import aot, fastpath

    if not fastpath.compile_available(args.device):
        raise LammpsPhaseError(f"building kernels for {args.device} needs a C++ compiler (CPU: g++) or Triton (CUDA); "
                               "without them lammps-phase runs its eager kernels")
    from lammps_phase.inference import ensemble

    paths = [m for p in args.checkpoint for m in (ensemble.read_ensemble(p)[0] if ensemble.is_ensemble(p) else [p])]
    for path in paths:
        clf = Classifier.load(path, device=args.device, fast="eager", check_domain=False)
        before = set(aot.cache_dir().glob("*.pt2"))
        built = clf.fast.build_kernels()
        fresh = [(p, t) for p, t in built if Path(p) not in before]
        print(f"{path}: {len(built)} kernel(s) in {aot.cache_dir()} ({len(fresh)} built now, "
              f"{sum(t for _, t in fresh):.0f} s); {clf.fast.kernel_kind} kernels from now on")
    from lammps_phase.inference import cell_knn

    print(f"neighbour search: compiled, in {cell_knn.cache_dir()}" if cell_knn.available() else
          f"neighbour search: scipy's k-d tree ({cell_knn.failure() or 'LAMMPS_PHASE_KNN=tree'})")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from lammps_phase.doctor import run_doctor

    return run_doctor(as_json=args.json)


def cmd_report(args: argparse.Namespace) -> int:
    from lammps_phase.analysis.shock import report_command

    return report_command(args)


def _bar(total: Optional[int], quiet: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="frame", disable=quiet, file=sys.stderr, dynamic_ncols=True)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lammps-phase", description="Per-atom phase labels with a spatially weighted DGCNN.")
    p.add_argument("--version", action="version", version=f"lammps-phase {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("classify", help="label every atom of LAMMPS dumps, data files or extxyz files")
    c.add_argument("input", help="LAMMPS text dump (multi-frame, .gz ok), LAMMPS data file or extxyz")
    c.add_argument("--model", required=True, help="checkpoint (.pt), e.g. checkpoints/sio2.pt, or an ensemble of checkpoints (.toml, `lammps-phase ensemble`)")
    c.add_argument("--types", help='element of each LAMMPS atom type, in type order, e.g. "Si O"')
    c.add_argument("-o", "--output", required=True, help="output LAMMPS dump (.gz to compress)")
    c.add_argument("--threshold", type=_probability, default=None,
                   help="confidence (0..1) below which an atom is labelled -1 (other); default: the model's "
                        "calibrated threshold (lammps-phase info shows it)")
    c.add_argument("--memory", type=_weight, default=None, metavar="W",
                   help="average each atom's class probabilities over the frames, weight W on the newest "
                        "(0.5 ≈ the last three frames; atoms matched by their id column): labels that do not flicker")
    c.add_argument("--consensus", type=_consensus, default=None, metavar="W",
                   help="blend each atom's class probabilities with the mean of its k nearest neighbours', weight W on "
                        "theirs (0 = off; 0.5 = as much as its own): fewer lone wrong atoms, but a region smaller than "
                        "one neighbour shell (~3.5 Å in SiO2) reads as its surroundings; default: the weight the "
                        "model's threshold was calibrated with (lammps-phase info shows it)")
    c.add_argument("--pooling", type=_pooling, default=None, metavar="R",
                   help="decide alpha- or beta-quartz over R rounds of neighbours (0 = off; 8 = about 1 nm): the tilt "
                        "that tells them apart is a property of a region; a smaller region of one inside the other "
                        "reads as its surroundings; default: the model's calibrated rounds (lammps-phase info)")
    c.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_classify)

    i = sub.add_parser("info", help="show a checkpoint's classes, elements, k, receptive field and metrics")
    i.add_argument("checkpoint")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    e = sub.add_parser("ensemble", help="write an ensemble file: several checkpoints of the same classes read as one "
                                        "(mean probabilities; N networks' time)")
    e.add_argument("output", help="the ensemble file to write (.toml; members are stored relative to its folder)")
    e.add_argument("member", nargs="+", help="checkpoints of the same classes, elements and k (at least 2)")
    e.add_argument("--calibrate-on", metavar="SAMPLES.h5", default=None,
                   help="held-out snapshots (a training work folder's val_samples.h5) to fit the ensemble's "
                        "temperature and default threshold on")
    e.add_argument("--consensus", type=_probability, default=0.0, metavar="W",
                   help="choose the threshold on probabilities blended with the neighbours' (weight W) and store W "
                        "as the ensemble's default consensus (needs --calibrate-on)")
    e.add_argument("--pooling", type=_pooling, default=0, metavar="R",
                   help="rounds of alpha/beta-quartz order pooling to choose the threshold with and store as the "
                        "ensemble's default (needs --calibrate-on)")
    e.set_defaults(func=cmd_ensemble)

    b = sub.add_parser("calibrate", help="refit a checkpoint's temperature and default threshold on held-out "
                                         "snapshots, optionally with a neighbour consensus")
    b.add_argument("checkpoint")
    b.add_argument("--on", required=True, metavar="SAMPLES.h5",
                   help="held-out snapshots (a training work folder's val_samples.h5), never the test runs")
    b.add_argument("--consensus", type=_probability, default=0.0, metavar="W",
                   help="neighbour-consensus weight to choose the threshold with and store as the default "
                        "(0 = the network alone)")
    b.add_argument("--pooling", type=_pooling, default=0, metavar="R",
                   help="rounds of alpha/beta-quartz order pooling (after the consensus) to choose the threshold with "
                        "and store as the default (0 = none)")
    b.add_argument("-o", "--output", required=True, help="the calibrated checkpoint to write (may not be an input)")
    b.set_defaults(func=cmd_calibrate)

    k = sub.add_parser("kernels", help="build a checkpoint's fused kernels ahead of time (once per machine: later "
                                        "runs load them instead of compiling)")
    k.add_argument("checkpoint", nargs="+")
    k.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N")
    k.set_defaults(func=cmd_kernels)

    from lammps_phase.doctor import DOCTOR_DESCRIPTION, add_doctor_arguments

    d = sub.add_parser("doctor", help="check LAMMPS, MPI, torch and devices; say how to fix what is missing",
                       description=DOCTOR_DESCRIPTION)
    add_doctor_arguments(d)
    d.set_defaults(func=cmd_doctor)

    r = sub.add_parser("report", help="x-t diagram, phase fractions, snapshot and summary of a labelled shock dump")
    r.add_argument("dump", help="dump with i_phase (or phase) columns")
    r.add_argument("--classes", help="checkpoint (or ensemble file) whose class names to use (default: read from the dump's sidecar)")
    r.add_argument("-o", "--outdir", default=None, help="output folder (default: beside the dump)")
    r.add_argument("--axis", default="x", choices=["x", "y", "z"], help="shock axis")
    r.add_argument("--bin-width", type=_positive, default=2.0, help="bin width along the shock axis, Å (default 2)")
    r.set_defaults(func=cmd_report)
    return p


def _run(func, args) -> int:
    try:
        return int(func(args) or 0)
    except LammpsPhaseError as err:
        return _error(str(err))
    except OSError as err:  # the machine's side of a user's request: disk full, permissions, a vanished file
        where = f"{err.filename}: " if err.filename else ""
        return _error(f"{where}{err.strerror or err}")
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _error(message: str) -> int:
    """The one line of a failure the user can fix, and exit status 2."""
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return _run(args.func, args)


def build_train_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="lammps-phase-train",
        description="Heating runs → environment datasets → training → report, from one TOML config (cached, resumable).",
    )
    p.add_argument("config", help="training config, e.g. inputs/train_sio2.toml")
    p.add_argument("--stage", choices=["heating", "datasets", "train", "calibrate", "report", "all"], default="all",
                   help="run one stage only (earlier stages must be cached)")
    p.add_argument("--split", choices=["train", "val", "test"], action="append", default=None,
                   help="heating / datasets stage: only this split's runs (repeatable; default all), e.g. --stage "
                        "datasets --split val for `lammps-phase calibrate --on <workdir>/val_samples.h5`")
    p.add_argument("--workdir", default=None, help="cache folder (default: cache/<config name>)")
    p.add_argument("--output", default=None, help="checkpoint path (default: from the config)")
    p.add_argument("--force", action="store_true", help="redo the selected stage(s) even if cached")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing checkpoint at the output path (a shipped one too); without it the run "
                        "refuses before any heating")
    p.add_argument("-q", "--quiet", action="store_true")
    return p


def train_main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_train_parser().parse_args(argv)

    def run(a):
        from lammps_phase.training.pipeline import run_pipeline

        return run_pipeline(a.config, stage=a.stage, workdir=a.workdir, output=a.output, force=a.force, quiet=a.quiet,
                            overwrite=a.overwrite, splits=a.split)

    return _run(run, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
