#!/usr/bin/env bash
# The whole benchmark: the framework's overhead against a plain LibTorch loop, then every method
# with its recipe on the UCI sets (all splits, test log-likelihood and RMSE, mean and standard
# error) and on Fashion-MNIST (accuracy, NLL, ECE, fit and predict seconds). Writes
# OUT/{overhead.txt, uci_*.json, fmnist_*.json, summary.md} and prints the summary.
#
#   bench/all.sh                                   # hours on 2 cores
#   REPS=1 UCI_EPOCHS=20 FM_EPOCHS=1 N=2000 SETS=yacht bench/all.sh   # a quick check of the harness
#   RECIPES_FILE=my_recipes.txt bench/all.sh       # lines "group|methods|lr", methods ';'-separated
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BUILD="${BUILD:-build}"
REPS="${REPS:-20}"
FM_REPS="${FM_REPS:-3}"
UCI_EPOCHS="${UCI_EPOCHS:-400}"
FM_EPOCHS="${FM_EPOCHS:-20}"
N="${N:-10000}"
THREADS="${THREADS:-1}"
OUT="${OUT:-bench/results/all}"
export SETS="${SETS:-bostonHousing concrete energy wine-quality-red yacht}"

# One line per group of methods that share a learning rate: name|methods|lr.
default_recipes='adam|map;laplace;ensemble:members=5;swag;mcdropout;svgd;repulsive;vi:init=map|1e-3
ivon|ivon:clip=0.001,hess_init=0.1|0.1
sgmcmc|sgld:chains=4;csgmcmc:momentum=0.9,cycles=2|0.05'
if [ -n "${RECIPES_FILE:-}" ]; then recipes="$(cat "$RECIPES_FILE")"; else recipes="$default_recipes"; fi

"$root/bench/build.sh" "$BUILD" run_bench map_throughput
mkdir -p "$OUT"
"$BUILD/bench/map_throughput" --threads "$THREADS" --epochs 1 | tee "$OUT/overhead.txt"

summary="$OUT/summary.md"
{ echo "# credence benchmark"; echo; echo '```'; head -2 "$OUT/overhead.txt"; echo '```'; echo; } > "$summary"
grep -E "plain|credence|overhead|ratio" "$OUT/overhead.txt" | sed 's/^/    /' >> "$summary" || true
while IFS='|' read -r group methods lr; do
  [ -n "$group" ] || continue
  echo "== $group: $methods (lr $lr)" >&2
  REPS="$REPS" EPOCHS="$UCI_EPOCHS" METHODS="$methods" OUT="$OUT/uci_$group" "$root/bench/uci.sh" --lr "$lr" --quiet \
    > /dev/null
  REPS="$FM_REPS" EPOCHS="$FM_EPOCHS" N="$N" METHODS="$methods" OUT="$OUT/fmnist_$group" "$root/bench/fmnist.sh" \
    --lr "$lr" --quiet > /dev/null
  cp "$OUT/uci_$group/uci.json" "$OUT/uci_$group.json"
  cp "$OUT/fmnist_$group/fmnist.json" "$OUT/fmnist_$group.json"
  { echo; echo "## $group (lr $lr): UCI"; echo; grep '^|' "$OUT/uci_$group/uci.md";
    echo; echo "## $group (lr $lr): Fashion-MNIST"; echo; grep '^|' "$OUT/fmnist_$group/fmnist.md"; } >> "$summary"
done <<<"$recipes"
cat "$summary"
