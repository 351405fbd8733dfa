#!/usr/bin/env bash
# Data-parallel scaling on one machine: each method fitted on Fashion-MNIST by one process with one
# thread, one process with two threads, and `credence launch -n 2` (one thread each), side by side.
# Prints wall seconds (process start to exit, data loading included) and each setup's speed-up
# over one thread.
#
#   bench/scaling.sh
#   MODEL=mlp:256,256 BATCH=128 METHODS="map ivon" EPOCHS=1 N=60000 BUILD=build
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BUILD="${BUILD:-build}"
MODEL="${MODEL:-mlp:1024,1024}"
BATCH="${BATCH:-512}"
EPOCHS="${EPOCHS:-1}"
N="${N:-60000}"
METHODS="${METHODS:-map ensemble:members=2 ivon sgld laplace}"
"$root/bench/build.sh" "$BUILD" credence_cli
cli="$BUILD/credence"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$cli" describe --runtime  # also loads the libraries once, so the first timing is not a cold start
echo "model $MODEL, batch $BATCH, $EPOCHS epoch(s) on fmnist:train?n=$N; wall seconds"
echo
echo "| method | 1 process, 1 thread | 1 process, 2 threads | 2 processes, 1 thread each | speed-up 2 threads | speed-up 2 processes |"
echo "|---|---|---|---|---|---|"
timed() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>"$out/err" || { cat "$out/err" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
for m in $METHODS; do
  args=(fit --data "fmnist:train?n=$N" --model "$MODEL" --method "$m" --epochs "$EPOCHS" --batch-size "$BATCH" -q
        --out "$out/p.crd" --force)
  one=$(timed "$cli" "${args[@]}" --threads 1)
  two=$(timed "$cli" "${args[@]}" --threads 2)
  dp=$(timed "$cli" launch -n 2 -- "$cli" "${args[@]}" --threads 1)
  printf "| %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n" "$m" "$one" "$two" "$dp" "$(echo "$one / $two" | bc -l)" \
    "$(echo "$one / $dp" | bc -l)"
done
