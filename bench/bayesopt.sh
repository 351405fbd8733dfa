#!/usr/bin/env bash
# Bayesian optimization on the standard test problems: every row (surrogate x acquisition) on every
# problem for every seed, each run `credence optimize` with its own JSON in OUT (runs already there
# are kept, so an interrupted benchmark continues). Then the summary (bench/bayesopt_summary.py):
# final log10 simple regret per row, mean and standard error over seeds, the wall time per
# iteration, and regret curves as SVG.
#
#   bench/bayesopt.sh                          # 10 seeds, all problems and rows, 2 runs at a time
#   SEEDS="0 1 2" JOBS=1 bench/bayesopt.sh
#   SUMMARY_ONLY=1 bench/bayesopt.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BUILD="${BUILD:-build}"
SEEDS="${SEEDS:-0 1 2 3 4 5 6 7 8 9}"
JOBS="${JOBS:-2}"
OUT="${OUT:-bench/results/bayesopt}"
# problem=budget; the noisy one adds Gaussian noise of sd 0.1 to every evaluation.
PROBLEMS="${PROBLEMS:-branin=50 hartmann6=100 ackley:10=150 hartmann6?noise=0.1=100}"
# row=method|acquisition. NUTS samples the last layer only (cheap chains); IVON starts from a
# larger Hessian estimate, as a few dozen points need (its default suits thousands).
ROWS="${ROWS:-random=gp|random gp-ei=gp|ei gp-thompson=gp|thompson laplace-ei=laplace|ei laplace-thompson=laplace|thompson
ensemble-ei=ensemble|ei ensemble-thompson=ensemble|thompson ivon-ei=ivon:hess_init=10|ei ivon-thompson=ivon:hess_init=10|thompson
nuts-thompson=nuts:subset=last_layer,chains=1,warmup=150,draws=100,max_depth=6|thompson}"
# Rows too slow for the largest problems, skipped there.
SKIP="${SKIP:-ackley:10/nuts-thompson}"

[ -n "${CLI:-}" ] || "$root/bench/build.sh" "$BUILD" credence_cli
cli="${CLI:-$BUILD/credence}"
mkdir -p "$OUT"
if [ -z "${SUMMARY_ONLY:-}" ]; then
  jobs_file="$(mktemp)"
  for seed in $SEEDS; do
    for p in $PROBLEMS; do
      problem="${p%=*}" budget="${p##*=}"
      for r in $ROWS; do
        row="${r%%=*}" spec="${r#*=}"
        case " $SKIP " in *" $problem/$row "*) continue;; esac
        tag="$(echo "$problem" | tr ':?=.' '____')_${row}_s$seed"
        [ -f "$OUT/$tag.json" ] && continue
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$problem" "$budget" "${spec%|*}" "${spec#*|}" "$seed" "$OUT/$tag.json"
      done
    done
  done > "$jobs_file"
  echo "$(wc -l < "$jobs_file") runs to do, $JOBS at a time" >&2
  # Each run writes its JSON only when it ends, so a stopped benchmark leaves no partial result.
  tr '\t' '\n' < "$jobs_file" | xargs -d '\n' -n 6 -P "$JOBS" sh -c \
    '"$0" optimize --objective "$1" --budget "$2" --method "$3" --acquisition "$4" --seed "$5" --quiet --json "$6" > /dev/null \
       || echo "failed: $*" >&2' "$cli"
  rm -f "$jobs_file"
fi
python3 "$root/bench/bayesopt_summary.py" "$OUT"
