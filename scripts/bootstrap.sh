#!/usr/bin/env bash
# One idempotent set-up step for lammps-phase, shared by the README's commands and CI.
#  - Debian packages: LAMMPS with PYTHON/MANYBODY/SHOCK, its Python module and library, OpenMPI, mpi4py, gcc
#    (the compiled neighbour search; without it labelling falls back to scipy, about 2x slower)
#  - a venv from Debian's python3 with system site packages (so `import lammps` and mpi4py work)
#  - torch==2.13.0 pinned (CPU wheel; GPU users: see README "GPU"), the package in editable mode
# A second run only checks and takes seconds. Source it (". scripts/bootstrap.sh") to get the venv active.
set -euo pipefail
LP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LP_VENV="${LP_VENV:-$LP_ROOT/.venv}"
APT_PKGS="lammps python3-lammps liblammps-dev python3-mpi4py openmpi-bin lammps-data python3-venv python3-pip gcc"
TORCH_SPEC="${LP_TORCH_SPEC:-torch==2.13.0}"

_lp_sudo() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=""
for p in $APT_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "[bootstrap] installing Debian packages:$missing"
  _lp_sudo apt-get update -qq
  _lp_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

if [ ! -x "$LP_VENV/bin/python" ]; then
  echo "[bootstrap] creating venv $LP_VENV (Debian python3, system site packages)"
  /usr/bin/python3 -m venv --system-site-packages "$LP_VENV"
fi
# shellcheck disable=SC1091
. "$LP_VENV/bin/activate"

stamp="$LP_VENV/.lammps_phase_stamp"
want="$(cat "$LP_ROOT/setup.cfg" "$LP_ROOT/pyproject.toml" | sha1sum | cut -c1-16) $TORCH_SPEC"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[bootstrap] installing $TORCH_SPEC and lammps-phase (editable)"
  python -m pip install -q --disable-pip-version-check "$TORCH_SPEC"
  python -m pip install -q --disable-pip-version-check -e "$LP_ROOT[test]"
  echo "$want" > "$stamp"
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export LP_ROOT
