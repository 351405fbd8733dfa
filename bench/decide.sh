#!/usr/bin/env bash
# `credence decide` on Fashion-MNIST: errors cost 10, referring an input costs 1, correct answers
# cost 0. Fits map, a 5-member ensemble and last-layer Laplace (mlp:256,256, default recipe) on
# 10,000 training images per seed, decides on the 10,000 test images with MAP as the baseline, and
# prints each method's realized total cost next to MAP's. Posteriors and outputs go to OUT.
#
#   bench/decide.sh                  # seeds 0 1 2
#   SEEDS=0 bench/decide.sh          # one seed (about 2 minutes on 2 cores)
#   METHODS="map ensemble:members=5 laplace" N=10000 THREADS=1 OUT=bench/results/decide BUILD=build
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BUILD="${BUILD:-build}"
SEEDS="${SEEDS:-0 1 2}"
N="${N:-10000}"
METHODS="${METHODS:-map ensemble:members=5 laplace}"
THREADS="${THREADS:-1}"
OUT="${OUT:-bench/results/decide}"

"$root/bench/build.sh" "$BUILD" credence_cli
credence="$BUILD/credence"
mkdir -p "$OUT"
costs="$OUT/costs.json"
echo '{"classes": "fmnist", "error_cost": 10, "correct_cost": 0, "actions": [{"name": "refer", "cost": 1}]}' >"$costs"

printf '%-22s %4s %14s %14s %8s\n' method seed realized_total map_total referred
for seed in $SEEDS; do
  for method in $METHODS; do
    name="${method//[:=,]/_}_s$seed"
    [ -f "$OUT/$name.crd" ] || "$credence" fit --data "fmnist:train?n=$N" --model mlp:256,256 --method "$method" \
      --seed "$seed" --threads "$THREADS" -q --out "$OUT/$name.crd"
  done
  for method in $METHODS; do
    name="${method//[:=,]/_}_s$seed"
    "$credence" decide --posterior "$OUT/$name.crd" --data fmnist:test --costs "$costs" \
      --baseline "$OUT/map_s$seed.crd" --threads "$THREADS" --json "$OUT/$name.json" --out "$OUT/$name.csv" --force >/dev/null
    jq -r --arg m "$method" --arg s "$seed" \
      '[$m, $s, .results[0].realized_total, .results[1].realized_total, .results[0].actions.refer] | @tsv' \
      "$OUT/$name.json" | awk -F'\t' '{printf "%-22s %4s %14d %14d %8d\n", $1, $2, $3, $4, $5}'
  done
done
