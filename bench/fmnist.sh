#!/usr/bin/env bash
# MAP (and any other --methods) on 10,000 Fashion-MNIST training images with mlp:256,256 and the
# default recipe, tested on the 10,000 test images. Writes bench/results/fmnist.{json,md}.
#
#   bench/fmnist.sh                   # 3 repetitions (seeds 0, 1, 2)
#   REPS=1 EPOCHS=5 bench/fmnist.sh   # a quick check
#   METHODS=map EPOCHS=20 BATCH=128 N=10000 THREADS=1 OUT=bench/results BUILD=build
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BUILD="${BUILD:-build}"
REPS="${REPS:-3}"
EPOCHS="${EPOCHS:-20}"
BATCH="${BATCH:-128}"
N="${N:-10000}"
METHODS="${METHODS:-map}"
THREADS="${THREADS:-1}"
OUT="${OUT:-bench/results}"

"$root/bench/build.sh" "$BUILD"

mkdir -p "$OUT"
"$BUILD/bench/run_bench" --data "fmnist:train?n=$N" --test fmnist:test --model mlp:256,256 \
  --methods "$METHODS" --reps "$REPS" --epochs "$EPOCHS" --batch-size "$BATCH" --threads "$THREADS" \
  --json "$OUT/fmnist.json" --markdown "$OUT/fmnist.md" "$@"
