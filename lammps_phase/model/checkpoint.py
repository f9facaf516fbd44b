"""Checkpoints: one file with weights, model config, classes, elements, data fingerprint and metrics.

Loading never executes code from the file (``torch.load(weights_only=True)``): a checkpoint is data,
and users exchange them. Everything that is not a tensor is stored as plain JSON-like Python types.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from lammps_phase import __version__
from lammps_phase.atomic_write import atomic_path
from lammps_phase.config_schema import check_model_config
from lammps_phase.errors import LammpsPhaseError
from lammps_phase.model.network import ModelConfig, build_model

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "package_version", "kind", "config", "state_dict", "classes", "elements", "k")


def calibrated_probabilities(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The softmax of the logits over the calibration temperature (lammps_phase.training.calibration): the one
    place where a checkpoint's logits become probabilities."""
    return torch.softmax(logits.float() / temperature, dim=-1)


@dataclass
class Checkpoint:
    """A trained network and what it needs to be used correctly."""

    kind: str  # "segmentation" | "erhard"
    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    classes: list[str]
    data_fingerprint: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    package_version: str = __version__
    #: temperature scaling and default threshold fitted on validation data (lammps_phase.training.calibration)
    calibration: dict[str, float] = field(default_factory=dict)
    #: distance envelope of the training data (lammps_phase.inference.domain.TrainingDomain.to_dict())
    domain: dict[str, Any] = field(default_factory=dict)

    @property
    def elements(self) -> list[str]:
        return list(self.config.elements)

    @property
    def k(self) -> int:
        return self.config.k

    @property
    def temperature(self) -> float:
        """Logits are divided by this before the softmax (1 for an uncalibrated checkpoint)."""
        return float(self.calibration.get("temperature", 1.0))

    @property
    def default_threshold(self) -> float:
        """The calibrated confidence threshold below which an atom is "other" (0 for an uncalibrated checkpoint)."""
        return float(self.calibration.get("threshold", 0.0))

    @property
    def default_consensus(self) -> float:
        """The neighbour-consensus weight the threshold was chosen with (lammps_phase.inference.consensus; 0 =
        the network alone, as for checkpoints calibrated before it existed)."""
        return float(self.calibration.get("consensus", 0.0))

    @property
    def default_pooling(self) -> int:
        """The rounds of α/β order pooling the threshold was chosen with (lammps_phase.inference.order_pooling;
        0 = none, as for checkpoints calibrated before it existed)."""
        return int(self.calibration.get("pooling", 0))

    def build(self) -> torch.nn.Module:
        """The network with these weights, in eval mode."""
        try:
            model = build_model(self.config, self.kind)
        except (RuntimeError, ValueError, TypeError, KeyError) as err:  # a damaged config: negative sizes, ...
            raise LammpsPhaseError(f"checkpoint model config cannot be built ({type(err).__name__}: "
                                   f"{' '.join(str(err).split())[:160]}): the checkpoint is damaged") from None
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise LammpsPhaseError(f"checkpoint weights do not fit its model config: {first}") from None
        return model.eval()

    def check_elements(self, type_map: Sequence[str]) -> None:
        """Refuse a type map naming elements this model never saw."""
        unknown = sorted(set(type_map) - set(self.elements))
        if unknown:
            raise LammpsPhaseError(
                f"the model knows elements {' '.join(self.elements)} but the type map names {' '.join(unknown)}: "
                f"use a checkpoint trained for these elements or fix the type map (e.g. types=\"{' '.join(self.elements)}\")"
            )


