#!/usr/bin/env bash
# Pool-based active learning on Fashion-MNIST: a pool of 10,000 training images, 20 initial labels
# (2 per class), 10 per round to 500, tested on the 10,000 test images. Every row (method x
# acquisition) for every seed runs `credence active` with its own JSON in OUT (runs already there
# are kept). Then the summary (bench/active_summary.py): labels needed to reach 80% (and 75%)
# test accuracy, accuracy at 100, 250 and 500 labels, and learning curves as SVG.
#
#   bench/active.sh                    # seeds 0-4
#   SEEDS=0 BUDGET=100 bench/active.sh # a quick check of the harness
#   SUMMARY_ONLY=1 bench/active.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BUILD="${BUILD:-build}"
SEEDS="${SEEDS:-0 1 2 3 4}"
OUT="${OUT:-bench/results/active}"
POOL="${POOL:-fmnist:train?n=10000}"
TEST="${TEST:-fmnist:test}"
MODEL="${MODEL:-mlp:100}"
EPOCHS="${EPOCHS:-50}"
BATCH_SIZE="${BATCH_SIZE:-32}"
BUDGET="${BUDGET:-500}"
# row=method|acquisition[|selection]: power draws each batch in proportion to the scores.
ROWS="${ROWS:-ensemble-random=ensemble|random ensemble-bald=ensemble|bald|top ensemble-bald-power=ensemble|bald|power
ensemble-entropy=ensemble|entropy|top ensemble-entropy-power=ensemble|entropy|power mcdropout-bald=mcdropout|bald|top
mcdropout-bald-power=mcdropout|bald|power}"

[ -n "${CLI:-}" ] || "$root/bench/build.sh" "$BUILD" credence_cli
cli="${CLI:-$BUILD/credence}"
mkdir -p "$OUT"
if [ -z "${SUMMARY_ONLY:-}" ]; then
  for seed in $SEEDS; do
    for r in $ROWS; do
      row="${r%%=*}" spec="${r#*=}"
      method="${spec%%|*}" rest="${spec#*|}"
      acquisition="${rest%%|*}" selection=power
      [ "$rest" = "$acquisition" ] || selection="${rest#*|}"
      out="$OUT/${row}_s$seed.json"
      [ -f "$out" ] && continue
      echo "== $row, seed $seed" >&2
      "$cli" active --pool "$POOL" --test "$TEST" --model "$MODEL" --epochs "$EPOCHS" --batch-size "$BATCH_SIZE" \
        --initial 20 --batch 10 --budget "$BUDGET" --method "$method" --acquisition "$acquisition" --selection "$selection" --seed "$seed" \
        --quiet --json "$out" > /dev/null || echo "failed: $row seed $seed" >&2
    done
  done
fi
python3 "$root/bench/active_summary.py" "$OUT"
