"""Minimal reproduction: FSDP2 gradient accumulation lost the root module's gradients after a forward in which the
module's parameters were frozen (requires_grad False), as the addbench engine's freeze_others does between turns.

    DTURN=1 MODE=full torchrun --nproc_per_node 2 benchmarks/fsdp2_accumulation_repro.py   # 0.2696 (the truth)
    DTURN=1 MODE=acc  torchrun --nproc_per_node 2 benchmarks/fsdp2_accumulation_repro.py   # 0.1822 (2 micro-batches)
    MODE=acc          torchrun --nproc_per_node 2 benchmarks/fsdp2_accumulation_repro.py   # 0.2696 (no frozen forward)
    DTURN=1 MODE=acc SYNC=1 torchrun ...                                                   # 0.1822 (sync every round)
    DTURN=1 MODE=acc FIX=1  torchrun ...                                                   # 0.2696 (the fix)
    DTURN=1 MODE=acc FIX=1 SYNC=1 torchrun ...                                             # 0.2696 (the fix, sync every round)

Measured with torch 2.14.1 on CPU (gloo), 2026-12-03; the fixed norms equal the truth's to every printed digit
(0.26964592933654785).

Cause: the root FSDP2 module keeps its parameters unsharded after forward (``reshard_after_forward=False``) until a
backward runs through it; a frozen forward has none, so ``net.parameters()`` are then the *unsharded* copies and the
``requires_grad_(True)`` of the next turn lands on them, while the sharded parameters stay False. The first
micro-batch trains (the copy says True); its backward reshards, and the next all-gather copies requires_grad from the
sharded parameter (``FSDPParam.to_unsharded``): False, so every later round drops the root's gradients.
Syncing every round does not help. The fix (FIX=1): ``FSDPModule.reshard()`` on every FSDP module of a network
before toggling its requires_grad (no communication; at most one all-gather of the root more on the next forward),
so that the toggle reaches the sharded parameters. The engine does it (addbench/train/loop.py ``trainable``,
addbench/train/parallel.py ``reshard``) and reduce-scatters every round (no ``set_requires_gradient_sync(False)``,
which would keep whole unsharded gradients between rounds); tests/train/test_fsdp2_accumulate.py checks it.
"""
import os, torch, torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import FSDPModule, fully_shard
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
def fix():  # register the sharded parameters before toggling requires_grad
    if os.environ.get("FIX"):
        for m in list(net.modules()) + list(D.modules()):
            if isinstance(m, FSDPModule): m.reshard()
def turn_d(inp):
    fix()
    for p in net.parameters(): p.requires_grad_(False)
    for p in D.parameters(): p.requires_grad_(True)
    D(net(inp).detach()).mean().backward()
    for p in D.parameters(): p.grad = None
if os.environ.get("DTURN"): turn_d(mine)
fix()
for p in D.parameters(): p.requires_grad_(False)
for p in net.parameters(): p.requires_grad_(True)
def loss(inp):
    y = net(inp)
    return y.pow(2).mean() + nn.functional.softplus(-D(y)).mean()
if mode == "full":
    loss(mine).backward()
else:
    for j in range(2):
        net.set_requires_gradient_sync(j == 1 or bool(os.environ.get("SYNC")))
        (loss(mine[j:j+1]) / 2).backward()
g = torch.cat([p.grad.full_tensor().flatten() for p in net.parameters()])
if r == 0: print(mode, os.environ.get("DTURN"), g.norm().item())
dist.destroy_process_group()
