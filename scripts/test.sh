#!/usr/bin/env bash
# The README's test command: set up (idempotent) and run the test suite (slow MD/training benchmarks excluded).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
# shellcheck disable=SC1091
. "$root/.venv/bin/activate"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
cd "$root"
exec python -m pytest -q "$@"
