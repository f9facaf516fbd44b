"""The trainer never replaces a checkpoint it should not (lammps_phase.training.outputs)."""

from __future__ import annotations

import json

import pytest

from lammps_phase.errors import LammpsPhaseError
from lammps_phase.model import checkpoint as ckpt_io
from lammps_phase.training import config, outputs

from conftest import TINY


@pytest.fixture()
def tiny_config(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return config.load_config(path)


def test_an_existing_checkpoint_is_replaced_only_when_asked(tmp_path, tiny_config, random_sio2_checkpoint):
    out = tmp_path / "model.pt"
    out.write_bytes(random_sio2_checkpoint.read_bytes())
    work = tmp_path / "cache"
    with pytest.raises(LammpsPhaseError, match="--overwrite"):
        outputs.check_outputs(tiny_config, work, out, overwrite=False)
    outputs.check_outputs(tiny_config, work, out, overwrite=True)
    outputs.check_outputs(tiny_config, work, out, overwrite=False, writes_checkpoint=False)  # --stage heating
    # a rerun after an interrupt may replace what this work folder wrote itself, as long as it is unchanged
    work.mkdir()
    outputs.note_written(work, out)
    outputs.check_outputs(tiny_config, work, out, overwrite=False)
    ckpt = ckpt_io.load(out)
    ckpt.metrics["edited"] = 1
    ckpt_io.save(ckpt, out)  # changed since: someone else's now
    with pytest.raises(LammpsPhaseError, match="--overwrite"):
        outputs.check_outputs(tiny_config, work, out, overwrite=False)


def test_a_shipped_checkpoint_always_needs_overwrite(tmp_path, tiny_config, monkeypatch, random_sio2_checkpoint):
    shipped = tmp_path / "checkpoints"
    shipped.mkdir()
    out = shipped / "cu.pt"
    out.write_bytes(random_sio2_checkpoint.read_bytes())
    monkeypatch.setattr(outputs, "SHIPPED_CHECKPOINTS", shipped)
    work = tmp_path / "cache"
    work.mkdir()
    outputs.note_written(work, out)  # even if this work folder wrote it
    with pytest.raises(LammpsPhaseError, match="shipped with lammps-phase.*--overwrite"):
        outputs.check_outputs(tiny_config, work, out, overwrite=False)
    outputs.check_outputs(tiny_config, work, out, overwrite=True)


def test_the_real_shipped_checkpoints_are_protected(tiny_config, tmp_path):
    for name in ("cu.pt", "sio2.pt"):
        out = outputs.SHIPPED_CHECKPOINTS / name
        assert out.is_file()
        with pytest.raises(LammpsPhaseError, match="shipped"):
            outputs.check_outputs(tiny_config, tmp_path / "cache", out, overwrite=False)
    assert json.dumps(str(outputs.report_dir_for(outputs.SHIPPED_CHECKPOINTS / "cu.pt"))).endswith('cu_report"')
