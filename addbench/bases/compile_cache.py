"""A compile you pay once: torch.compile's on-disk caches in one folder that later processes reuse.

``use_compile_cache(folder)`` points inductor's cache (compiled FX graphs, autotuning and coordinate-descent
results, generated kernels) and Triton's kernel cache at ``folder`` and turns on the FX-graph cache and the
AOTAutograd cache. A second process on the same model, shapes, GPU, torch version and inductor settings then
loads the compiled graphs instead of lowering, autotuning and compiling them again; what is left is Dynamo's
trace of the Python code and the CUDA-graph capture (and, with ``freezing``, AOTAutograd's trace: torch does
not cache frozen graphs at that level). The folder is safe to delete (the next process compiles again).

Default folder: ``$ADDBENCH_CACHE/compile`` (``~/.cache/addbench/compile``). Set it before the first compile:
the environment variables are read when inductor first needs them.

``cache_counters()`` reads torch's hit / miss counters, so a caller can say whether a build hit the cache.

Measured (benchmarks/RESULTS.md, "A compile you pay once"): the tiny SDXL fast path's second build took 26 s
against 222 s for the first, every graph a hit; with inductor ``freezing`` torch bypasses its AOTAutograd cache
(and on the CPU its FX-graph cache too), so :func:`freezing_note` says so in the latency record.
"""
from __future__ import annotations

import os
from pathlib import Path


def default_compile_cache() -> Path:
    from addbench.cache import addbench_cache

    return addbench_cache() / "compile"


def use_compile_cache(folder: str | os.PathLike | None = None) -> Path:
    """Point torch.compile's on-disk caches at ``folder`` (default :func:`default_compile_cache`); returns it."""
    import torch._functorch.config as aot_config
    import torch._inductor.config as inductor_config

    root = Path(folder).expanduser().resolve() if folder else default_compile_cache()
    (root / "triton").mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(root)
    os.environ["TRITON_CACHE_DIR"] = str(root / "triton")
    inductor_config.fx_graph_cache = True
    inductor_config.autotune_local_cache = True
    aot_config.enable_autograd_cache = True
    return root


_COUNTERS = {"fx_graph_hits": ("inductor", "fxgraph_cache_hit"), "fx_graph_misses": ("inductor", "fxgraph_cache_miss"),
             "fx_graph_bypass": ("inductor", "fxgraph_cache_bypass"),
             "aot_autograd_hits": ("aot_autograd", "autograd_cache_hit"),
             "aot_autograd_misses": ("aot_autograd", "autograd_cache_miss"),
             "aot_autograd_bypass": ("aot_autograd", "autograd_cache_bypass")}


def cache_counters() -> dict[str, int]:
    """torch's compile-cache counters of this process so far (0 where torch has not counted)."""
    from torch._dynamo.utils import counters

    return {ours: int(counters[group][key]) for ours, (group, key) in _COUNTERS.items()}


def counters_since(before: dict[str, int]) -> dict[str, int]:
    now = cache_counters()
    return {k: now[k] - before.get(k, 0) for k in now}


def freezing_note(inductor: tuple) -> str | None:
    """Why a second process will not reuse all of the first one's compile, when inductor settings say so."""
    if any(k == "freezing" and v for k, v in inductor):
        return ("inductor freezing=true: torch does not cache frozen graphs in its AOTAutograd cache (nor, on the "
                "CPU, in its FX-graph cache), so a second process traces and partly recompiles them")
    return None
