"""`lammps-phase doctor`: finds this machine's stack, and names the fix for each missing piece."""

import io
import json
import sys

import pytest

from lammps_phase import doctor, runtime


# The report of the real environment, probed once (each probe starts LAMMPS and runs `lmp -h`).
@pytest.fixture(scope="module")
def real_report():
    return doctor.collect_report()


def check_named(report, name):
    matches = [c for c in report.checks if c.name == name]
    assert matches, f"no check named {name!r} in {[c.name for c in report.checks]}"
    return matches[0]


def test_finds_this_machines_lammps_torch_and_mpi(real_report):
    module = real_report.sections["lammps_module"]
    assert module["found"], module["error"]
    assert module["version"] // 10000 >= 2021 and module["version_string"].endswith(str(module["version"] // 10000))
    assert set(doctor.REQUIRED_PACKAGES) <= set(module["packages"])
    assert all(module["styles"].values()) and len(module["styles"]) == len(doctor.REQUIRED_STYLES)
    assert module["has_mpi_support"] is True
    assert module["library_path"] and "liblammps" in module["library_path"]
    binary = real_report.sections["lmp_binary"]
    assert binary["path"] and binary["version_string"].startswith(module["version_string"])
    assert real_report.sections["torch"]["version"].startswith("2.")
    assert real_report.sections["torch"]["device"] in {"cpu"} | {f"cuda:{i}" for i in range(16)}
    assert real_report.sections["mpi"]["mpi4py_version"]
    assert real_report.ok, [c for c in real_report.checks if c.required and not c.ok]


def test_run_doctor_exit_code_and_text(real_report, monkeypatch):
    monkeypatch.setattr(doctor, "collect_report", lambda: real_report)
    out = io.StringIO()
    assert doctor.run_doctor(as_json=False, stream=out) == 0
    text = out.getvalue()
    assert real_report.sections["lammps_module"]["version_string"] in text
    assert "torch " + real_report.sections["torch"]["version"] in text
    assert "[FAIL]" not in text and text.rstrip().endswith("the shipped decks can run here")


