#!/usr/bin/env python3
"""What the Python route adds: MAP and last-layer Laplace on Fashion-MNIST, timed around the Python
calls and around the same fit() calls in a C++ program (build/bench/fit_call, data in memory), and a
loader of batches against arrays, side by side in one run.

    PYTHONPATH=build/python python3 bench/python_overhead.py [--n 10000] [--epochs 5] [--reps 3]
                                                             [--cpp build/bench/fit_call]
"""
import argparse
import os
import subprocess
import time

import credence
from credence import _credence


def timed(f):
    start = time.perf_counter()
    out = f()
    return out, time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cpp", default=os.path.join(os.path.dirname(__file__), "..", "build", "bench", "fit_call"))
    args = ap.parse_args()
    print("runtime:", _credence.runtime())
    x, y = credence.load_data(f"fmnist:train?n={args.n}")
    batches = [(x[i:i + 1000], y[i:i + 1000]) for i in range(0, len(x), 1000)]
    print(f"task: mlp:256,256 on {len(x)} Fashion-MNIST images, {args.epochs} epochs, best of {args.reps}")
    out = subprocess.run([args.cpp, "--n", str(args.n), "--epochs", str(args.epochs), "--reps", str(args.reps)],
                         check=True, capture_output=True, text=True).stdout
    cpp = float(out.split("C++ fit() calls")[1].split()[0])
    print(f"C++ route (fit_call)   {cpp:7.2f}s")
    rows = {}
    for name, data in [("arrays", (x, y)), ("batches", batches)]:
        best_wall, best_inner = float("inf"), float("inf")
        for _ in range(args.reps):
            def run():
                post = credence.fit("mlp:256,256", data, "map", epochs=args.epochs)
                lap = credence.fit("mlp:256,256", data, "laplace", _map=post._fitted, epochs=args.epochs)
                return post, lap
            (post, lap), wall = timed(run)
            inner = post.info["fit_seconds"] + lap.info["fit_seconds"]  # laplace given a MAP counts only itself
            best_wall, best_inner = min(best_wall, wall), min(best_inner, inner)
        rows[name] = (best_wall, best_inner)
        print(f"{name:8s} Python call {best_wall:7.2f}s   C++ fit inside it {best_inner:7.2f}s   "
              f"Python / C++ route {best_wall / cpp:.3f}")
    print(f"loader of batches / arrays (Python call): {rows['batches'][0] / rows['arrays'][0]:.3f}")


if __name__ == "__main__":
    main()
