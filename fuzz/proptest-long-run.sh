#!/usr/bin/env bash
# The property test's long run (tests/properties.rs `long_run`), resumed after any case that
# aborts the test process (a derivation over the test's 1 GiB memory cap aborts it).
#
# usage: fuzz/proptest-long-run.sh [CASES [SEED]]
# Writes $OUT (default /tmp/matdiff-proptest): failures.txt (every failing case), aborts.txt
# (every case that aborted the process), run-N.log (each segment's output).
set -u
cd "$(dirname "$0")/.."
CASES=${1:-20000}
SEED=${2:-7881708797488948736}
OUT=${OUT:-/tmp/matdiff-proptest}
mkdir -p "$OUT"
: > "$OUT/failures.txt"
: > "$OUT/aborts.txt"
export MATDIFF_PROPTEST_CASES=$CASES MATDIFF_PROPTEST_SEED=$SEED
export MATDIFF_PROPTEST_FAILURES=$OUT/failures.txt MATDIFF_PROPTEST_PROGRESS=$OUT/progress
cargo test --test properties --no-run -q 2>/dev/null || cargo test --test properties --no-run
start=0
segment=0
while [ "$start" -lt "$CASES" ]; do
  segment=$((segment + 1))
  log=$OUT/run-$segment.log
  MATDIFF_PROPTEST_START=$start cargo test -q --test properties long_run -- --ignored --nocapture >"$log" 2>&1
  if grep -q '^long run:' "$log"; then
    grep '^long run:' "$log"
    break
  fi
  last=$(cat "$OUT/progress")
  echo "case $last (seed $SEED) aborted the process: $(grep -m1 -E 'memory cap|memory allocation|overflow|SIG' "$log")" | tee -a "$OUT/aborts.txt"
  start=$((last + 1))
done
echo "segments: $segment; aborted cases: $(wc -l < "$OUT/aborts.txt"); failing cases: $(grep -c '^case ' "$OUT/failures.txt")"
