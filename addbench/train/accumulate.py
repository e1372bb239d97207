"""Gradient accumulation (edm2's ``batch_gpu`` / ``num_accumulation_rounds``): one turn call of a rank's batch as
``rounds`` micro-batches whose gradients add up to the whole batch's.

``micro_batch`` (per rank, 0 = the whole rank batch) sets the rounds: ``batch / world_size / micro_batch``, so the
effective batch stays ``batch`` whatever the number of GPUs. A plug-in's loss is a mean over its samples, so each
micro-batch's loss is scaled by ``1 / rounds`` before ``backward``; the randomness of a turn call is per sample or
shared by the whole batch (``batch["random"]``, :mod:`addbench.rng`), so k micro-batches of m draw exactly what one
batch of k·m draws, and the summed gradient equals the big batch's to float rounding
(``tests/train/test_accumulate.py`` checks it for every distiller's turns; ``tests/train/test_fsdp2_accumulate.py``
with FSDP2-sharded networks on 2 processes, docs/batching.md).
"""
from __future__ import annotations

import torch

from addbench.errors import AddbenchError
from addbench.rng import BatchRandom


def accumulation_rounds(cfg: dict, world_size: int) -> int:
    """Micro-batches per turn call on each rank, from ``batch``, ``micro_batch`` and the world size."""
    batch, micro = int(cfg["batch"]), int(cfg.get("micro_batch") or 0)
    local = batch // max(1, world_size)
    if micro <= 0 or micro >= local:
        return 1
    if local % micro:
        raise AddbenchError(f"micro_batch={micro} does not divide the per-process batch {local} (batch={batch} over "
                            f"{world_size} process(es)); choose a divisor of {local}")
    return local // micro


def micro_batches(batch: dict, rounds: int) -> list[dict]:
    """``batch`` cut into ``rounds`` equal micro-batches along its samples: every tensor or list with one entry per
    sample is sliced, ``random`` restricted to the rows, anything else shared. Each gets ``micro = (j, rounds)``."""
    n = len(batch["sample_seeds"])
    if rounds == 1:
        return [{**batch, "micro": (0, 1)}]
    if n % rounds:
        raise AddbenchError(f"a batch of {n} samples does not split into {rounds} micro-batches")
    m = n // rounds
    out = []
    for j in range(rounds):
        lo, hi = j * m, (j + 1) * m
        part = {}
        for k, v in batch.items():
            if isinstance(v, BatchRandom):
                part[k] = v.rows(lo, hi)
            elif isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == n:
                part[k] = v[lo:hi]
            elif isinstance(v, (list, tuple)) and len(v) == n:
                part[k] = v[lo:hi]
            else:
                part[k] = v
        part["micro"] = (j, rounds)
        out.append(part)
    return out


def mean_logs(parts: list[dict]) -> dict:
    """The logs of a turn call's micro-batches, averaged (floats or 0-dim tensors); keys of one part only kept."""
    if len(parts) == 1:
        return parts[0]
    out = {}
    for k in dict.fromkeys(k for p in parts for k in p):
        vals = [p[k] for p in parts if k in p]
        if all(isinstance(v, torch.Tensor) for v in vals):
            out[k] = torch.stack([v.detach().float().reshape(()) for v in vals]).mean()
        else:
            out[k] = sum(float(v) for v in vals) / len(vals)
    return out
