"""The schema of a training config (``inputs/train_*.toml``), checked before any heating run starts.

Allowed keys and their types are read from the dataclasses the config fills — :class:`training.config.PhaseSpec`
([[phase]] blocks), :class:`training.config.PipelineConfig` ([runs]), :class:`model.ModelConfig` ([model]),
:class:`train.TrainConfig` ([train]) and :class:`DatasetConfig` / :class:`CalibrateConfig` / :class:`ReportConfig`
below — with
``dataclasses.fields`` and their type hints, so a field added to one of them is accepted, type-checked and
reported like every other at once. What a type cannot say (epochs >= 1, lr > 0, temperatures > 0 K, a
known potential and structure) is in the small tables below and in each dataclass's own ``__post_init__``,
which is run on the config's values here too. Every refusal names the file, the table and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from lammps_phase.errors import LammpsPhaseError

__all__ = ["CalibrateConfig", "DatasetConfig", "ReportConfig", "check_raw_config", "check_config", "check_model_config",
           "schema_of"]


@dataclass
class DatasetConfig:
    """[dataset]: how heating snapshots become training items (read by pipeline.stage_datasets)."""

    mode: str = "samples"  # "samples": whole snapshots as graphs | "environments": P-point environments
    points: int = 64  # environments: points per environment
    environments_per_frame: int = 64  # environments: environments drawn per snapshot

    def __post_init__(self) -> None:
        if self.mode not in ("samples", "environments"):
            raise LammpsPhaseError(f"mode must be 'samples' or 'environments', not {self.mode!r}")


@dataclass
class ReportConfig:
    """[report]: the held-out report (read by pipeline.stage_report)."""

    rotations: int = 24  # random rotations of one test frame per class for the label-agreement check
    dropped: dict[str, str] = field(default_factory=dict)  # class left out -> why (copied into the report)
    notes: dict[str, str] = field(default_factory=dict)  # class -> how its labels were restricted


@dataclass
class CalibrateConfig:
    """[calibrate]: the calibration stage (pipeline.stage_calibrate, lammps_phase.training.calibration)."""

    # neighbour-consensus weight stored with the threshold, which is chosen on the blended probabilities
    # (lammps_phase.inference.consensus; 0 = the network alone). Choose it on validation places:
    # benchmarks/place_spread.py --split val --threshold, one `lammps-phase calibrate` per weight
    consensus: float = 0.0
    # rounds of α/β order pooling after the consensus, stored and chosen on with it likewise
    # (lammps_phase.inference.order_pooling; 0 = none)
    pooling: int = 0


# PipelineConfig fields written as top-level keys, and those that are whole tables; every other field of it
# (but phases, from [[phase]], and source) is a [runs] setting.
_TOP_LEVEL_FIELDS = ("name", "elements", "potential", "output")
_TABLE_FIELDS = ("dataset", "model", "train", "calibrate", "report")
_NOT_RUNS = _TOP_LEVEL_FIELDS + _TABLE_FIELDS + ("phases", "source")
# Keys the pipeline sets itself: [model] elements / num_classes come from elements and the phases.
_SET_BY_PIPELINE = {"model": {"elements": "the config's elements", "num_classes": "the [[phase]] names"},
                    "train": {"progress": "lammps-phase-train -q"}}
# (table, key) -> (lowest value, whether the lowest value itself is refused); lists are checked per entry.
_MINIMUM: dict[tuple[str, str], tuple[float, bool]] = {
    ("runs", "supercell_min_length"): (0.0, True),
    ("runs", "snapshot_every_ps"): (0.0, True),
    ("runs", "ranks"): (1, False),
    ("dataset", "points"): (2, False),
    ("dataset", "environments_per_frame"): (1, False),
    ("model", "k"): (2, False),
    ("model", "num_classes"): (1, False),
    ("model", "channels"): (1, False),
    ("model", "head"): (1, False),
    ("model", "embed_dim"): (1, False),
    ("model", "radial_basis"): (1, False),
    ("model", "radial_max"): (0.0, True),
    ("model", "dropout"): (0.0, False),
    ("model", "bond_order_l"): (0, False),
    ("model", "bond_order_neighbors"): (2, False),
    ("model", "edge_angle_l"): (1, False),
    ("model", "edge_angle_neighbors"): (2, False),
    ("train", "epochs"): (1, False),
    ("train", "batch_size"): (1, False),
    ("train", "lr"): (0.0, True),
    ("train", "weight_decay"): (0.0, False),
    ("train", "alpha"): (0.0, False),
    ("train", "rotations"): (1, False),
    ("train", "max_batches"): (1, False),
    ("train", "threads"): (1, False),
    ("report", "rotations"): (1, False),
    ("calibrate", "consensus"): (0.0, False),
    ("calibrate", "pooling"): (0, False),
}
# (table, key) -> (highest value, whether the highest value itself is refused)
_MAXIMUM: dict[tuple[str, str], tuple[float, bool]] = {("model", "dropout"): (1.0, True),
                                                       ("calibrate", "consensus"): (1.0, False),
                                                       ("calibrate", "pooling"): (64, False)}
# integer settings of a table not listed above (counts: ranks, jobs, ...) are at least this
_INTEGER_MINIMUM = {"runs": (1, False)}
_NON_EMPTY = {("model", "channels"), ("runs", "seeds")}


def _phase_minimum(key: str) -> Optional[tuple[float, bool, str]]:
    """Bounds of [[phase]] settings by what they measure, so a new temperature or duration field is covered."""
    if key.startswith("t_") or "temperature" in key:
        return 0.0, True, " (kelvin)"
    if key == "ps" or key.endswith("_ps"):
        return 0.0, True, " (ps)"
    if key.endswith("rate") or key.endswith("msd"):
        return 0.0, True, ""
    if key.endswith("length") or key == "vacuum":
        return 0.0, False, " (Å)"
    return None


# ---------------------------------------------------------------------------------------------- types


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if hint is Any:
        return "any value"
    if origin is list:
        return f"a list of {_plural(args[0]) if args else 'values'}"
    if origin is dict:
        return f"a table of {_plural(args[1]) if len(args) > 1 else 'values'}"
    if origin is Union:
        return " or ".join(_describe(a) for a in args if a is not type(None))
    return getattr(hint, "__name__", str(hint))


def _plural(hint: Any) -> str:
    return {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}.get(
        hint, _describe(hint).replace("a list", "lists").replace("a table", "tables"))


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{...}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def check_type(value: Any, hint: Any, where: str) -> Any:
    """``value`` if it has type ``hint`` (ints count as floats; bools never count as numbers); else one error."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    problem = None
    if hint is Any:
        return value
    if origin is Union:
        for option in args:
            if option is type(None):
                continue
            try:
                return check_type(value, option, where)
            except LammpsPhaseError:
                pass
        problem = f"must be {_describe(hint)}"
    elif hint is bool:
        if not isinstance(value, bool):
            problem = "must be true or false"
    elif hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            problem = "must be an integer"
    elif hint is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problem = "must be a number"
        elif not math.isfinite(value):
            problem = "must be a finite number"
    elif hint is str:
        if not isinstance(value, str):
            problem = "must be a string"
    elif origin is list:
        if not isinstance(value, list):
            problem = f"must be {_describe(hint)}"
        else:
            for i, item in enumerate(value):
                check_type(item, args[0] if args else Any, f"{where}[{i}]")
            return value
    elif origin is dict:
        if not isinstance(value, dict):
            problem = f"must be {_describe(hint)}"
        else:
            for key, item in value.items():
                check_type(item, args[1] if len(args) > 1 else Any, f"{where}.{key}")
            return value
    if problem:
        refused = "" if isinstance(value, float) and problem.endswith("finite number") else f", not {_kind(value)}"
        raise LammpsPhaseError(f"{where} = {_toml(value)} {problem}{refused}")
    return value


