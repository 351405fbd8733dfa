#!/usr/bin/env bash
# PAC-Bayes certificate on Fashion-MNIST: fit `pacbayes` (data prior from half the training rows)
# on all 60,000 training images, then certify on the other half and report the test error.
#   bench/pacbayes.sh                          # defaults: quad bound, prior_std 0.03, 20 epochs
#   METHOD="pacbayes:objective=lambda" EPOCHS=10 bench/pacbayes.sh
#   MODEL=cnn:lenet bench/pacbayes.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BUILD="${BUILD:-build}"
METHOD="${METHOD:-pacbayes}"
MODEL="${MODEL:-mlp:256,256}"
EPOCHS="${EPOCHS:-20}"
NETWORKS="${NETWORKS:-10000}"
OUT="${OUT:-bench/results}"
"$root/bench/build.sh" "$BUILD" credence_cli
mkdir -p "$OUT"
"$BUILD/credence" fit --data fmnist:train --model "$MODEL" --method "$METHOD" --epochs "$EPOCHS" \
  --out "$OUT/pacbayes.crd" --force -q
"$BUILD/credence" bound --posterior "$OUT/pacbayes.crd" --test fmnist:test --networks "$NETWORKS" \
  --json "$OUT/pacbayes.json" --force
