#!/usr/bin/env python3
"""Summary of bench/bayesopt.sh's runs: final log10 simple regret per problem and row (mean and
standard error over seeds), seconds per iteration, two checks (every surrogate against random search, the best network surrogate
against GP-EI), and regret-curve SVGs."""
import collections
import json
import math
import os
import re
import sys

from curves import mean_se, plot_curves

FLOOR = 1e-8  # regret below this counts as this (log10 -8): the optimum found to rounding


def main(out, markdown=False):
    runs = collections.defaultdict(list)  # (objective, row) -> [run]
    runtime = None
    for name in sorted(os.listdir(out)):
        match = re.match(r"(.+)_([a-z0-9-]+)_s(\d+)\.json$", name)
        if not match:
            continue
        with open(os.path.join(out, name)) as f:
            data = json.load(f)
        run = data["runs"][0] if "runs" in data else data  # one run per file
        run.setdefault("objective", data.get("objective"))
        runtime = runtime or data.get("runtime")
        curve = [math.log10(max(e["regret"], FLOOR)) for e in run["evaluations"]]
        per_iter = [e["suggest_seconds"] for e in run["evaluations"] if e["round"].get("phase") == "surrogate"]
        runs[(run["objective"], match.group(2))].append({"curve": curve, "seconds": per_iter})
    if not runs:
        sys.exit(f"no runs in {out}")
    print(runtime)
    print("final log10 simple regret, mean (standard error) over seeds; seconds per iteration (surrogate fit + "
          "acquisition)")
    objectives = sorted({o for o, _ in runs})
    finals = {}
    for objective in objectives:
        rows = sorted(r for o, r in runs if o == objective)
        print(f"\n{objective}")
        if not markdown:
            print(f"  {'row':<20} {'seeds':>5} {'final':>15} {'half budget':>15} {'s/iter':>8}")
        table = []
        for row in rows:
            rs = runs[(objective, row)]
            n = min(len(r["curve"]) for r in rs)
            final = mean_se([r["curve"][n - 1] for r in rs])
            half = mean_se([r["curve"][n // 2 - 1] for r in rs])
            secs = [s for r in rs for s in r["seconds"]]
            finals[(objective, row)] = final[0]
            table.append((final[0], row, len(rs), final, half, sum(secs) / len(secs) if secs else 0.0))
        if markdown:
            print("\n| row | seeds | final | half budget | s/iter |\n|---|---|---|---|---|")
        for _, row, seeds, final, half, secs in sorted(table):
            if markdown:
                print(f"| {row} | {seeds} | {final[0]:.2f} ({final[1]:.2f}) | {half[0]:.2f} ({half[1]:.2f}) | {secs:.2f} |")
            else:
                print(f"  {row:<20} {seeds:>5} {final[0]:>7.2f} ({final[1]:.2f}) {half[0]:>7.2f} ({half[1]:.2f}) {secs:>8.2f}")
        plot(out, objective, {row: runs[(objective, row)] for row in rows})
    print("\nchecks")
    for objective in objectives:
        rows = {r: v for (o, r), v in finals.items() if o == objective}
        credence_rows = {r: v for r, v in rows.items() if not r.startswith(("gp", "random"))}
        if "random" in rows:
            losers = [r for r in rows if r != "random" and rows[r] >= rows["random"]]
            print(f"  {objective}: every surrogate beats random search: {'yes' if not losers else 'no: ' + ', '.join(losers)}")
        if credence_rows and "gp-ei" in rows:
            best = min(credence_rows, key=credence_rows.get)
            verdict = "yes" if credence_rows[best] <= rows["gp-ei"] else "no"
            print(f"  {objective}: best network surrogate ({best}, {credence_rows[best]:.2f}) <= GP-EI "
                  f"({rows['gp-ei']:.2f}): {verdict}")


def plot(out, objective, rows):
    """Mean log10 regret against evaluations, with a band of one standard error, one line per row."""
    name = re.sub(r"[^a-z0-9]+", "_", objective.lower()).strip("_")
    series = {}
    for row, rs in rows.items():
        n = min(len(r["curve"]) for r in rs)
        series[row] = (list(range(1, n + 1)), [r["curve"] for r in rs])
    plot_curves(os.path.join(out, f"regret_{name}.svg"),
                f"{objective}: log10 simple regret (mean and standard error over seeds)", "evaluations",
                "log10 regret", series)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--markdown"]
    main(args[0] if args else "bench/results/bayesopt", markdown="--markdown" in sys.argv)
