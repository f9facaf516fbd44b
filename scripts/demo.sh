#!/usr/bin/env bash
# The README's main command: set up (idempotent), run the α-quartz quickstart under mpirun with live phase
# labels, classify its dump again offline, and say where the outputs are.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
# shellcheck disable=SC1091
. "$root/.venv/bin/activate"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
out="${LP_DEMO_OUT:-$root/demo-output}"
ranks="${LP_DEMO_RANKS:-2}"
mkdir -p "$out"
cd "$out"
echo "[demo] mpirun -np $ranks lmp -in inputs/in.quickstart  (live labels every 50 steps)"
mpirun -np "$ranks" lmp -in "$root/inputs/in.quickstart" -var checkpoint "$root/checkpoints/sio2.pt" -log log.lammps \
  | grep -E "phase|Step|^ +[0-9]+ " || true
grep -q "Total wall time" log.lammps || { echo "[demo] LAMMPS did not finish: see $out/log.lammps" >&2; exit 1; }
echo "[demo] offline check: lammps-phase classify quickstart.dump"
lammps-phase classify quickstart.dump --model "$root/checkpoints/sio2.pt" --types "Si O" -o quickstart.classified.dump -q
echo "[demo] outputs in $out: quickstart.dump (i_phase, d_phase_conf), quickstart.classified.dump, log.lammps"
