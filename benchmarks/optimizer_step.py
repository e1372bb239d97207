"""Time one AdamW step per PyTorch implementation on a base's network, and how far their updates drift apart.

    python benchmarks/optimizer_step.py                  # the toy student on the CPU
    python benchmarks/optimizer_step.py --base sdxl --random-weights --device cuda --dtype bf16

For each implementation (``for-loop``, ``foreach``, ``fused``; the engine uses ``fused`` where every parameter
allows it: ``addbench.train.loop.adamw``) it takes ``--steps`` AdamW steps from the same weights with the same
random gradients (drawn before each step's timing, so only the optimizer is timed) and prints the median step
time and the largest parameter difference from ``for-loop`` after them.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

IMPLS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def network(base: str, random_weights: bool, device: str, dtype: str | None) -> torch.nn.Module:
    from addbench.registry import BASES

    if random_weights:
        from addbench.eval.latency import random_weight_base

        return random_weight_base(base, device=device, dtype=dtype).network
    return BASES.get(base)(device=device, dtype=dtype).network


def time_impl(weights: list[torch.Tensor], steps: int, kw: dict, lr: float) -> tuple[float, list]:
    params = [w.clone().requires_grad_() for w in weights]
    opt = torch.optim.AdamW(params, lr=lr, **kw)
    cuda = params[0].is_cuda
    times = []
    for step in range(steps):
        gen = torch.Generator(device=params[0].device).manual_seed(step)  # the same gradients for every impl
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype)
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times[1:] if len(times) > 1 else times), [p.detach() for p in params]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="toy")
    ap.add_argument("--random-weights", action="store_true", help="full-size architecture (sdxl), random weights")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, help="fp32 (default) or bf16 parameters")
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps per implementation (first one untimed)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: PyTorch's)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    net = network(a.base, a.random_weights, a.device, a.dtype)
    weights = [p.detach().clone() for p in net.parameters()]
    del net
    rows, ref = [], None
    for name, kw in IMPLS.items():
        ms, final = time_impl(weights, a.steps, kw, a.lr)
        if ref is None:
            ref = final
        drift = max(float((f.float() - r.float()).abs().max()) for f, r in zip(final, ref))
        rows.append({"impl": name, "step_ms": round(ms, 2), "max_abs_diff_vs_for_loop": drift})
        print(f"{name:9s} {ms:9.2f} ms/step   max |param - for-loop| after {a.steps} steps: {drift:.3g}", flush=True)
    result = {"base": a.base, "random_weights": a.random_weights, "device": a.device, "dtype": str(weights[0].dtype),
              "tensors": len(weights), "params_m": round(sum(w.numel() for w in weights) / 1e6, 2),
              "threads": torch.get_num_threads(), "steps": a.steps, "torch": torch.__version__, "rows": rows}
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    if a.out:
        from addbench.eval.records import atomic_write_json

        atomic_write_json(a.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