def save(ckpt: Checkpoint, path: str | os.PathLike) -> None:
    """Write atomically (temp file + rename) so an interrupted save never leaves a corrupt checkpoint."""
    if len(ckpt.classes) != ckpt.config.num_classes:
        raise LammpsPhaseError(f"{len(ckpt.classes)} class names for a model with {ckpt.config.num_classes} outputs")
    payload = {
        "format_version": FORMAT_VERSION,
        "package_version": ckpt.package_version,
        "kind": ckpt.kind,
        "config": ckpt.config.to_dict(),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in ckpt.state_dict.items()},
        "classes": list(ckpt.classes),
        "elements": list(ckpt.config.elements),
        "k": ckpt.config.k,
        "data_fingerprint": ckpt.data_fingerprint,
        "metrics_json": json.dumps(ckpt.metrics, default=float),
        "calibration_json": json.dumps(ckpt.calibration, default=float),
        "domain_json": json.dumps(ckpt.domain, default=float),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path: str | os.PathLike, type_map: Optional[Sequence[str]] = None) -> Checkpoint:
    """Read a checkpoint safely; one clear error for missing, corrupt, incompatible or mismatched files."""
    path = Path(path)
    if path.is_dir():
        raise LammpsPhaseError(f"checkpoint {path} is a folder: give the path of a .pt file (e.g. checkpoints/sio2.pt)")
    if not path.is_file():
        raise LammpsPhaseError(f"checkpoint {path} does not exist: give the path of a .pt file (e.g. checkpoints/sio2.pt)")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not one of ours
        raise LammpsPhaseError(f"checkpoint {path} is not a lammps-phase checkpoint (not a torch archive: empty, "
                               "truncated or another kind of file)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise LammpsPhaseError(f"checkpoint {path} is corrupt or not a lammps-phase checkpoint ({first[:160]})") from None
    except Exception as err:  # weights_only refuses pickled code with UnpicklingError
        raise LammpsPhaseError(
            f"checkpoint {path} cannot be loaded safely ({type(err).__name__}): it contains objects other than tensors "
            "and plain data; lammps-phase never executes code from a checkpoint"
        ) from None
    if not isinstance(payload, dict):
        raise LammpsPhaseError(f"checkpoint {path} is not a lammps-phase checkpoint (top level is {type(payload).__name__})")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise LammpsPhaseError(f"checkpoint {path} lacks {', '.join(missing)}: it is not a complete lammps-phase checkpoint")
    if payload["format_version"] != FORMAT_VERSION:
        raise LammpsPhaseError(
            f"checkpoint {path} has format version {payload['format_version']}, this lammps-phase {__version__} reads "
            f"version {FORMAT_VERSION}: install the lammps-phase version that wrote it ({payload['package_version']})"
        )
    _check_payload_types(payload, path)
    check_model_config(payload["config"], f"checkpoint {path} is damaged: model config")
    try:
        config = ModelConfig.from_dict(dict(payload["config"]))
    except (TypeError, ValueError, LammpsPhaseError) as err:
        raise LammpsPhaseError(f"checkpoint {path} has an invalid model config: {err}") from None
    if list(payload["classes"]).__len__() != config.num_classes or list(payload["elements"]) != config.elements:
        raise LammpsPhaseError(f"checkpoint {path} is inconsistent: class or element lists do not match its config")
    ckpt = Checkpoint(
        kind=str(payload["kind"]),
        config=config,
        state_dict=dict(payload["state_dict"]),
        classes=[str(c) for c in payload["classes"]],
        data_fingerprint=str(payload.get("data_fingerprint", "")),
        metrics=_json_object(payload.get("metrics_json", "{}"), path, "metrics"),
        package_version=str(payload["package_version"]),
        calibration=_json_object(payload.get("calibration_json", "{}"), path, "calibration"),
        domain=_json_object(payload.get("domain_json", "{}"), path, "training domain"),
    )
    temperature, threshold, consensus = ckpt.temperature, ckpt.default_threshold, ckpt.default_consensus
    if not (0.0 < temperature < float("inf")) or not 0.0 <= threshold < 1.0 or not 0.0 <= consensus <= 1.0:
        raise LammpsPhaseError(f"checkpoint {path} is damaged: calibration temperature {temperature} / threshold "
                               f"{threshold} / consensus {consensus} out of range; use an intact copy of the "
                               "checkpoint")
    if type_map is not None:
        ckpt.check_elements(type_map)
    return ckpt


def _check_payload_types(payload: dict, path: Path) -> None:
    """Each stored field has the type this version writes; anything else is a damaged or foreign file."""

    def bad(key: str, want: str) -> LammpsPhaseError:
        return LammpsPhaseError(f"checkpoint {path} is damaged: {key} is {type(payload[key]).__name__}, expected {want}; "
                                "use an intact copy of the checkpoint")

    if not isinstance(payload["format_version"], int) or isinstance(payload["format_version"], bool):
        raise bad("format_version", "an integer")
    for key in ("package_version", "kind"):
        if not isinstance(payload[key], str):
            raise bad(key, "a string")
    if not isinstance(payload["config"], dict):
        raise bad("config", "a dict of model settings")
    state = payload["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise bad("state_dict", "a dict of parameter names to tensors")
    for key in ("classes", "elements"):
        if not isinstance(payload[key], (list, tuple)) or not all(isinstance(v, str) for v in payload[key]):
            raise bad(key, "a list of names")
    for key in ("metrics_json", "calibration_json", "domain_json"):
        if not isinstance(payload.get(key, "{}"), str):
            raise bad(key, "a JSON string")
    if not isinstance(payload.get("data_fingerprint", ""), str):
        raise bad("data_fingerprint", "a string")


def _json_object(text: str, path: Path, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as err:
        raise LammpsPhaseError(f"checkpoint {path} is damaged: its {what} are not JSON ({err}); "
                               "use an intact copy of the checkpoint") from None
    if not isinstance(value, dict):
        raise LammpsPhaseError(f"checkpoint {path} is damaged: its {what} are {type(value).__name__}, not a JSON object")
    return value


def fingerprint(*arrays_or_strings: Any) -> str:
    """A short content hash of training data, so a checkpoint names the data it was trained on."""
    h = hashlib.sha256()
    for a in arrays_or_strings:
        if hasattr(a, "tobytes"):
            h.update(a.tobytes())
        else:
            h.update(str(a).encode())
    return h.hexdigest()[:16]
