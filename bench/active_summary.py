#!/usr/bin/env python3
"""Summary of bench/active.sh's runs: labels to reach 80% and 75% test accuracy, accuracy at a few
label counts (mean and standard error over seeds), and learning-curve SVGs."""
import collections
import json
import os
import re
import sys

from curves import mean_se, plot_curves


def labels_to_reach(run, level):
    for r in run["rounds"]:
        if r["accuracy"] >= level:
            return r["labels"]
    return None


def main(out):
    runs = collections.defaultdict(list)
    runtime = None
    for name in sorted(os.listdir(out)):
        match = re.match(r"([a-z0-9-]+)_s(\d+)\.json$", name)
        if match:
            with open(os.path.join(out, name)) as f:
                data = json.load(f)
            run = data["runs"][0] if "runs" in data else data  # one run per file
            for key in ("pool", "test", "model"):
                run.setdefault(key, data.get(key))
            runtime = runtime or data.get("runtime")
            runs[match.group(1)].append(run)
    if not runs:
        sys.exit(f"no runs in {out}")
    print(runtime)
    first = next(iter(runs.values()))[0]
    print(f"pool {first['pool']}, test {first['test']}, model {first['model']}; mean (standard error) over seeds")
    marks = [100, 250, 500]
    print(f"  {'row':<20} {'seeds':>5} {'to 80%':>16} {'to 75%':>16} " + " ".join(f"{'acc@' + str(m):>15}" for m in marks))
    for row, rs in sorted(runs.items()):
        cells = []
        for level in (0.80, 0.75):
            reached = [labels_to_reach(r, level) for r in rs]
            hit = [v for v in reached if v is not None]
            cells.append(f"{mean_se(hit)[0]:.0f} ({len(hit)}/{len(rs)})" if hit else f"never (0/{len(rs)})")
        accs = []
        for m in marks:
            at = [r2["accuracy"] for r in rs for r2 in r["rounds"] if r2["labels"] == m]
            accs.append(f"{mean_se(at)[0]:.3f} ({mean_se(at)[1]:.3f})" if at else "-")
        print(f"  {row:<20} {len(rs):>5} {cells[0]:>16} {cells[1]:>16} " + " ".join(f"{a:>15}" for a in accs))
    print("  (to X%: mean labels over the seeds that got there, and how many did)")
    plot(out, runs)


def plot(out, runs):
    series = {}
    for row, rs in runs.items():
        n = min(len(r["rounds"]) for r in rs)
        series[row] = ([r2["labels"] for r2 in rs[0]["rounds"][:n]], [[r2["accuracy"] for r2 in r["rounds"]] for r in rs])
    plot_curves(os.path.join(out, "learning_curves.svg"),
                "Active learning: test accuracy (mean and standard error over seeds)", "labelled examples",
                "accuracy", series, key="bottom right")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results/active")
