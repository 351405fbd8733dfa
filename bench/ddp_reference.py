"""PyTorch's DistributedDataParallel (Gloo) training an mlp of the given widths for one epoch of
random Fashion-MNIST-shaped data with Adam, one thread per process: the reference for
bench/scaling.sh. Run one copy per rank with RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set;
rank 0 prints the epoch's seconds (after one untimed epoch)."""
import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.nn as nn

parser = argparse.ArgumentParser()
parser.add_argument("--widths", default="1024,1024")
parser.add_argument("--batch", type=int, default=512)
parser.add_argument("--n", type=int, default=60000)
args = parser.parse_args()
torch.set_num_threads(1)
ranks = int(os.environ.get("WORLD_SIZE", "1"))
if ranks > 1:
    dist.init_process_group("gloo")
rank = dist.get_rank() if ranks > 1 else 0
torch.manual_seed(0)
layers, width = [], 784
for w in (int(v) for v in args.widths.split(",") if v):
    layers += [nn.Linear(width, w), nn.ReLU()]
    width = w
net = nn.Sequential(*layers, nn.Linear(width, 10))
if ranks > 1:
    net = nn.parallel.DistributedDataParallel(net)
opt = torch.optim.Adam(net.parameters(), 1e-3)
x, y = torch.randn(args.n, 784), torch.randint(0, 10, (args.n,))
share = args.batch // ranks


def epoch():
    for start in range(0, args.n - args.batch + 1, args.batch):
        rows = slice(start + rank * share, start + (rank + 1) * share)
        opt.zero_grad()
        nn.functional.cross_entropy(net(x[rows]), y[rows]).backward()
        opt.step()


epoch()
began = time.time()
epoch()
if rank == 0:
    print(f"DDP, {ranks} process(es): {time.time() - began:.2f} s per epoch")