def test_json_output_parses_with_all_sections(real_report, monkeypatch, capsys):
    monkeypatch.setattr(doctor, "collect_report", lambda: real_report)
    assert doctor.main_doctor(["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"ok", "python", "lammps_module", "lmp_binary", "mpi", "torch", "numpy", "checks"} <= set(data)
    assert data["ok"] is True
    assert {"module_path", "library_path", "version", "has_exceptions", "has_mpi_support", "packages",
            "styles"} <= set(data["lammps_module"])
    assert data["lammps_module"]["version"] == real_report.sections["lammps_module"]["version"]
    assert {"path", "version_string", "packages", "has_exceptions"} <= set(data["lmp_binary"])
    assert {"mpi4py_version", "mpi_library_version", "mpirun"} <= set(data["mpi"])
    assert {"version", "cuda_available", "devices", "device"} <= set(data["torch"])
    assert all({"name", "ok", "required", "detail", "fix"} == set(c) for c in data["checks"])


def shadow_lammps_module(monkeypatch, tmp_path, body):
    """A `lammps` package first on the probe child's path, standing in for a missing or broken install."""
    package = tmp_path / "shadow" / "lammps"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(body)
    monkeypatch.setenv("PYTHONPATH", str(package.parent))


def test_missing_lammps_module_and_torch_name_the_fix(monkeypatch, tmp_path):
    shadow_lammps_module(monkeypatch, tmp_path, "raise ModuleNotFoundError(\"No module named 'lammps'\")\n")
    monkeypatch.setitem(sys.modules, "torch", None)   # `import torch` now raises ImportError
    out = io.StringIO()
    assert doctor.run_doctor(stream=out) == 1
    text = out.getvalue()
    assert "[FAIL] lammps Python module: import lammps failed: No module named 'lammps'" in text
    assert "liblammps-dev" in text and "scripts/build_lammps.sh" in text
    assert "[FAIL] torch" in text and "pip install torch==2.13.0" in text
    assert "download.pytorch.org/whl/cu" in text


def test_a_lammps_that_kills_its_process_is_reported_not_fatal(monkeypatch, tmp_path):
    shadow_lammps_module(monkeypatch, tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    info = doctor.probe_lammps_module()
    assert not info["found"] and info["error_kind"] == "crash"
    assert "died (exit status -11)" in info["error"] and "build_lammps.sh" in info["fix"]


def test_no_lmp_on_path_is_a_failure_with_a_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    info = doctor.probe_lmp_binary()
    assert info["path"] is None
    report = doctor.Report(sections={"lammps_module": {"found": False, "error": "x", "fix": "y"},
                                     "lmp_binary": info, "mpi": doctor.probe_mpi(),
                                     "torch": {"error": None, "version": "2.0", "cuda_build": None,
                                               "cuda_available": False, "devices": [], "device": "cpu"},
                                     "numpy": doctor.probe_numpy()})
    doctor.build_checks(report)
    lmp_check = check_named(report, "lmp binary")
    assert not lmp_check.ok and lmp_check.required and lmp_check.fix == doctor.FIX_LMP
    assert not check_named(report, "mpirun").ok
    assert not report.ok


LMP_HELP_WITHOUT_PYTHON = """
Large-scale Atomic/Molecular Massively Parallel Simulator - 2 Aug 2023 - Update 1

MPI v3.1: MPICH Version:	4.0

Active compile time flags:

-DLAMMPS_GZIP
-DLAMMPS_EXCEPTIONS

Installed packages:

KSPACE MANYBODY MOLECULE

List of individual style options included in this LAMMPS executable

* Pair styles:

lj/cut          tersoff         vashishta

* Fix styles

nve             property/atom

* Compute styles:

pe
"""


def test_parse_lmp_help_finds_what_a_build_lacks():
    info = doctor.parse_lmp_help(LMP_HELP_WITHOUT_PYTHON)
    assert info["version_string"] == "2 Aug 2023 - Update 1"
    assert info["mpi"].startswith("MPICH")
    assert info["has_exceptions"] is True
    assert info["packages"] == ["KSPACE", "MANYBODY", "MOLECULE"]
    assert info["styles"]["pair tersoff"] and info["styles"]["fix property/atom"]
    missing = doctor.missing_features(info)
    assert missing == ["package PYTHON", "package EXTRA-PAIR", "package SHOCK", "pair born/coul/dsf style",
                       "fix wall/piston style", "fix python/invoke style"]


def test_version_string_matches_lammps_spelling():
    assert doctor.version_string(20210929) == "29 Sep 2021"
    assert doctor.version_string(20230802) == "2 Aug 2023"
    assert doctor.version_string(0) is None


def test_gpu_device_follows_node_local_rank(monkeypatch):
    for name in runtime.LOCAL_RANK:
        monkeypatch.delenv(name, raising=False)
    assert doctor.node_local_rank() == 0
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "5")
    assert doctor.node_local_rank() == 5


def test_fused_kernels_check_counts_the_kernel_cache(monkeypatch, tmp_path):
    """Not required: an empty kernel cache is a warning that names `lammps-phase kernels`; a built one is ok."""
    from lammps_phase.model import aot

    monkeypatch.setenv(aot.KERNEL_CACHE_ENV, str(tmp_path / "kernels"))
    info = doctor.probe_torch()
    assert info["kernel_cache"] == str(tmp_path / "kernels") and info["kernel_packages"] == 0
    report = doctor.Report(sections={"lammps_module": {"found": False, "error": "x", "fix": "y"},
                                     "lmp_binary": doctor.probe_lmp_binary(), "mpi": doctor.probe_mpi(),
                                     "torch": info, "numpy": doctor.probe_numpy()})
    doctor.build_checks(report)
    check = check_named(report, "fused kernels")
    assert not check.ok and not check.required
    assert check.fix == (doctor.FIX_KERNELS if info["compiler"] else doctor.FIX_COMPILER)
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "head-0123.pt2").write_bytes(b"")
    assert doctor.probe_torch()["kernel_packages"] == 1


def test_neighbour_search_check_says_which_search_labels(monkeypatch):
    """Not required: scipy's k-d tree is a warning naming gcc; the compiled search is ok where it builds."""
    from lammps_phase.inference import cell_knn

    def checked() -> doctor.Check:
        report = doctor.Report(sections={"lammps_module": {"found": False, "error": "x", "fix": "y"},
                                         "lmp_binary": doctor.probe_lmp_binary(), "mpi": doctor.probe_mpi(),
                                         "torch": {"error": "x"}, "numpy": doctor.probe_numpy(),
                                         "neighbour_search": doctor.probe_neighbour_search()})
        doctor.build_checks(report)
        return check_named(report, "neighbour search")

    monkeypatch.setenv(cell_knn.BACKEND_ENV, "tree")
    check = checked()
    assert not check.ok and not check.required and check.fix == doctor.FIX_NATIVE
    assert "LAMMPS_PHASE_KNN=tree" in check.detail
    monkeypatch.delenv(cell_knn.BACKEND_ENV)
    check = checked()
    assert check.ok == cell_knn.available()
    assert ("compiled cell list" in check.detail) == check.ok
