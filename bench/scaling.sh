#!/usr/bin/env bash
# Data-parallel scaling on one machine: each method fitted on Fashion-MNIST by one process with one
# thread, one process with two threads, and `credence launch -n 2` and `-n 4` (one thread each;
# float sums through shared memory, and for 2 also over Gloo's loopback TCP), side by side. Prints the fit's own seconds (training and any post-hoc pass; data loading left
# out), each setup's speed-up over one thread, and the seconds rank 0 waited for gradient sums
# where they ran in buckets (on one machine only when CREDENCE_BUCKET_BYTES is set).
#
#   bench/scaling.sh
#   MODEL=resnet:8 BATCH=128 N=10000 METHODS="map" bench/scaling.sh
#   SHAPE=1gbit bench/scaling.sh   # also: 2 processes over a loopback shaped to 1 Gbit/s (needs root),
#                                  # buckets of BUCKET bytes (default 4 MiB) against one bucket
#   DDP=1 bench/scaling.sh         # also: PyTorch's DistributedDataParallel on the same mlp (python3-torch)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BUILD="${BUILD:-build}"
MODEL="${MODEL:-mlp:1024,1024}"
BATCH="${BATCH:-512}"
EPOCHS="${EPOCHS:-1}"
N="${N:-60000}"
METHODS="${METHODS:-map ensemble:members=2,parallel=data ivon sgld:init=random laplace}"
SHAPE="${SHAPE:-}"
BUCKET="${BUCKET:-4194304}"
DDP="${DDP:-0}"
"$root/bench/build.sh" "$BUILD" credence_cli
cli="$(cd "$BUILD" && pwd)/credence"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$cli" describe --runtime  # also loads the libraries once, so the first timing is not a cold start
echo "model $MODEL, batch $BATCH, $EPOCHS epoch(s) on fmnist:train?n=$N; $(nproc) cores; the fit's seconds"
echo

# "fit_seconds wait_seconds buckets" from a posterior file's header.
info() {
  python3 - "$1" <<'EOF'
import json, sys
data = open(sys.argv[1], "rb").read()
meta, _ = json.JSONDecoder().raw_decode(data[data.index(b"{"):].decode("latin1"))
info = meta["meta"]["info"]
report = info.get("report", {})
print(f'{info["fit_seconds"]:.2f} {report.get("gradient_wait_seconds", 0):.2f} {report.get("gradient_buckets", 0)}')
EOF
}
# fit_seconds wait_seconds buckets of one setup: $1 = command prefix (may be empty), rest = fit options.
fitted() {
  local prefix="$1"; shift
  $prefix "$@" --out "$out/p.crd" --force >/dev/null 2>"$out/err" || { cat "$out/err" >&2; exit 1; }
  info "$out/p.crd"
}
ratio() { echo "$1 / $2" | bc -l; }

echo "| method | 1 process, 1 thread | 1 process, 2 threads | 2 processes, Gloo TCP | 2 processes | 4 processes | speed-up 2 threads | speed-up 2 processes, Gloo TCP | speed-up 2 processes | speed-up 4 processes | 2 processes vs 2 threads | waited for sums, 2 / 4 processes |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for m in $METHODS; do
  args=(fit --data "fmnist:train?n=$N" --model "$MODEL" --method "$m" --epochs "$EPOCHS" --batch-size "$BATCH" -q)
  res=$(fitted "" "$cli" "${args[@]}" --threads 1); read -r one _ _ <<<"$res"
  res=$(fitted "" "$cli" "${args[@]}" --threads 2); read -r two _ _ <<<"$res"
  res=$(fitted "env CREDENCE_SHM=0" "$cli" launch -n 2 -- "$cli" "${args[@]}" --threads 1); read -r tcp2 _ _ <<<"$res"
  res=$(fitted "" "$cli" launch -n 2 -- "$cli" "${args[@]}" --threads 1); read -r dp2 wait2 _ <<<"$res"
  res=$(fitted "" "$cli" launch -n 4 -- "$cli" "${args[@]}" --threads 1); read -r dp4 wait4 _ <<<"$res"
  printf "| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s / %s |\n" "$m" "$one" "$two" \
    "$tcp2" "$dp2" "$dp4" "$(ratio "$one" "$two")" "$(ratio "$one" "$tcp2")" "$(ratio "$one" "$dp2")" \
    "$(ratio "$one" "$dp4")" "$(ratio "$two" "$dp2")" "$wait2" "$wait4"
done

if [ -n "$SHAPE" ]; then
  # Both ranks in a network namespace of their own whose loopback a token bucket limits to
  # $SHAPE, all sums over it (CREDENCE_SHM=0: as between machines); the sums start during backward (default buckets) or all after it (one bucket).
  echo
  echo "2 processes over a loopback shaped to $SHAPE (tbf), MAP:"
  echo
  echo "| buckets | fit (s) | waited for sums (s) |"
  echo "|---|---|---|"
  cat >"$out/shaped.sh" <<EOF
#!/bin/sh
ip link set lo up && tc qdisc add dev lo root tbf rate $SHAPE burst 256kb latency 100ms && exec "\$@"
EOF
  chmod +x "$out/shaped.sh"
  args=(fit --data "fmnist:train?n=$N" --model "$MODEL" --method map --epochs "$EPOCHS" --batch-size "$BATCH" -q)
  for bytes in 1000000000000 "$BUCKET"; do
    res=$(fitted "unshare -n $out/shaped.sh env CREDENCE_SHM=0 CREDENCE_BUCKET_BYTES=$bytes" "$cli" launch -n 2 -- "$cli" "${args[@]}" \
      --threads 1)
    read -r secs wait buckets <<<"$res"
    [ "$bytes" = 1000000000000 ] && one_wait=$wait || one_wait_hidden=$wait
    printf "| %s | %.2f | %.2f |\n" "$buckets" "$secs" "$wait"
  done
  echo
  printf "hidden by the overlap: %.0f%% of the wait with one bucket\n" "$(echo "100 * (1 - $one_wait_hidden / $one_wait)" | bc -l)"
fi

if [ "$DDP" = 1 ]; then
  echo
  echo "PyTorch DistributedDataParallel (Gloo, one thread per process) on the same mlp and batch, random data:"
  widths="${MODEL#mlp:}"
  for ranks in 1 2; do
    port=$((29700 + RANDOM % 200))
    for ((r = ranks - 1; r >= 0; r--)); do
      MASTER_ADDR=127.0.0.1 MASTER_PORT=$port WORLD_SIZE=$ranks RANK=$r /usr/bin/python3 "$root/bench/ddp_reference.py" \
        --widths "$widths" --batch "$BATCH" --n "$N" &
    done
    wait
  done
fi
