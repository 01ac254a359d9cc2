#!/usr/bin/env bash
# Data-parallel training over MPI on this machine (loopback), against the
# single-process runs: run by the README's test command after
# bindings/ci.sh. Builds `rnn` with the `mpi` feature (Open MPI, rsmpi;
# installs libopenmpi-dev, openmpi-bin and libclang-dev from apt when
# missing), then:
#   1. the Apple job, -np 2: step losses within 1e-5 for 20 steps, test
#      RMSE within 1%, metrics.json's world_size and per_rank_batch;
#   2. uneven slices: -np 3 on batches of 32 (11, 11, 10), -np 2 on 31;
#   3. -np 1 equals the plain run exactly;
#   4. the NTM on the copy task, a batch of 8 on 2 ranks;
#   5. refusals: --distributed outside mpirun, ranks with different
#      options, a batch smaller than the rank count, and a failure on one
#      rank stopping all of them (no hang).
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$(date +%s)
step() { echo "== mpi: $*"; }
die() { echo "tests/mpi/run.sh: $*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! command -v mpirun >/dev/null || ! dpkg -s libopenmpi-dev libclang-dev >/dev/null 2>&1; then
    step "installing Open MPI and libclang (apt)"
    apt-get update -qq && apt-get install -y -qq libopenmpi-dev openmpi-bin libclang-dev >/dev/null ||
        die "apt-get install libopenmpi-dev openmpi-bin libclang-dev failed"
fi
mpirun --version | head -n 1

step "cargo build --release -p rnn-cli --features mpi"
cargo build --release -p rnn-cli --features mpi
rnn=target/release/rnn
mpi() { timeout 300 mpirun --allow-run-as-root --oversubscribe "$@"; }
cmp() { python3 tests/mpi/compare.py "$@"; }
common=(--quiet --threads 1 --epochs 6 --patience 0)

step "the Apple job: 2 ranks against one process"
"$rnn" train "${common[@]}" --seed 1 --out "$tmp/one" >/dev/null
mpi -np 2 "$rnn" train "${common[@]}" --seed 1 --distributed --check-replicas --out "$tmp/two" >"$tmp/two.log"
grep -q "distributed: 2 ranks" "$tmp/two.log" || die "rank 0 did not report the ranks: $(cat "$tmp/two.log")"
cmp "$tmp/one/metrics.json" "$tmp/two/metrics.json" --world 2 --per-rank 16,16
[ "$(grep -c '^test:' "$tmp/two.log")" = 1 ] || die "more than rank 0 printed"

step "uneven slices"
mpi -np 3 "$rnn" train "${common[@]}" --seed 1 --distributed --check-replicas --out "$tmp/three" >/dev/null
cmp "$tmp/one/metrics.json" "$tmp/three/metrics.json" --world 3 --per-rank 11,11,10
"$rnn" train "${common[@]}" --seed 2 --batch-size 31 --out "$tmp/one31" >/dev/null
mpi -np 2 "$rnn" train "${common[@]}" --seed 2 --batch-size 31 --distributed --out "$tmp/two31" >/dev/null
cmp "$tmp/one31/metrics.json" "$tmp/two31/metrics.json" --world 2 --per-rank 16,15

step "-np 1 is the plain run"
mpi -np 1 "$rnn" train "${common[@]}" --seed 1 --distributed --out "$tmp/np1" >/dev/null
cmp "$tmp/one/metrics.json" "$tmp/np1/metrics.json" --world 1 --per-rank 32 --exact

step "the NTM: copy, a batch of 8 on 2 ranks"
ntm=(copy --quiet --threads 1 --batch 8 --max-sequences 400 --eval-every 200 --eval-sequences 64 --seed 3)
"$rnn" ntm "${ntm[@]}" --out "$tmp/ntm1" >/dev/null
mpi -np 2 "$rnn" ntm "${ntm[@]}" --distributed --out "$tmp/ntm2" >/dev/null
cmp "$tmp/ntm1/metrics.json" "$tmp/ntm2/metrics.json" --world 2 --per-rank 4,4

step "refusals"
expect_fail() { # NEEDLE COMMAND...: fails, with NEEDLE in its error output, within the timeout
    local needle=$1
    shift
    if "$@" >"$tmp/out" 2>&1; then die "succeeded: $*"; fi
    grep -q -- "$needle" "$tmp/out" || die "no \"$needle\" in the error of $*: $(cat "$tmp/out")"
    echo "  refused: ${needle}"
}
expect_fail "mpirun" "$rnn" train "${common[@]}" --distributed --out "$tmp/x1"
expect_fail "differ" mpi -np 1 "$rnn" train "${common[@]}" --seed 1 --distributed --out "$tmp/x2" \
    : -np 1 "$rnn" train "${common[@]}" --seed 2 --distributed --out "$tmp/x2"
expect_fail "smaller than" mpi -np 3 "$rnn" ntm copy --quiet --batch 2 --max-sequences 10 --distributed --out "$tmp/x3"
# Rank 1 cannot read the data (its working folder has none): it reports
# and every rank stops (MPI_Abort), none waits.
mkdir -p "$tmp/with" "$tmp/without"
cp data/finance.csv "$tmp/with/data.csv"
expect_fail "rank 1 of 2" mpi -np 1 -wdir "$tmp/with" "$PWD/$rnn" train "${common[@]}" --data data.csv \
    --distributed --out run : -np 1 -wdir "$tmp/without" "$PWD/$rnn" train "${common[@]}" \
    --data data.csv --distributed --out run
[ ! -e "$tmp/with/run" ] || die "rank 0 wrote a run although rank 1 failed"
for x in x1 x2 x3; do [ ! -e "$tmp/$x" ] || die "$x: a refused run left $tmp/$x"; done

echo "== mpi: passed in $(($(date +%s) - started)) s"
