"""The OVITO modifier `lammps-phase` in a headless OVITO pipeline gives the CLI's labels, on the same dump.

Needs the `ovito` pip package (scripts/test.sh installs it into the venv; the main install does not).
"""

import importlib.metadata
import subprocess
import sys

import numpy as np
import pytest

from lammps_phase.cli import main
from lammps_phase.inference.formats import DumpWriter, Frame, read_dump
from lammps_phase.data.structures import build, supercell

try:
    import ovito  # noqa: F401
    from ovito.io import import_file

    from lammps_phase.ovito_modifier import DEFAULT_CHECKPOINT, LammpsPhaseModifier
    OVITO_MISSING = None
except ImportError as exc:  # pragma: no cover - depends on the environment
    OVITO_MISSING = f"ovito is not importable ({exc}); bash scripts/test.sh installs it into the venv"

needs_ovito = pytest.mark.skipif(OVITO_MISSING is not None, reason=OVITO_MISSING or "")

# frames: a crystal in a tilted box with an offset origin (lx != ly, so a transposed cell would give other periodic
# images), a clean crystal, and a strongly perturbed sample with mixed, partly low-confidence labels (the shipped model
# calls it partly alpha_cristobalite, partly melt)
FRAMES = [
    # (timestep, structure, noise Å, box origin, xy tilt in units of lx)
    (0, "alpha_quartz", 0.05, (-3.0, 2.0, 1.0), 1.0),
    (100, "stishovite", 0.05, (0.0, 0.0, 0.0), 0.0),
    (200, "beta_cristobalite", 0.35, (0.5, -1.0, 0.0), 0.0),
]


def write_dump(path, with_elements: bool) -> None:
    rng = np.random.default_rng(7)
    with DumpWriter(path) as w:
        for ts, name, noise, lo, tilt in FRAMES:
            c = supercell(build(name), 12.0)
            lo = np.asarray(lo)
            pos = c.positions + rng.normal(scale=noise, size=c.positions.shape) + lo
            sym = np.array(c.symbols)
            order = rng.permutation(len(pos))  # ids not in file order: compare atoms by id
            cols = {"id": order + 1, "type": np.where(sym == "Si", 1, 2)}
            if with_elements:
                cols["element"] = sym
            cols.update(x=pos[:, 0], y=pos[:, 1], z=pos[:, 2])
            lengths = np.diag(c.cell).copy()
            w.write(Frame(ts, lo, lo + lengths, np.array([tilt * lengths[0], 0.0, 0.0]), (True, True, True), cols))


def cli_labels(dump, out, *extra) -> list[dict[str, np.ndarray]]:
    assert main(["classify", str(dump), "--model", DEFAULT_CHECKPOINT, "-o", str(out), "-q", *extra]) == 0
    frames = []
    for fr in read_dump(out):
        order = np.argsort(fr.columns["id"])
        frames.append({k: np.asarray(fr.columns[k])[order] for k in ("id", "phase", "phase_conf")})
    return frames


def ovito_frame(pipeline, frame: int):
    data = pipeline.compute(frame)
    ids = np.asarray(data.particles["Particle Identifier"])
    order = np.argsort(ids)
    phase = np.asarray(data.particles["Phase"])[order]
    return data, ids[order], phase, np.asarray(data.particles["Phase Confidence"])[order]


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    d = tmp_path_factory.mktemp("ovito")
    named, numeric = d / "named.dump", d / "numeric.dump"
    write_dump(named, with_elements=True)
    write_dump(numeric, with_elements=False)
    return d, named, numeric


