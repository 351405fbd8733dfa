"""Post-hoc: a network trained in PyTorch becomes Bayesian with one call, then predicts, decides and
writes a file the command line reads.

    PYTHONPATH=build/python python3 examples/python/post_hoc.py [--n 2000] [--out post.crd]
"""
import argparse

import numpy as np
import torch

import credence

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=2000)
ap.add_argument("--epochs", type=int, default=5)
ap.add_argument("--out", default="")
args = ap.parse_args()

x, y = credence.load_data(f"fmnist:train?n={args.n}")
x_test, y_test = credence.load_data("fmnist:test?n=1000")

# Your network, trained your way.
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 5, stride=2), torch.nn.ReLU(), torch.nn.Flatten(),
                          torch.nn.Linear(8 * 12 * 12, 10))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
for _ in range(args.epochs):
    for i in range(0, len(x), 64):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.from_numpy(x[i:i + 64])), torch.from_numpy(y[i:i + 64])).backward()
        opt.step()

# The two lines: its weights are the MAP; Laplace adds the uncertainty.
post = credence.fit(net, (x, y), "laplace", epochs=0)
pred = post.predict(x_test)

map_ = credence.fit(net, (x, y), "map", epochs=0)
for name, p in [("network as trained", map_), ("last-layer Laplace", post)]:
    m = p.metrics(x_test, y_test)
    print(f"{name:20s} accuracy {m['accuracy']:.3f}  nll {m['nll']:.3f}  ece {m['ece']:.3f}")

# Act on it: errors cost 10, referring an image to a person costs 1.
costs = {"classes": "fmnist", "error_cost": 10, "actions": [{"name": "refer", "cost": 1}]}
d = credence.decide(post, x_test, costs, y=y_test)
print(f"referred {int(np.sum(np.array(d.names) == 'refer'))} of {len(x_test)}; "
      f"mean cost {d.realized_cost.mean():.3f} (expected {d.expected_cost.mean():.3f})")
if args.out:
    post.save(args.out, overwrite=False)  # `credence evaluate --posterior FILE` reads it
