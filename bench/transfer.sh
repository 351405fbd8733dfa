#!/usr/bin/env bash
# Transfer with few labels: a backbone pretrained on classes 0-4 (all their training images),
# adapted to classes 5-9 (a five-class task of its own: labels renumbered, a new head drawn) with
# BUDGET labels per class (each seed draws other labels, and as many
# more held out for MAP's temperature), tested on every test image of classes 5-9, with the test
# images of classes 0-4 as out-of-distribution inputs. DATA=fmnist (Fashion-MNIST) or digits
# (scikit-learn's 8x8 digits in data/digits). Rows: full fine-tune MAP, LoRA MAP,
# LoRA MAP + temperature, LoRA Laplace (KFAC over adapters and head, marglik prior), LoRA IVON,
# LoRA ensemble, and last-layer Laplace on the LoRA fit. Prints mean and standard error per row.
#
#   bench/transfer.sh                       # resnet:8, budgets 10 and 50, seeds 0-4
#   MODEL=transformer:2 PRE_EPOCHS=10 bench/transfer.sh
#   DATA=digits PRE_EPOCHS=30 bench/transfer.sh
#   SEEDS=0 BUDGETS=10 PRE_EPOCHS=1 EPOCHS=20 bench/transfer.sh   # a quick check of the harness
#   SUMMARY_ONLY=1 bench/transfer.sh        # the table from the JSON files already in OUT
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BUILD="${BUILD:-build}"
DATA="${DATA:-fmnist}"
MODEL="${MODEL:-resnet:8}"
PRE_EPOCHS="${PRE_EPOCHS:-5}"
BUDGETS="${BUDGETS:-10 50}"
SEEDS="${SEEDS:-0 1 2 3 4}"
EPOCHS="${EPOCHS:-100}"      # adapter epochs (a few steps each: the labelled sets are small)
BATCH="${BATCH:-16}"
ADAPTERS="${ADAPTERS:-lora:rank=4,alpha=8,head=new}"
SAMPLES="${SAMPLES:-10}"
THREADS="${THREADS:-1}"
OUT="${OUT:-bench/results/transfer}"
METHODS="${METHODS:-map;laplace:subset=all,hessian=kron;ivon;ensemble:members=5;laplace}"

[ -n "${CLI:-}" ] || "$root/bench/build.sh" "$BUILD" credence_cli
mkdir -p "$OUT"
cli="${CLI:-$BUILD/credence}"
case "$DATA" in
  fmnist) train="fmnist:train?"; test="fmnist:test?";;
  digits) d="csv:data/digits"; train="$d/train.csv?target=label&task=classification&shape=1x8x8&"
          test="$d/test.csv?target=label&task=classification&shape=1x8x8&";;
  *) echo "transfer.sh: DATA must be fmnist or digits" >&2; exit 1;;
esac
tag="${DATA}_$(echo "$MODEL" | tr ':?&=,' '_____')"
backbone="$OUT/backbone_$tag.crd"
if [ ! -f "$backbone" ] && [ -z "${SUMMARY_ONLY:-}" ]; then
  echo "== pretraining $MODEL on classes 0-4 ($PRE_EPOCHS epochs)" >&2
  "$cli" fit --data "${train}labels=0-4&renumber=1" --model "$MODEL" --method map --epochs "$PRE_EPOCHS" \
    --threads "$THREADS" -q --out "$backbone"
fi
[ -n "${SUMMARY_ONLY:-}" ] || "$cli" evaluate --posterior "$backbone" --data "${test}labels=0-4&renumber=1" -q | sed 's/^/backbone on test classes 0-4: /' >&2

for budget in $BUDGETS; do
  [ -z "${SUMMARY_ONLY:-}" ] || break
  for seed in $SEEDS; do
    data="${train}labels=5-9&renumber=1&per_class=$((2 * budget))&per_class_seed=$seed&holdout=val:0.5&holdout_seed=$seed"
    common=(--data "$data" --test "${test}labels=5-9&renumber=1" --ood "${test}labels=0-4&renumber=1" --model "$MODEL"
            --init "$backbone" --epochs "$EPOCHS" --batch-size "$BATCH" --seed "$seed" --samples "$SAMPLES"
            --threads "$THREADS" -q --force)
    echo "== budget $budget per class, seed $seed" >&2
    "$cli" compare "${common[@]}" --adapters "$ADAPTERS" --methods "$METHODS" \
      --json "$OUT/lora_${tag}_b${budget}_s$seed.json" > /dev/null
    "$cli" compare "${common[@]}" --methods map --json "$OUT/full_${tag}_b${budget}_s$seed.json" > /dev/null
  done
done

echo
echo "$DATA, $MODEL pretrained on classes 0-4, adapted to 5-9 with $ADAPTERS; mean (standard error) over seeds $SEEDS"
for budget in $BUDGETS; do
  echo
  echo "budget: $budget labels per class"
  for f in "$OUT"/lora_${tag}_b${budget}_s*.json "$OUT"/full_${tag}_b${budget}_s*.json; do
    case "$f" in */full_*) prefix="full fine-tune";; *) prefix="lora";; esac
    jq -c --arg p "$prefix" '.results[] | .method = $p + " " + .method' "$f"
  done | jq -rs '
    def ms(f): (map(f) | add / length) as $m
      | (if length > 1 then ((map((f - $m) * (f - $m)) | add) / (length - 1) / length | sqrt) else 0 end) as $se
      | "\(($m * 1000 | round) / 1000) (\(($se * 1000 | round) / 1000))";
    group_by(.method)
    | (["method", "accuracy", "nll", "ece", "ood_auroc", "fit_s"] | @tsv),
      (.[] | [.[0].method, ms(.accuracy), ms(.nll), ms(.ece), ms(.ood_auroc // 0), ms(.fit_seconds // 0)] | @tsv)' \
    | column -t -s $'\t'
done
