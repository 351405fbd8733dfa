#!/usr/bin/env bash
# Split conformal coverage on the UCI regression sets: `credence compare` with a calibration part
# held out of each standard training split (20% of it, at least 100 points), normalized-residual
# intervals at nominal 0.90, mlp:50 with bench/uci.sh's settings. Prints per set and method the
# conformal and credible coverage averaged over splits (target for conformal: [0.88, 0.93]).
#
#   bench/uci_conformal.sh                                # map and a 5-member ensemble, 10 splits
#   SETS="yacht" REPS=2 METHODS=map bench/uci_conformal.sh
#   SKIP_BUILD=1 BUILD=DIR bench/uci_conformal.sh          # use DIR/credence as it is
#   METHODS="map,ensemble:members=5" REPS=10 EPOCHS=400 BATCH=32 PRIOR=10 THREADS=1 UCI=data/uci OUT=bench/results/uci_conformal
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BUILD="${BUILD:-build}"
REPS="${REPS:-10}"
EPOCHS="${EPOCHS:-400}"
BATCH="${BATCH:-32}"
PRIOR="${PRIOR:-10}"
METHODS="${METHODS:-map,ensemble:members=5}"
THREADS="${THREADS:-1}"
UCI="${UCI:-data/uci}"
OUT="${OUT:-bench/results/uci_conformal}"
SETS="${SETS:-bostonHousing concrete energy wine-quality-red yacht}"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  "$root/bench/build.sh" "$BUILD" credence_cli
fi
mkdir -p "$OUT"
for s in $SETS; do
  [ -f "$UCI/$s/data.txt" ] || { echo "uci_conformal.sh: no $UCI/$s/data.txt (set UCI=DIR)" >&2; exit 1; }
  n=$(grep -c . "$UCI/$s/data.txt")
  cal=$((n * 9 / 10 / 5)); [ "$cal" -lt 100 ] && cal=100  # the training split is 90% of the set
  for ((k = 0; k < REPS; k++)); do
    "$BUILD/credence" compare --data "uci:$UCI/$s?split=$k&part=train&holdout=cal:$cal&holdout_seed=$k" \
      --test "uci:$UCI/$s?split=$k&part=test" --model mlp:50 --methods "$METHODS" --epochs "$EPOCHS" \
      --batch-size "$BATCH" --prior-precision "$PRIOR" --seed "$k" --threads "$THREADS" -q \
      --json "$OUT/${s}_$k.json" --force >/dev/null
  done
  echo "$s: $REPS splits, $cal calibration points" >&2
done
echo "conformal (normalized residuals) and credible coverage at nominal 0.90, mean over splits"
for s in $SETS; do jq -c --arg s "$s" '.results[] | {set: $s, method, conformal_coverage, credible_coverage, conformal_set_size, rmse}' "$OUT/${s}_"*.json; done |
  jq -rs 'group_by([.set, .method]) | .[] | [.[0].set, .[0].method, length,
      ((map(.conformal_coverage) | add / length) * 1000 | round) / 1000,
      ((map(.credible_coverage) | add / length) * 1000 | round) / 1000,
      ((map(.conformal_set_size) | add / length) * 100 | round) / 100,
      ((map(.rmse) | add / length) * 100 | round) / 100] | @tsv' |
  { printf 'set\tmethod\tsplits\tconformal\tcredible\twidth\trmse\n'; cat; } | column -t -s $'\t'
