#!/usr/bin/env bash
# The README's main command: set up (idempotent), shock an α-quartz slab under mpirun with live per-atom phase
# labels (inputs/in.sio2_shock), then `lammps-phase report`: x-t diagram, phase fractions, snapshot and summary.
#
#   bash scripts/demo.sh                       # defaults: 2 ranks, up = 3 km/s, ≈ 4 k atoms, 2 ps
#   bash scripts/demo.sh -var up 2.0           # extra arguments go to LAMMPS (any -var of the deck)
#
# Environment: LP_DEMO_OUT (output folder, default demo-output/shock), LP_DEMO_RANKS (MPI ranks, default 2),
# LP_CHECKPOINT (model, default checkpoints/sio2.pt).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
# shellcheck disable=SC1091
. "$root/.venv/bin/activate"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# ~4 k atoms labelled 32 times: compiling the fused kernels (5-80 s once) would cost more than it saves here;
# production-size runs keep the default (compile at the first labelling). Override with LAMMPS_PHASE_COMPILE=auto.
export LAMMPS_PHASE_COMPILE="${LAMMPS_PHASE_COMPILE:-0}"
out="${LP_DEMO_OUT:-$root/demo-output/shock}"
ranks="${LP_DEMO_RANKS:-2}"
checkpoint="${LP_CHECKPOINT:-$root/checkpoints/sio2.pt}"
if [ ! -f "$checkpoint" ]; then
  echo "[demo] no model at $checkpoint: train one (lammps-phase-train inputs/train_sio2.toml) or set LP_CHECKPOINT" >&2
  exit 1
fi
checkpoint="$(cd "$(dirname "$checkpoint")" && pwd)/$(basename "$checkpoint")"
mkdir -p "$out"
cd "$out"
rm -f sio2_shock.dump sio2_shock.dump.classes.json log.lammps lammps.screen

echo "[demo] mpirun -np $ranks lmp -in inputs/in.sio2_shock $*  (α-quartz slab into a momentum mirror, labels every 100 steps)"
start=$SECONDS
set +e
mpirun -np "$ranks" lmp -in "$root/inputs/in.sio2_shock" -var checkpoint "$checkpoint" -var outdir . -log log.lammps "$@" \
  2>&1 | tee lammps.screen | grep --line-buffered -E "^lammps-phase|^Step|^ +[0-9]+ |^Loop time"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ] || ! grep -q "Total wall time" log.lammps 2>/dev/null; then
  error="$(grep -h -m1 "ERROR" lammps.screen log.lammps 2>/dev/null | head -n1)"
  cause="$(grep -h -m1 -E "^[A-Za-z_.]*(Error|Exception): " lammps.screen 2>/dev/null || true)"
  echo "[demo] LAMMPS failed (exit status $status): ${error:-no ERROR line; see the end of $out/lammps.screen}" >&2
  [ -z "$cause" ] || echo "[demo] cause: $cause" >&2
  echo "[demo] full output: $out/lammps.screen and $out/log.lammps" >&2
  exit 1
fi
echo "[demo] LAMMPS finished in $((SECONDS - start)) s"

echo "[demo] lammps-phase report sio2_shock.dump -o report"
lammps-phase report sio2_shock.dump -o report > /dev/null
echo
cat report/summary.txt
echo
echo "[demo] outputs in $out:"
echo "  report/xt_diagram.png       majority phase along x against time, with the shock front"
echo "  report/phase_fractions.png  phase fractions of the whole slab against time"
echo "  report/snapshot.png         slice of the last frame coloured by phase"
echo "  report/summary.txt, report/summary.json"
echo "  sio2_shock.dump (id type x y z vx vy vz i_phase d_phase_conf c_stress[1..3]), sio2_shock.dump.classes.json, log.lammps"
echo "[demo] total $((SECONDS - start)) s"
