#!/usr/bin/env bash
# OOD detection on Fashion-MNIST with classes 8-9 held out: methods fitted on N images of classes
# 0-7 (mlp:256,256, default recipe; 1,000 more held out to fit MAP's temperature), scored on the
# test images of classes 0-7 (in) against those of classes 8-9 (out). Prints OOD AUROC (entropy
# score) per method and seed, the mean, and the difference to MAP; JSON and seed 0's HTML report go
# to OUT.
#
#   bench/ood.sh                  # seeds 0 1 2 (about 4 minutes per seed on 2 cores, 1 thread)
#   SEEDS=0 EPOCHS=5 bench/ood.sh # a quick check
#   METHODS="map,laplace,ensemble:members=5" N=10000 EPOCHS=20 THREADS=1 OUT=bench/results/ood BUILD=build
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BUILD="${BUILD:-build}"
SEEDS="${SEEDS:-0 1 2}"
N="${N:-10000}"
EPOCHS="${EPOCHS:-20}"
METHODS="${METHODS:-map,laplace,ensemble:members=5}"
THREADS="${THREADS:-1}"
OUT="${OUT:-bench/results/ood}"

"$root/bench/build.sh" "$BUILD" credence_cli
mkdir -p "$OUT"
for seed in $SEEDS; do
  report=(); [ "$seed" = "$(echo $SEEDS | cut -d' ' -f1)" ] && report=(--report "$OUT/report")
  "$BUILD/credence" compare --data "fmnist:train?classes=0-7&n=$((N + 1000))&holdout=val:1000&holdout_seed=$seed" \
    --test "fmnist:test?classes=0-7" --ood "fmnist:test?classes=8-9" --model mlp:256,256 \
    --methods "$METHODS" --epochs "$EPOCHS" --seed "$seed" --threads "$THREADS" --rank-by ood_auroc -q \
    --json "$OUT/ood_s$seed.json" "${report[@]}" --force
done
echo
echo "OOD AUROC (entropy), in: test classes 0-7, out: test classes 8-9"
jq -rs '
  [.[] | .results[]] | group_by(.method)
  | map({method: .[0].method, v: map(.ood_auroc), acc: (map(.accuracy) | add / length)}) as $m
  | ($m | map(select(.method == "map"))[0].v | add / length) as $map
  | (["method", "per seed", "mean", "vs MAP (points)", "accuracy"] | @tsv),
    ($m[] | [.method,
             (.v | map((. * 1000 | round) / 1000 | tostring) | join(" ")),
             ((.v | add / length) * 10000 | round) / 10000,
             ((((.v | add / length) - $map) * 1000) | round) / 10,
             (.acc * 10000 | round) / 10000] | @tsv)' "$OUT"/ood_s*.json | column -t -s $'\t'
