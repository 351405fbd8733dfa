#!/usr/bin/env bash
# Every method at its defaults (compare's shared recipe: 20 epochs, batch 128, the automatic prior,
# each method's own step size) next to MAP: on each UCI set's first split with mlp:50, and on
# 10,000 Fashion-MNIST images with mlp:256,256. run_bench prints each method's paired difference
# from MAP (--baseline map); the JSON and Markdown go to bench/results/defaults_*.
#
#   bench/defaults.sh
#   SETS="yacht" FMNIST=0 bench/defaults.sh          # a quick check
#   METHODS="map;laplace;vi" REPS=3 BUILD=build OUT=bench/results
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BUILD="${BUILD:-build}"
REPS="${REPS:-1}"
OUT="${OUT:-bench/results}"
UCI="${UCI:-data/uci}"
SETS="${SETS:-bostonHousing concrete energy wine-quality-red yacht}"
FMNIST="${FMNIST:-1}"
# NUTS and HMC are left out at their defaults (thousands of full-batch gradients of every weight);
# gp is regression only, pacbayes classification only.
ALL="map;laplace;ensemble;svgd;repulsive;swag;multiswag;mcdropout;sgld;sghmc;psgld;csgmcmc;ivon;vi;pacbayes"
METHODS="${METHODS:-$ALL}"

"$root/bench/build.sh" "$BUILD" run_bench
mkdir -p "$OUT"
data=""; test=""
for s in $SETS; do
  [ -f "$UCI/$s/data.txt" ] || { echo "defaults.sh: no $UCI/$s/data.txt (set UCI=DIR)" >&2; exit 1; }
  data+="${data:+;}uci:$UCI/$s?split={split}&part=train"
  test+="${test:+;}uci:$UCI/$s?split={split}&part=test"
done
"$BUILD/bench/run_bench" --data "$data" --test "$test" --model mlp:50 --methods "${METHODS//;pacbayes/};gp" --reps "$REPS" \
  --lr 0 --baseline map --quiet --json "$OUT/defaults_uci.json" --markdown "$OUT/defaults_uci.md"
if [ "$FMNIST" = 1 ]; then
  "$BUILD/bench/run_bench" --data "fmnist:train?n=10000" --test "fmnist:test" --model mlp:256,256 \
    --methods "$METHODS" --reps "$REPS" --lr 0 --baseline map --quiet \
    --json "$OUT/defaults_fmnist.json" --markdown "$OUT/defaults_fmnist.md"
fi
