#!/usr/bin/env bash
# Configures (once) and builds TARGETS (default: the benchmark programs) into BUILD (default: build), holding
# /tmp/build.lock while compiling so that concurrent builds on this machine take turns.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BUILD="${1:-build}"
shift || true
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(run_bench map_throughput)
[ -f "$BUILD/CMakeCache.txt" ] || cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
lock=(); command -v flock >/dev/null && lock=(flock /tmp/build.lock)
"${lock[@]}" cmake --build "$BUILD" -j "${JOBS:-2}" --target "${targets[@]}" >&2
