"""A PAC-Bayes posterior and its risk certificate: with probability >= 1 - delta - delta_mc its
stochastic network's error on new data is at most the bound.

    PYTHONPATH=build/python python3 examples/python/certify.py [--n 4000] [--epochs 5]
"""
import argparse

import credence

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=4000)
ap.add_argument("--epochs", type=int, default=5)
ap.add_argument("--networks", type=int, default=2000)
args = ap.parse_args()

x, y = credence.load_data(f"fmnist:train?n={args.n}")
post = credence.fit("mlp:128", (x, y), "pacbayes", epochs=args.epochs)
c = post.bound(networks=args.networks)
print(f"certified on {c['n']} training rows the prior never saw: error <= {c['error_bound']:.3f} "
      f"(empirical {c['error_estimate']:.3f}, KL {c['kl']:.1f})")
