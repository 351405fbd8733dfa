#!/usr/bin/python3
"""Mean test NLL (standard error over splits) per data set, route and method from bench/tune.sh's
JSON files, with the tuned values chosen most often."""
import collections
import glob
import json
import math
import os
import sys

folder = sys.argv[1] if len(sys.argv) > 1 else "bench/results/tune"
nll = collections.defaultdict(list)
chosen = collections.defaultdict(collections.Counter)
for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
    name = os.path.basename(path)[:-5]
    parts = name.split("-")
    route = parts[-1]
    data = "fmnist" if parts[0] == "fmnist" else "-".join(parts[1:-2])
    with open(path) as f:
        rows = json.load(f)["results"]
    for r in rows:
        nll[(data, route, r["method"])].append(r["nll"])
        if r.get("tuned"):
            chosen[(data, r["method"])][json.dumps(r["tuned"], sort_keys=True)] += 1


def mean_se(v):
    m = sum(v) / len(v)
    se = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1) / len(v)) if len(v) > 1 else 0.0
    return f"{m:.3f} ({se:.3f})"


print("| data | route | method | splits | test NLL |")
print("|---|---|---|---|---|")
for (data, route, method), v in sorted(nll.items()):
    print(f"| {data} | {route} | {method} | {len(v)} | {mean_se(v)} |")
print()
print("| data | method | values chosen most often (count) |")
print("|---|---|---|")
for (data, method), counts in sorted(chosen.items()):
    top, n = counts.most_common(1)[0]
    print(f"| {data} | {method} | {top} ({n} of {sum(counts.values())}) |")
