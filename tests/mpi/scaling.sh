#!/usr/bin/env bash
# Time per epoch of data-parallel training, one thread per rank, -np 1 and
# -np 2, with the gradient all-reduce's share (rank 0's wall clock inside
# it), for two jobs:
#   apple   the main job (rnn train defaults: LSTM H=32 on 20-day windows
#           of one column, global batch 32; 4,513 parameters);
#   medium  a synthetic LSTM job: T=100, global batch 64, I=128, H=256
#           (395,521 parameters), on random-walk data.
# Then the projection to N nodes (projection.py). Needs rnn built with
# --features mpi (tests/mpi/run.sh builds it). Not part of CI: run it on a
# quiet machine.
#
# usage: bash tests/mpi/scaling.sh [EPOCHS_APPLE] [EPOCHS_MEDIUM]
set -euo pipefail
cd "$(dirname "$0")/../.."
rnn=target/release/rnn
"$rnn" train --distributed --help >/dev/null 2>&1 || true
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ea=${1:-30}
em=${2:-3}
mpi() { mpirun --allow-run-as-root --oversubscribe "$@"; }

python3 - "$tmp/medium.csv" <<'PY'
import random, sys
random.seed(1)
cols, rows = 128, 100 + 920
v = [100.0] * cols
with open(sys.argv[1], "w") as f:
    f.write(",".join(f"c{k}" for k in range(cols)) + "\n")
    for _ in range(rows):
        v = [x * (1 + random.gauss(0, 0.01)) for x in v]
        f.write(",".join(f"{x:.4f}" for x in v) + "\n")
PY

report() { # LABEL METRICS.JSON
    python3 - "$@" <<'PY'
import json, sys
label, path = sys.argv[1], sys.argv[2]
m = json.load(open(path))
t = m["training"]
epochs, steps = t["epochs_run"], len(t["step_loss"])
print(f"{label:<12} {m['world_size']} rank(s) {str(m['per_rank_batch']):<10} "
      f"{t['seconds'] / epochs * 1e3:9.1f} ms/epoch  {t['seconds'] / steps * 1e3:8.2f} ms/step  "
      f"all-reduce {t['reduce_seconds'] / steps * 1e3:7.3f} ms/step "
      f"({100 * t['reduce_seconds'] / t['seconds']:.1f}%)  {m['model']['parameters']} parameters")
PY
}

apple=(train --quiet --threads 1 --epochs "$ea" --patience 0 --seed 1)
medium=(train --quiet --threads 1 --epochs "$em" --patience 0 --seed 1 --data "$tmp/medium.csv"
    --target c0 --features all --window 100 --hidden 256 --batch-size 64 --val-frac 0.05 --test-frac 0.05)
for run in 1 2; do
    echo "-- run $run"
    "$rnn" "${apple[@]}" --overwrite --out "$tmp/a1" >/dev/null && report apple "$tmp/a1/metrics.json"
    mpi -np 2 "$rnn" "${apple[@]}" --distributed --overwrite --out "$tmp/a2" >/dev/null && report apple "$tmp/a2/metrics.json"
    "$rnn" "${medium[@]}" --overwrite --out "$tmp/m1" >/dev/null && report medium "$tmp/m1/metrics.json"
    mpi -np 2 "$rnn" "${medium[@]}" --distributed --overwrite --out "$tmp/m2" >/dev/null && report medium "$tmp/m2/metrics.json"
done
