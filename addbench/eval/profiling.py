"""Where device time goes: the kernels of one call under ``torch.profiler`` (the benchmarks' ``--profile``).

On a GPU the rows are CUDA kernels (and copies), ranked by their own device time; on the CPU they are the
profiler's CPU operators, so the same code runs in tests. ``busy_ms`` is the sum of the rows' own time: set
against the part's measured time, the difference is idle time between kernels (launch gaps, host work).
"""
from __future__ import annotations

import re

import torch

# (kind, pattern) in order, first match wins. CUDA kernel names (cuDNN / cuBLAS / Triton) and CPU operator names.
# Attention first (cuDNN's SDPA kernel names contain "fprop"); inductor's fused Triton kernels are named after the
# ops they fuse ("..._convolution_native_group_norm_silu"): they are norm or elementwise work, never a conv.
KERNEL_KINDS = (
    ("attention", r"sdpa|flash|fmha|attention"),
    ("norm", r"^triton_.*norm"),
    ("elementwise", r"^triton_"),
    ("conv", r"fprop|dgrad|wgrad|implicit_gemm|conv"),
    ("layout", r"nchwtonhwc|nhwctonchw|transpose|permute"),
    ("matmul", r"gemm|nvjet|cutlass|splitk|cublas|aten::(add)?mm|aten::bmm|aten::linear|aten::matmul"),
    ("norm", r"norm"),
    ("copy", r"memcpy|memset|copy|aten::cat"),
)


def kernel_kind(name: str) -> str:
    """What a kernel (or CPU operator) does: attention, conv, matmul, norm, layout, copy or elementwise."""
    low = name.lower()
    return next((kind for kind, pat in KERNEL_KINDS if re.search(pat, low)), "elementwise")


def kernel_table(prof, top: int = 25, cuda: bool = True) -> dict:
    """{"kernels": launches, "distinct": names, "busy_ms": total own time, "by_kind": {kind: own ms} (all rows,
    :func:`kernel_kind`), "top": [{name, kind, calls, self_ms, share}]}."""
    own = (lambda e: e.self_device_time_total) if cuda else (lambda e: e.self_cpu_time_total)
    rows = [e for e in prof.key_averages() if own(e) > 0]
    rows.sort(key=own, reverse=True)
    total = sum(own(e) for e in rows)
    kinds = [kernel_kind(e.key) for e in rows]
    by_kind: dict[str, float] = {}
    for e, kind in zip(rows, kinds):
        by_kind[kind] = by_kind.get(kind, 0.0) + own(e) / 1e3
    return {"kernels": sum(e.count for e in rows), "distinct": len(rows), "busy_ms": total / 1e3,
            "by_kind": dict(sorted(by_kind.items(), key=lambda kv: -kv[1])),
            "top": [{"name": e.key[:120], "kind": kind, "calls": e.count, "self_ms": own(e) / 1e3,
                     "share": own(e) / (total or 1.0)} for e, kind in zip(rows[:top], kinds)]}


def profile_kernels(fn, top: int = 25, warmup: int = 1, cuda: bool | None = None) -> dict:
    """``fn()`` once after ``warmup`` calls, under the profiler: :func:`kernel_table` of that call."""
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.cuda.is_available() if cuda is None else cuda
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
        fn()
        if cuda:
            torch.cuda.synchronize()
    return kernel_table(prof, top, cuda)
