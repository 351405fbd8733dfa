#!/usr/bin/env bash
# MAP (and any other --methods) on the UCI regression sets with their standard splits:
# mlp:50, repetition r uses split r. Writes bench/results/uci.{json,md} and prints the table.
# Epochs default to 400: with Adam lr 1e-3 and batch 32, the literature's 40 epochs (meant for
# per-example updates) leave MAP near the mean predictor (yacht test RMSE 5.9 vs 0.61 at 400).
#
#   bench/uci.sh                      # all five sets, 3 splits each
#   REPS=20 bench/uci.sh              # the literature's 20 splits
#   SETS="yacht" REPS=2 bench/uci.sh  # a quick check
#   METHODS=map EPOCHS=400 BATCH=32 THREADS=1 OUT=bench/results BUILD=build
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BUILD="${BUILD:-build}"
REPS="${REPS:-3}"
EPOCHS="${EPOCHS:-400}"
BATCH="${BATCH:-32}"
METHODS="${METHODS:-map}"
PRIOR="${PRIOR:-10}"  # MAP prior precision: stronger than the image recipe's 5e-4 * N on these small sets
THREADS="${THREADS:-1}"
OUT="${OUT:-bench/results}"
UCI="${UCI:-data/uci}"
SETS="${SETS:-bostonHousing concrete energy wine-quality-red yacht}"

"$root/bench/build.sh" "$BUILD"

data=""; test=""
for s in $SETS; do
  [ -f "$UCI/$s/data.txt" ] || { echo "uci.sh: no $UCI/$s/data.txt (set UCI=DIR)" >&2; exit 1; }
  data+="${data:+;}uci:$UCI/$s?split={split}&part=train"
  test+="${test:+;}uci:$UCI/$s?split={split}&part=test"
done
mkdir -p "$OUT"
"$BUILD/bench/run_bench" --data "$data" --test "$test" --model mlp:50 --methods "$METHODS" \
  --reps "$REPS" --epochs "$EPOCHS" --batch-size "$BATCH" --threads "$THREADS" --prior-precision "$PRIOR" \
  --json "$OUT/uci.json" --markdown "$OUT/uci.md" "$@"
