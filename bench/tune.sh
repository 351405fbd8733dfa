#!/usr/bin/env bash
# --tune against the hand recipe on the UCI sets (mlp:50, standard splits) and Fashion-MNIST
# (10,000 images, mlp:256,256): one `credence compare` per split and route, JSON per run in
# $OUT/tune/, summarized by bench/tune_summary.py. The tuned route carves holdout=val:0.2 out of
# the training split (chosen by the split's seed) and tunes on it; the hand route trains on the
# whole split with the documented UCI recipe (prior precision 10, 400 epochs, batch 32) or the
# images' defaults. The test split is read only for the table.
#
#   bench/tune.sh                                 # five sets x REPS splits, and Fashion-MNIST
#   SETS=yacht REPS=1 FMNIST=0 bench/tune.sh      # a quick check
#   METHODS="map;laplace;laplace:members=5;ivon" REPS=5 BUILD=build OUT=bench/results
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BUILD="${BUILD:-build}"
REPS="${REPS:-5}"
OUT="${OUT:-bench/results}"
UCI="${UCI:-data/uci}"
SETS="${SETS:-bostonHousing concrete energy wine-quality-red yacht}"
FMNIST="${FMNIST:-1}"
METHODS="${METHODS:-map;laplace;laplace:members=5;ivon}"
HAND="${HAND:-map;laplace;laplace:members=5}"
cli="$BUILD/credence"
[ -x "$cli" ] || "$root/bench/build.sh" "$BUILD"
mkdir -p "$OUT/tune"
"$cli" describe --runtime
run() {  # run NAME ARGS...: skips runs already written (the script resumes)
  local name="$1"; shift
  [ -s "$OUT/tune/$name.json" ] && return 0
  "$cli" compare --quiet --json "$OUT/tune/$name.json" "$@" > /dev/null
}
for s in $SETS; do
  for ((k = 0; k < REPS; k++)); do
    train="uci:$UCI/$s?split=$k&part=train"
    test="uci:$UCI/$s?split=$k&part=test"
    run "uci-$s-$k-tuned" --data "$train&holdout=val:0.2&holdout_seed=$k" --test "$test" --model mlp:50 \
      --methods "$METHODS" --tune --epochs 400 --batch-size 32 --seed "$k"
    run "uci-$s-$k-hand" --data "$train" --test "$test" --model mlp:50 --methods "$HAND" \
      --epochs 400 --batch-size 32 --prior 10 --seed "$k"
  done
done
if [ "$FMNIST" = 1 ]; then
  run fmnist-tuned --data "fmnist:train?n=10000&holdout=val:0.2" --test fmnist:test --model mlp:256,256 \
    --methods "$METHODS" --tune --epochs 20
  run fmnist-hand --data "fmnist:train?n=10000" --test fmnist:test --model mlp:256,256 --methods "$HAND" --epochs 20
fi
/usr/bin/python3 "$root/bench/tune_summary.py" "$OUT/tune"