def schema_of(cls: type, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """Field name -> type hint of a dataclass (the allowed keys of the table it fills)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name not in exclude}


# ---------------------------------------------------------------------------------------------- tables


def _unknown(key: str, allowed: Any, where: str, what: str) -> LammpsPhaseError:
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return LammpsPhaseError(f"{where} has no {what} '{key}' ({hint}known: {', '.join(sorted(allowed))})")


def _bounds(value: Any, key: str, where: str, minimum: Optional[tuple[float, bool]],
            maximum: Optional[tuple[float, bool]], unit: str = "") -> None:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if minimum is not None:
            low, strict = minimum
            if v < low or (strict and v == low):
                need = f"greater than {low:g}" if strict else f"at least {low:g}"
                raise LammpsPhaseError(f"{where} {key} = {_toml(value)}: must be {need}{unit}")
        if maximum is not None:
            high, strict = maximum
            if v > high or (strict and v == high):
                need = f"less than {high:g}" if strict else f"at most {high:g}"
                raise LammpsPhaseError(f"{where} {key} = {_toml(value)}: must be {need}{unit}")


def _check_table(table: Any, schema: dict[str, Any], section: str, where: str,
                 set_by_pipeline: Optional[dict[str, str]] = None) -> None:
    if not isinstance(table, dict):
        raise LammpsPhaseError(f"{where} must be a table ([{section}] followed by key = value lines), not {_kind(table)}")
    for key, value in table.items():
        if set_by_pipeline and key in set_by_pipeline:
            raise LammpsPhaseError(f"{where} {key} is set by lammps-phase-train from {set_by_pipeline[key]}: remove it")
        if key not in schema:
            raise _unknown(key, schema, where, "setting")
        check_type(value, schema[key], f"{where} {key}")
        if (section, key) in _NON_EMPTY and not value:
            raise LammpsPhaseError(f"{where} {key} is empty: give at least one value")
        minimum = _MINIMUM.get((section, key)) or (_INTEGER_MINIMUM.get(section) if schema[key] is int else None)
        _bounds(value, key, where, minimum, _MAXIMUM.get((section, key)))


def check_model_config(values: Any, where: str) -> None:
    """Types and ranges of every ModelConfig setting: a checkpoint's stored config goes through the same checks
    as a config's [model] table."""
    from lammps_phase.model.network import ModelConfig

    _check_table(values, schema_of(ModelConfig), "model", where)


def _sections() -> dict[str, tuple[dict[str, Any], Optional[dict[str, str]]]]:
    from lammps_phase.model.network import ModelConfig
    from lammps_phase.training.config import PipelineConfig
    from lammps_phase.training.loop import TrainConfig

    return {
        "runs": (schema_of(PipelineConfig, exclude=_NOT_RUNS), None),
        "dataset": (schema_of(DatasetConfig), None),
        "model": (schema_of(ModelConfig, exclude=tuple(_SET_BY_PIPELINE["model"])), _SET_BY_PIPELINE["model"]),
        "train": (schema_of(TrainConfig, exclude=tuple(_SET_BY_PIPELINE["train"])), _SET_BY_PIPELINE["train"]),
        "calibrate": (schema_of(CalibrateConfig), None),
        "report": (schema_of(ReportConfig), None),
    }


def phase_schema() -> dict[str, Any]:
    """Keys of a [[phase]] block: PhaseSpec's fields, with pressures spelt pressure_gpa (a number or a list)."""
    from lammps_phase.training.config import PhaseSpec

    schema = schema_of(PhaseSpec, exclude=("pressures",))
    schema["pressure_gpa"] = Union[float, list[float]]
    return schema


_NAME = re.compile(r"[A-Za-z0-9_.+-]+")


def check_raw_config(raw: dict[str, Any], path: Union[str, Path]) -> None:
    """Keys, types and value ranges of a parsed TOML config; the first problem is raised, naming file and key."""
    from lammps_phase.training.config import PHASE_KINDS

    from lammps_phase.training.config import PipelineConfig

    top = f"config {path}:"
    sections = _sections()
    top_level = {k: v for k, v in schema_of(PipelineConfig).items() if k in _TOP_LEVEL_FIELDS}
    allowed = {**top_level, **{name: dict for name in sections}, "phase": list}
    for key in raw:
        if key not in allowed:
            raise _unknown(key, allowed, f"config {path}", "top-level key or table")
    for key in ("name", "elements", "potential", "phase"):
        if key not in raw:
            raise LammpsPhaseError(f"config {path} lacks the key '{key}'")
    for key, hint in top_level.items():
        if key in raw:
            check_type(raw[key], hint, f"{top} {key}")
    if not _NAME.fullmatch(raw["name"]):
        raise LammpsPhaseError(f"{top} name = {_toml(raw['name'])}: use letters, digits, '_', '.', '+' or '-' "
                               "(it names the cache folder and the default checkpoint)")
    _check_elements(raw["elements"], top)
    _check_potential(raw["potential"], raw["elements"], top)
    if "output" in raw and not raw["output"].strip():
        raise LammpsPhaseError(f"{top} output is empty: give the checkpoint path, e.g. output = \"checkpoints/x.pt\"")
    for name, (schema, set_by) in sections.items():
        if name in raw:
            _check_table(raw[name], schema, name, f"{top} [{name}]", set_by)
    phases = raw["phase"]
    if not isinstance(phases, list) or not phases or not all(isinstance(p, dict) for p in phases):
        raise LammpsPhaseError(f"{top} phase must be one or more [[phase]] tables")
    schema = phase_schema()
    for i, block in enumerate(phases):
        label = f"{top} [[phase]] #{i + 1}" + (f" ({block['name']})" if isinstance(block.get("name"), str) else "")
        if "name" not in block:
            raise LammpsPhaseError(f"{label} has no name")
        for key, value in block.items():
            if key not in schema:
                raise _unknown(key, schema, label, "setting")
            check_type(value, schema[key], f"{label} {key}")
            limit = _phase_minimum(key)
            if limit is not None:
                _bounds(value, key, label, limit[:2], None, limit[2])
        if not _NAME.fullmatch(block["name"]):
            raise LammpsPhaseError(f"{label}: name {_toml(block['name'])} may hold only letters, digits, '_', '.', "
                                   "'+' and '-' (it names cache files and LAMMPS variables)")
        if block.get("kind", "crystal") not in PHASE_KINDS:
            raise LammpsPhaseError(f"{label}: kind = {_toml(block['kind'])} is unknown; use one of "
                                   f"{', '.join(PHASE_KINDS)}")
        if block.get("potential"):
            _check_potential(block["potential"], raw["elements"], f"{label}:")
        if isinstance(block.get("pressure_gpa"), list) and not block["pressure_gpa"]:
            raise LammpsPhaseError(f"{label}: pressure_gpa is empty: give at least one pressure (GPa)")
    seeds = raw.get("runs", {}).get("seeds")
    if seeds is not None:
        for split, values in seeds.items():
            if not values:
                raise LammpsPhaseError(f"{top} [runs] seeds.{split} is empty: give at least one seed")
    _check_report_classes(raw.get("report", {}), [p["name"] for p in phases], top)


def _check_elements(elements: list[str], top: str) -> None:
    from ase.data import chemical_symbols

    if not elements:
        raise LammpsPhaseError(f"{top} elements is empty: list the chemical symbols, e.g. elements = [\"Si\", \"O\"]")
    unknown = [e for e in elements if e not in chemical_symbols[1:]]
    if unknown:
        raise LammpsPhaseError(f"{top} elements: {', '.join(map(repr, unknown))} is not a chemical symbol "
                               "(case matters: 'Si', not 'SI')")
    if len(set(elements)) != len(elements):
        raise LammpsPhaseError(f"{top} elements lists an element twice: {elements}")


def _check_potential(name: str, elements: list[str], top: str) -> None:
    from lammps_phase.data import potentials

    if name not in potentials.names():
        close = difflib.get_close_matches(name, potentials.names(), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise LammpsPhaseError(f"{top} potential = {_toml(name)} is unknown ({hint}registered: "
                               f"{', '.join(potentials.names())})")
    missing = sorted(set(elements) - set(potentials.get(name).elements))
    if missing:
        raise LammpsPhaseError(f"{top} potential {name} has no parameters for {', '.join(missing)} (it covers "
                               f"{', '.join(potentials.get(name).elements)}): pick a potential for these elements")


def _check_report_classes(report: dict[str, Any], classes: list[str], top: str) -> None:
    for key in report.get("notes", {}):
        if key not in classes:
            raise _unknown(key, set(classes), f"{top} [report.notes]", "class")
    for key in report.get("dropped", {}):
        if key in classes:
            raise LammpsPhaseError(f"{top} [report.dropped] names {key}, which is a class of this config: "
                                   "remove it from one of the two")


# ---------------------------------------------------------------------------------------------- values


def _dataclass_checks(top: str, section: str, build: Callable[[], Any]) -> Any:
    """Run a dataclass's own checks on the config's values; its message gets the file and table in front."""
    try:
        return build()
    except LammpsPhaseError as err:
        raise LammpsPhaseError(f"{top} [{section}] {err}") from None
    except (TypeError, ValueError, RuntimeError) as err:  # e.g. torch refusing a layer size
        raise LammpsPhaseError(f"{top} [{section}] settings cannot be used ({type(err).__name__}: "
                               f"{' '.join(str(err).split())[:200]})") from None


def check_config(cfg: Any) -> None:
    """What the tables cannot say alone: every phase builds and holds only the config's elements, the model
    settings make a network, the training and dataset settings pass their own checks. Cheap (no MD)."""
    from lammps_phase.model.network import ModelConfig, build_model
    from lammps_phase.training.loop import TrainConfig

    top = f"config {cfg.source}:"
    _dataclass_checks(top, "dataset", lambda: DatasetConfig(**cfg.dataset))
    _dataclass_checks(top, "report", lambda: ReportConfig(**cfg.report))
    _dataclass_checks(top, "train", lambda: TrainConfig(progress=False, **cfg.train))
    unknown = sorted(set(cfg.train.get("jitter_classes", [])) - set(cfg.classes))
    if unknown:
        raise LammpsPhaseError(f"{top} [train] jitter_classes names {unknown}, which no [[phase]] block labels "
                               f"(classes: {', '.join(cfg.classes)})")
    mcfg = _dataclass_checks(top, "model", lambda: ModelConfig(elements=list(cfg.elements),
                                                               num_classes=len(cfg.classes), **cfg.model))
    _dataclass_checks(top, "model", lambda: build_model(mcfg))
    for i, spec in enumerate(cfg.phases):
        _check_structure(cfg, spec, f"{top} [[phase]] #{i + 1} ({spec.name})")


def _check_structure(cfg: Any, spec: Any, label: str) -> None:
    from lammps_phase.data import structures
    from lammps_phase.training.runs import build_crystal as _crystal

    library = structures.names()
    if spec.structure not in library:
        given = "structure" if spec.structure != spec.name else "name (used as the structure when none is given)"
        if not Path(spec.structure).is_file():
            close = difflib.get_close_matches(spec.structure, library, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise LammpsPhaseError(
                f"{label}: {given} {_toml(spec.structure)} is neither a library structure ({hint}library: "
                f"{', '.join(library)}) nor an existing file; set structure = one of those or a file path")
        from lammps_phase.inference.formats import read_frames

        first = next(iter(read_frames(spec.structure)), None)
        if first is None or "element" not in first.columns:
            raise LammpsPhaseError(
                f"{label}: structure file {spec.structure} does not name its elements; give an extended XYZ file "
                "(species column) or a dump with an 'element' column")
    try:
        crystal = _crystal(spec)
    except LammpsPhaseError as err:
        raise LammpsPhaseError(f"{label}: {err}") from None
    foreign = sorted(set(crystal.symbols) - set(cfg.elements))
    if foreign:
        raise LammpsPhaseError(f"{label}: structure {spec.structure} holds {', '.join(foreign)}, which is not in "
                               f"elements {cfg.elements}: add it to elements or fix lattice.element")