@needs_ovito
def test_defaults_equal_cli(dumps, monkeypatch):
    d, named, _ = dumps
    cli = cli_labels(named, d / "cli.dump")
    monkeypatch.chdir(d)  # the default checkpoint does not depend on the current directory
    pipeline = import_file(str(named))
    assert pipeline.num_frames == len(FRAMES)
    mod = LammpsPhaseModifier()
    pipeline.modifiers.append(mod)
    classes = None
    mixed = 0
    for f, ref in enumerate(cli):
        data, ids, phase, conf = ovito_frame(pipeline, f)
        np.testing.assert_array_equal(ids, ref["id"])
        np.testing.assert_array_equal(phase, ref["phase"])
        np.testing.assert_allclose(conf, ref["phase_conf"], rtol=0, atol=6e-5)  # the CLI writes 4 decimals
        mixed += len(np.unique(phase)) > 1

        # typed property: one named, coloured type per class plus Other = -1 (legend / Color by type / Select type)
        prop = data.particles["Phase"]
        names = {t.id: t.name for t in prop.types}
        classes = [names[i] for i in range(len(names) - 1)]
        assert names[-1] == "Other" and "alpha_quartz" in classes and "stishovite" in classes
        colours = {tuple(np.round(t.color, 4)) for t in prop.types}
        assert len(colours) == len(prop.types), "every phase needs its own colour"

        # fractions: one attribute per class and Other, equal to the label counts, summing to 1
        fr = {k[len("LammpsPhase.fraction."):]: v for k, v in data.attributes.items()
              if k.startswith("LammpsPhase.fraction.")}
        assert set(fr) == set(classes) | {"Other"}
        for i, name in enumerate(classes):
            assert fr[name] == pytest.approx(np.mean(phase == i), abs=1e-12)
        assert fr["Other"] == pytest.approx(np.mean(phase == -1), abs=1e-12)
        assert sum(fr.values()) == pytest.approx(1.0)
        table = data.tables["lammps-phase"].xy()
        np.testing.assert_array_equal(table[:, 1], np.bincount(phase + 1, minlength=len(classes) + 1))
    assert mixed >= 1, "one frame should carry several phases, else the comparison proves little"
    assert cli[0]["phase"].tolist() == [classes.index("alpha_quartz")] * len(cli[0]["phase"])
    assert (cli[1]["phase"] == classes.index("stishovite")).all()

    # the model stays loaded across frames and parameter changes that do not need a reload
    assert mod.loads == 1
    mod.threshold = 0.9
    pipeline.compute(2)
    assert mod.loads == 1
    mod.device = "cpu"
    pipeline.compute(2)
    assert mod.loads == 2


@needs_ovito
def test_threshold_and_type_map_equal_cli(dumps):
    d, _, numeric = dumps
    cli = cli_labels(numeric, d / "cli_thr.dump", "--types", "Si O", "--threshold", "0.9")
    assert (cli[2]["phase"] == -1).any() and (cli[2]["phase"] >= 0).any()
    pipeline = import_file(str(numeric))
    pipeline.modifiers.append(LammpsPhaseModifier(type_map="Si O", threshold=0.9))
    for f, ref in enumerate(cli):
        data, ids, phase, _ = ovito_frame(pipeline, f)
        np.testing.assert_array_equal(phase, ref["phase"])
    assert data.attributes["LammpsPhase.fraction.Other"] == pytest.approx(np.mean(phase == -1))
    assert data.attributes["LammpsPhase.fraction.Other"] > 0


@needs_ovito
def test_unnamed_types_without_map_is_a_clear_error(dumps):
    _, _, numeric = dumps
    pipeline = import_file(str(numeric))
    mod = LammpsPhaseModifier()
    pipeline.modifiers.append(mod)
    with pytest.raises(Exception, match=r"particle type\(s\) 1 2 have no name.*type map"):
        pipeline.compute(0)
    mod.type_map = "Si"
    with pytest.raises(Exception, match=r"type\(s\) 2 are not in the type map"):
        pipeline.compute(0)
    mod.checkpoint = str(dumps[0] / "missing.pt")
    mod.type_map = "Si O"
    with pytest.raises(Exception, match="missing.pt does not exist"):
        pipeline.compute(0)


@needs_ovito
def test_registered_as_ovito_modifier():
    eps = {ep.name: ep for ep in importlib.metadata.entry_points(group="OVITO.Modifier")}
    assert "lammps-phase" in eps, "reinstall the package (bash scripts/bootstrap.sh) to register the entry point"
    assert eps["lammps-phase"].load() is LammpsPhaseModifier


def test_lammps_phase_does_not_import_ovito():
    code = ("import sys, lammps_phase, lammps_phase.inference.classify, lammps_phase.cli, lammps_phase.inference.formats; "
            "assert 'ovito' not in sys.modules, 'ovito imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
