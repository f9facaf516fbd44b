"""Runs in.python_invoke with `mpiexec -np N lmp` and checks the dump: the check behind ctest's
smoke_python_invoke_mpi. It proves, for the LAMMPS just built: PYTHON works under MPI, values written from
Python into fix property/atom reach dump custom on every rank, the embedded interpreter imports the venv's
`lammps` module, and the process runs a library with exceptions on (Debian's has none)."""
import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from smoke_callback import expected_phase  # noqa: E402


def read_dump_frames(path):
    """{timestep: {column: [values]}} from a LAMMPS text dump."""
    frames, lines = {}, open(path).read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i].startswith("ITEM: TIMESTEP"):
            step, natoms = int(lines[i + 1]), int(lines[i + 3])
            columns = lines[i + 8].split()[2:]
            rows = [list(map(float, line.split())) for line in lines[i + 9:i + 9 + natoms]]
            frames[step] = {c: [row[k] for row in rows] for k, c in enumerate(columns)}
            i += 9 + natoms
        else:
            i += 1
    return frames


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lmp", required=True)
    parser.add_argument("--mpiexec", default="mpirun")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--site-packages", required=True, help="where the venv's lammps module must come from")
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()

    os.makedirs(args.workdir, exist_ok=True)
    dump = os.path.join(args.workdir, "smoke.dump")
    for name in os.listdir(args.workdir):
        if name == "smoke.dump" or name.startswith("smoke_report.rank"):
            os.remove(os.path.join(args.workdir, name))
    cmd = [args.mpiexec, "-np", str(args.ranks), args.lmp, "-nocite", "-in", os.path.join(HERE, "in.python_invoke"),
           "-var", "callback", os.path.join(HERE, "smoke_callback.py"), "-var", "dumpfile", dump,
           "-log", os.path.join(args.workdir, "log.lammps")]
    print("running:", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=args.workdir, capture_output=True, text=True, timeout=240)
    print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
    failures = []
    if proc.returncode != 0:
        failures.append(f"{args.lmp} exited with {proc.returncode}")

    report_text = "".join(open(os.path.join(args.workdir, name)).read() for name in sorted(os.listdir(args.workdir))
                          if name.startswith("smoke_report.rank"))
    reports = re.findall(r"SMOKE rank=(\d+) step=(\d+) nlocal=(\d+) exceptions=(\w+) module=(\S+)", report_text)
    want_module = os.path.realpath(os.path.join(args.site_packages, "lammps", "__init__.py"))
    if {int(r[0]) for r in reports} != set(range(args.ranks)):
        failures.append(f"callback reports came from ranks {sorted({int(r[0]) for r in reports})}, "
                        f"expected 0..{args.ranks - 1}")
    for rank, exceptions, module in sorted({(r[0], r[3], r[4]) for r in reports}):  # once per rank
        if module != want_module:
            failures.append(f"rank {rank} imported lammps from {module}, not {want_module} (shadowed module)")
        if exceptions != "True":
            failures.append(f"rank {rank} runs a LAMMPS library without exceptions: not the new build")

    frames = read_dump_frames(dump) if os.path.exists(dump) else {}
    if sorted(frames) != [0, 10, 20]:
        failures.append(f"dump has timesteps {sorted(frames)}, expected [0, 10, 20]")
    else:
        if any(v != 0 for v in frames[0]["i_phase"]):
            failures.append("i_phase is non-zero before the first callback")
        for step in (10, 20):
            frame = frames[step]
            wrong = sum(int(p) != expected_phase(int(i), step) for i, p in zip(frame["id"], frame["i_phase"]))
            if len(frame["id"]) != 864 or wrong:
                failures.append(f"step {step}: {wrong} of {len(frame['id'])} atoms have a wrong i_phase")
            if {int(r) for r in frame["i_rank"]} != set(range(args.ranks)):
                failures.append(f"step {step}: atoms were labelled by ranks {sorted(set(frame['i_rank']))}")
    if failures:
        print("SMOKE FAILED:\n  " + "\n  ".join(failures))
        return 1
    print(f"SMOKE OK: {args.ranks} ranks, 864 atoms, i_phase from the Python callback in dump custom, "
          f"module {want_module}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
