"""Train from scratch with several methods and compare them on held-out data, in one call.

    PYTHONPATH=build/python python3 examples/python/compare.py [--n 2000] [--epochs 10]
"""
import argparse

import credence

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=2000)
ap.add_argument("--epochs", type=int, default=10)
args = ap.parse_args()

train = credence.load_data(f"fmnist:train?n={args.n}")
test = credence.load_data("fmnist:test?n=1000")
rows = credence.compare("mlp:128", train, test, ["map", "laplace", "ensemble:members=3", "mcdropout"], epochs=args.epochs)
print(rows)  # rows.to_pandas() with pandas; an HTML table in Jupyter
