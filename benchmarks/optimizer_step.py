"""Time one AdamW step per PyTorch implementation on a base's network, and how far each lands from fp32 training.

    python benchmarks/optimizer_step.py                          # the toy student, fp32, on the CPU
    python benchmarks/optimizer_step.py --dtype bf16 --lr 1e-5   # bf16 weights: plain AdamW vs the engine's masters
    python benchmarks/optimizer_step.py --base sdxl --random-weights --device cuda --dtype fp32

For each implementation (``for-loop``, ``foreach``, ``fused``; with non-fp32 weights also ``engine``, what the
trainer builds: ``addbench.train.optim.optimizer``, fused AdamW over fp32 master weights, and ``engine-host``, the
same with the masters in host memory: on a GPU network the step then moves the gradients out and the weights back;
on a CPU network it is ``engine`` again) it takes ``--steps``
AdamW steps from the same weights with the same random gradients (drawn before each step's timing, so only the
optimizer is timed) and prints the median step time, the largest difference of the weights it carries (``engine``:
the fp32 masters, which the network holds rounded) from the per-tensor loop run in fp32 from the same start, and
the fraction of the network's weight entries that moved at all.
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


ENGINE = {"engine": "on", "engine-host": "cpu"}  # the trainer's optimizer, masters beside the weights / in host memory


def make_optimizer(impl: str, params: list, lr: float):
    if impl in ENGINE:  # what the trainer builds: fused AdamW, over fp32 masters for non-fp32 weights
        from addbench.train.optim import optimizer

        return optimizer(params, {"lr": lr}, master_weights=ENGINE[impl])
    return torch.optim.AdamW(params, lr=lr, **IMPLS[impl])


def network(base: str, random_weights: bool, device: str, dtype: str | None) -> torch.nn.Module:
    from addbench.registry import BASES

    if random_weights:
        from addbench.eval.latency import random_weight_base

        return random_weight_base(base, device=device, dtype=dtype).network
    return BASES.get(base)(device=device, dtype=dtype).network


def run_impl(impl: str, weights: list[torch.Tensor], steps: int, lr: float,
             grad_dtype: torch.dtype | None = None) -> tuple[float, list, list]:
    """Median ms of ``steps`` AdamW steps (the first untimed), the network's final weights and the ones the
    optimizer carries (``engine``: the fp32 masters; else the same); gradient ``k`` is the same for every
    implementation (drawn in fp32 from seed ``k``, rounded to ``grad_dtype``, given in the weights' dtype)."""
    params = [w.clone().requires_grad_() for w in weights]
    opt = make_optimizer(impl, params, lr)
    cuda = params[0].is_cuda
    times = []
    for step in range(steps):
        gen = torch.Generator(device=params[0].device).manual_seed(step)
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen, device=p.device).to(grad_dtype or p.dtype).to(p.dtype)
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    carried = getattr(opt, "masters", params)
    return (statistics.median(times[1:] if len(times) > 1 else times), [p.detach() for p in params],
            [m.detach() for m in carried])


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
    # reference: the per-tensor loop in fp32 from the same start and gradients (bf16 weights: fp32 training)
    _, ref, _ = run_impl("for-loop", [w.float() for w in weights], a.steps, a.lr, grad_dtype=weights[0].dtype)
    impls = [*IMPLS] + ([*ENGINE] if weights[0].dtype != torch.float32 else [])
    rows = []
    result = {"base": a.base, "random_weights": a.random_weights, "device": a.device, "dtype": str(weights[0].dtype),
              "lr": a.lr,
              "tensors": len(weights), "params_m": round(sum(w.numel() for w in weights) / 1e6, 2),
              "threads": torch.get_num_threads(), "steps": a.steps, "torch": torch.__version__, "rows": rows}
    for name in impls:
        ms, final, carried = run_impl(name, weights, a.steps, a.lr)
        # engine-host carries its masters in host memory: compare on the reference's device
        drift = max(float((c.to(r.device).float() - r).abs().max()) for c, r in zip(carried, ref))
        moved = sum(int((f != w).sum()) for f, w in zip(final, weights)) / sum(w.numel() for w in weights)
        rows.append({"impl": name, "step_ms": round(ms, 2), "max_abs_diff_vs_fp32_loop": drift,
                     "moved_fraction": round(moved, 4)})
        print(f"{name:11s} {ms:9.2f} ms/step   after {a.steps} steps: max |param - fp32 loop| {drift:.3g}, "
              f"entries moved {moved:.1%}", flush=True)
        write(a.out, result)  # after every row: a killed run keeps the rows it finished
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    write(a.out, result)
    return 0


def write(out: Path | None, result: dict) -> None:
    if out:
        from addbench.eval.records import atomic_write_json

        atomic_write_json(out, result)


if __name__ == "__main__":
    sys.exit(main())
