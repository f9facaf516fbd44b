"""The training config (``lammps-phase-train CONFIG.toml``): what each class is made of and how it is trained.

:func:`load_config` parses the TOML into a :class:`PipelineConfig` of :class:`PhaseSpec` blocks and refuses every
mistake it can see before a run starts, naming the file and the key, because the first stage runs MD for minutes
to hours. Key names and value types come from these dataclasses (:mod:`lammps_phase.config_schema`).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lammps_phase.config_schema import check_config, check_raw_config
from lammps_phase.elements import element_indices
from lammps_phase.errors import LammpsPhaseError

SPLITS = ("train", "val", "test")
#: what a [[phase]] block is made of
PHASE_KINDS = ("crystal", "melt", "glass")
#: what is done to it: periodic bulk, a slab with free surfaces, uniaxial strain, a crystal | melt/glass box
VARIANTS = ("bulk", "slab", "sphere", "strained", "interface")


@dataclass
class PhaseSpec:
    """One class of the classifier and the runs that make its data."""

    name: str
    kind: str  # "crystal" | "melt" | "glass"
    structure: str  # library name (structures.py) or a file readable by inference.formats.read_frames
    pressures: list[float]
    t_start: float = 300.0
    t_end: float = 1500.0
    ps: float = 6.0
    temperature: float = 6500.0  # melt / glass: melting temperature
    hold_temperatures: list[float] = field(default_factory=lambda: [300.0])
    quench_rate: float = 1000.0  # K/ps
    hold_ps: float = 2.0
    lattice: dict[str, Any] = field(default_factory=dict)  # simple crystals: element, a, c_over_a
    # glass holds: a snapshot whose MSD within its hold exceeds this (Å²) is a liquid, not a glass
    max_glass_msd: float = 1.5
    variant: str = "bulk"  # one of VARIANTS (lammps_phase.data.variants)
    axis: str = "z"  # slab normal, strain axis or interface normal: a row of the (near-orthogonal) supercell
    vacuum: float = 20.0  # slab: Å of vacuum between the periodic images of the surfaces
    strain: float = 0.2  # strained: largest uniaxial compression (fraction of the length), reached at the end
    partner: str = "amorphous"  # interface: class of the disordered side ("amorphous" glass or "melt")
    min_length: float = 0.0  # supercell edge at least this (Å; 0: the config's runs.supercell_min_length)
    geometry: str = "cluster"  # sphere: a "cluster" cut from the crystal, or a "void" in it
    potential: str = ""  # this block's interatomic potential ("": the config's); one class may come from several
    radius: float = 12.0  # sphere: Å


@dataclass
class PipelineConfig:
    name: str
    elements: list[str]
    potential: str
    output: str
    phases: list[PhaseSpec]
    seeds: dict[str, list[int]]
    supercell_min_length: float = 14.0
    snapshot_every_ps: float = 0.5
    ranks: int = 1
    jobs: int = 1  # heating runs at a time
    # variant or kind -> more training seeds for its blocks only: more runs of the places whose data are scarce
    extra_train_seeds: dict[str, list[int]] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    calibrate: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def classes(self) -> list[str]:
        """Class names in order of first appearance: several [[phase]] blocks may feed one class (e.g. one
        block per pressure when the phase holds to different temperatures there)."""
        return list(dict.fromkeys(p.name for p in self.phases))


def load_config(path: str | os.PathLike) -> PipelineConfig:
    """Parse and check a training config; every mistake is reported with the key that holds it."""
    path = Path(path)
    raw, bases = _read_with_base(path, ())
    where = f"{path} (on top of {', '.join(map(str, bases))})" if bases else path
    check_raw_config(raw, where)  # every key known (and the required ones present), of its type and range
    runs = raw.get("runs", {})
    phases = []
    for i, ph in enumerate(raw["phase"]):
        if "name" not in ph:
            raise LammpsPhaseError(f"config {path}: [[phase]] #{i + 1} has no name")
        p = ph.get("pressure_gpa", [0.0])
        known = set(PhaseSpec.__dataclass_fields__) | {"pressure_gpa"}
        unknown = set(ph) - known
        if unknown:
            raise LammpsPhaseError(f"config {path}: phase {ph['name']} has unknown keys {sorted(unknown)}")
        spec = PhaseSpec(
            name=ph["name"], kind=ph.get("kind", "crystal"), structure=ph.get("structure", ph["name"]),
            pressures=[float(x) for x in (p if isinstance(p, list) else [p])],
            **{k: v for k, v in ph.items() if k not in ("name", "kind", "structure", "pressure_gpa")},
        )
        if spec.kind not in PHASE_KINDS:
            raise LammpsPhaseError(f"config {path}: phase {spec.name} has kind {spec.kind!r}; use one of {', '.join(PHASE_KINDS)}")
        _check_variant(spec, path)
        phases.append(spec)
    names = {spec.name for spec in phases}
    for spec in phases:
        if spec.variant == "interface" and spec.partner not in names:
            raise LammpsPhaseError(f"config {path}: phase {spec.name}: interface partner {spec.partner!r} is not a class "
                                   f"of this config (classes: {', '.join(sorted(names))}); add a [[phase]] block for it")
    from lammps_phase.training.runs import run_key  # runs builds on this module: imported here, not at the top

    keys = [(spec.name, p, run_key(spec, p, 0)) for spec in phases for p in spec.pressures]
    clash = sorted({k for k in keys if keys.count(k) > 1})
    if clash:
        name, p, key = clash[0]
        variant = key[len(name) + 1:].rsplit("_", 2)[0] if key.count("_") > name.count("_") + 2 else ""
        raise LammpsPhaseError(f"config {path}: phase {name} at {p:g} GPa{f' ({variant})' if variant else ''} appears in "
                               "two [[phase]] blocks; give each block of one class its own pressures, variant or axis")
    seeds = runs.get("seeds", {"train": [1], "val": [2], "test": [3]})
    if set(seeds) != set(SPLITS) or any(set(seeds[a]) & set(seeds[b]) for a in SPLITS for b in SPLITS if a < b):
        raise LammpsPhaseError(f"config {path}: runs.seeds needs disjoint lists for train, val and test")
    extra = runs.get("extra_train_seeds", {})
    for key, more in extra.items():
        if key not in VARIANTS + PHASE_KINDS:
            raise LammpsPhaseError(f"config {path}: runs.extra_train_seeds names {key!r}; use a variant "
                                   f"({', '.join(VARIANTS)}) or a kind ({', '.join(PHASE_KINDS)})")
        taken = sorted(set(more) & {s for split in SPLITS for s in seeds[split]})
        if taken or len(set(more)) != len(more) or min(more, default=1) < 1:
            raise LammpsPhaseError(f"config {path}: runs.extra_train_seeds.{key} = {more}: give distinct seeds of "
                                   f"at least 1 that runs.seeds does not use ({taken or 'repeated or below 1'})")
    cfg = PipelineConfig(
        name=raw["name"], elements=list(raw["elements"]), potential=raw["potential"],
        output=raw.get("output", f"checkpoints/{raw['name']}.pt"), phases=phases, seeds=seeds,
        supercell_min_length=float(runs.get("supercell_min_length", 14.0)),
        snapshot_every_ps=float(runs.get("snapshot_every_ps", 0.5)), ranks=int(runs.get("ranks", 1)),
        jobs=int(runs.get("jobs", 1)), extra_train_seeds={k: [int(x) for x in more] for k, more in extra.items()},
        dataset=raw.get("dataset", {}), model=raw.get("model", {}), train=raw.get("train", {}),
        calibrate=raw.get("calibrate", {}), report=raw.get("report", {}), source=str(path),
    )
    check_config(cfg)  # structures build with these elements, the model and training settings pass their checks
    return cfg


def _read_toml(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise LammpsPhaseError(f"config {path} is a folder: give the path of a .toml file, e.g. inputs/train_cu.toml")
    if not path.is_file():
        raise LammpsPhaseError(f"config {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise LammpsPhaseError(f"config {path} is not valid TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise LammpsPhaseError(f"config {path} cannot be read ({err})") from None


def _read_with_base(path: Path, chain: tuple[Path, ...]) -> tuple[dict[str, Any], list[Path]]:
    """The config's TOML on top of its ``base`` config, if it names one (a path relative to this file), and the
    base configs read, nearest first.

    A config that adds blocks to another (e.g. more potentials on top of the shipped BKS config) then holds only
    what it adds, and cannot drift from the config it extends: the base's [[phase]] blocks come first, then its
    own; its top-level keys and table settings replace the base's, key by key (sub-tables merged the same way).
    """
    raw = _read_toml(path)
    base = raw.pop("base", None)
    if base is None:
        return raw, []
    if not isinstance(base, str) or not base:
        raise LammpsPhaseError(f"config {path}: base must be the path of another config, e.g. base = \"train_sio2.toml\"")
    base_path = (path.parent / base).resolve()
    if base_path in chain or base_path == path.resolve():
        loop = " → ".join(str(p) for p in (*chain, path.resolve(), base_path))
        raise LammpsPhaseError(f"config {path}: base configs form a loop ({loop}); remove one of the base keys")
    merged, bases = _read_with_base(base_path, (*chain, path.resolve()))
    base_phases, own_phases = merged.pop("phase", []), raw.pop("phase", [])
    merged = _merged_tables(merged, raw)
    both_lists = isinstance(base_phases, list) and isinstance(own_phases, list)
    # anything but [[phase]] tables is kept as it is, for check_raw_config to name
    phases = base_phases + own_phases if both_lists else (base_phases if isinstance(own_phases, list) else own_phases)
    if phases:
        merged["phase"] = phases
    return merged, [Path(base), *bases]


def _merged_tables(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in own.items():
        out[key] = _merged_tables(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _check_variant(spec: PhaseSpec, path) -> None:
    """Which kinds a variant applies to, and its own settings."""
    where = f"config {path}: phase {spec.name}"
    if spec.variant not in VARIANTS:
        raise LammpsPhaseError(f"{where} has variant {spec.variant!r}; use one of {', '.join(VARIANTS)}")
    if spec.variant != "bulk" and spec.axis not in ("x", "y", "z"):
        raise LammpsPhaseError(f"{where}: axis must be x, y or z, not {spec.axis!r}")
    allowed = {"slab": ("crystal", "glass"), "strained": ("crystal",), "interface": ("crystal",), "sphere": ("crystal",)}
    if spec.variant in allowed and spec.kind not in allowed[spec.variant]:
        raise LammpsPhaseError(f"{where}: variant {spec.variant} takes kind {' or '.join(allowed[spec.variant])}, "
                               f"not {spec.kind}")
    if spec.variant == "strained" and not 0.0 < spec.strain < 0.5:
        raise LammpsPhaseError(f"{where}: strain must be a compression between 0 and 0.5, not {spec.strain}")
    if spec.variant == "slab" and spec.vacuum < 12.0:
        raise LammpsPhaseError(f"{where}: vacuum {spec.vacuum} Å lets surfaces see each other; use at least 12")
    if spec.variant == "interface" and spec.partner not in ("amorphous", "melt"):
        from lammps_phase.data import structures

        if spec.partner not in structures.names():
            raise LammpsPhaseError(f"{where}: partner must be 'amorphous', 'melt' or a library crystal (a crystal | "
                                   f"crystal box), not {spec.partner!r}")
    if spec.variant == "sphere" and spec.geometry not in ("cluster", "void"):
        raise LammpsPhaseError(f"{where}: geometry must be 'cluster' or 'void', not {spec.geometry!r}")


def block_seeds(cfg: PipelineConfig, spec: PhaseSpec, split: str) -> list[int]:
    """The seeds of a block's runs in a split: the config's, and for training the extra seeds of its variant and of
    its kind (a glass slab takes both the slab's and the glass's)."""
    if split != "train":
        return list(cfg.seeds[split])
    extra = set(cfg.extra_train_seeds.get(spec.variant, [])) | set(cfg.extra_train_seeds.get(spec.kind, []))
    return cfg.seeds[split] + sorted(extra)


def potential_of(cfg: PipelineConfig, spec: PhaseSpec) -> str:
    """The potential a block's runs use: its own, else the config's."""
    return spec.potential or cfg.potential


def species_indices(cfg: PipelineConfig, species) -> np.ndarray:
    """Element names of a snapshot → indices into ``cfg.elements``; unknown elements are a config error."""
    return element_indices(species, cfg.elements, "add them to `elements` in the config", owner="the config")
