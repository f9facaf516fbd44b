"""Nothing the trainer writes replaces a file it should not: the checks made before any stage runs.

An existing checkpoint is replaced only with ``--overwrite`` or when this work folder wrote it as it is now (a
rerun after an interrupt); a checkpoint shipped with the package always needs ``--overwrite``. What a work folder
wrote is recorded by content digest in ``WORK/outputs_written.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from lammps_phase.atomic_write import check_output, same_file, write_text
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.training.config import PipelineConfig

#: checkpoints shipped with the package (never overwritten without --overwrite)
SHIPPED_CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"
_OUTPUTS_RECORD = "outputs_written.json"


def report_dir_for(output: Path) -> Path:
    """Where the training report of checkpoint ``output`` goes: checkpoints/sio2.pt -> checkpoints/sio2_report/."""
    stem = output.with_suffix("")
    return stem.parent / f"{stem.name}_report"


def _digest(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _written_here(work: Path, out: Path) -> bool:
    """Whether this work folder wrote ``out`` as it is now (a rerun after an interrupt may replace it)."""
    try:
        record = json.loads((work / _OUTPUTS_RECORD).read_text())
        return record.get(str(out.resolve())) == _digest(out)
    except (OSError, ValueError, AttributeError):
        return False


def note_written(work: Path, out: Path) -> None:
    """Record that this work folder wrote ``out`` as it is now (see :func:`check_outputs`)."""
    try:
        record = json.loads((work / _OUTPUTS_RECORD).read_text())
        record = record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        record = {}
    record[str(out.resolve())] = _digest(out)
    write_text(work / _OUTPUTS_RECORD, json.dumps(record, indent=1))


def check_outputs(cfg: PipelineConfig, work: Path, out: Path, overwrite: bool, writes_checkpoint: bool = True) -> None:
    """Before any stage runs: the work folder and the checkpoint path can be written, the checkpoint is not an
    input, and an existing checkpoint is replaced only with ``overwrite`` (or when this work folder wrote it;
    a shipped one under checkpoints/ always needs ``overwrite``)."""
    if work.exists() and not work.is_dir():
        raise LammpsPhaseError(f"--workdir {work} is a file: give a folder for the cached runs and datasets")
    inputs = [cfg.source] + [spec.structure for spec in cfg.phases if Path(spec.structure).is_file()]
    check_output(out, inputs=inputs, option="output", create_parent=True)
    report_dir = report_dir_for(out)
    if report_dir.exists() and not report_dir.is_dir():
        raise LammpsPhaseError(f"the report folder {report_dir} of output {out} is a file: move it away or choose "
                               "another output path")
    if not out.exists() or overwrite or not writes_checkpoint:
        return
    shipped = SHIPPED_CHECKPOINTS.is_dir() and same_file(out.resolve().parent, SHIPPED_CHECKPOINTS)
    if shipped or not _written_here(work, out):
        what = "a checkpoint shipped with lammps-phase" if shipped else "an existing file this work folder did not write"
        raise LammpsPhaseError(
            f"output {out} is {what}: lammps-phase-train does not overwrite it; pass --overwrite to replace it, "
            f"or choose another path with --output or `output = ...` in {cfg.source}")
