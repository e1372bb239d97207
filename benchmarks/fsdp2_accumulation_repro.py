"""Minimal reproduction: FSDP2 gradient accumulation loses the root module's gradients after a forward in which the
module's parameters were frozen (requires_grad False), as the addbench engine's freeze_others does between turns.

    DTURN=1 MODE=full torchrun --nproc_per_node 2 benchmarks/fsdp2_accumulation_repro.py   # 0.2696 (the truth)
    DTURN=1 MODE=acc  torchrun --nproc_per_node 2 benchmarks/fsdp2_accumulation_repro.py   # 0.1822 (2 micro-batches)
    MODE=acc          torchrun --nproc_per_node 2 benchmarks/fsdp2_accumulation_repro.py   # 0.2696 (no frozen forward)

Measured with torch 2.14.1 on CPU (gloo), 2026-12-03. Until this is resolved the engine refuses micro_batch
accumulation with sharded networks (addbench/train/loop.py); one-process accumulation is unaffected
(tests/train/test_accumulate.py).
"""
import os, torch, torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import fully_shard
dist.init_process_group("gloo")
r, w = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
net = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 3))
D = nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 1))
fully_shard(net[0]); fully_shard(net[1]); fully_shard(net)
fully_shard(D)
x = torch.arange(16.0).reshape(4, 4) / 10
mine = x[r*2:(r+1)*2]
mode = os.environ["MODE"]
def turn_d(inp):
    for p in net.parameters(): p.requires_grad_(False)
    for p in D.parameters(): p.requires_grad_(True)
    D(net(inp).detach()).mean().backward()
    for p in D.parameters(): p.grad = None
if os.environ.get("DTURN"): turn_d(mine)
for p in D.parameters(): p.requires_grad_(False)
for p in net.parameters(): p.requires_grad_(True)
def loss(inp):
    y = net(inp)
    return y.pow(2).mean() + nn.functional.softplus(-D(y)).mean()
if mode == "full":
    loss(mine).backward()
else:
    for j in range(2):
        net.set_requires_gradient_sync(j == 1)
        (loss(mine[j:j+1]) / 2).backward()
g = torch.cat([p.grad.full_tensor().flatten() for p in net.parameters()])
if r == 0: print(mode, os.environ.get("DTURN"), g.norm().item())
dist.destroy_process_group()
