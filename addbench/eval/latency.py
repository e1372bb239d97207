"""Generation latency, per part and end to end, in the eager and the fast mode (``addbench latency``).

Parts: ``text_encode`` (tokenize + encoders), ``network_eval_<i>`` (step i: one network call, CFG batched,
+ the ODE update), ``vae_decode`` (decode + uint8), ``end_to_end`` (noise, tokenize, encode, NFE steps,
decode, uint8 to the CPU: what ``Generator.generate`` does). Each is warmed up, then timed ``runs`` times
with CUDA events (host clock on the CPU); we report median, p90, min. ``eager`` is the plain diffusers
modules (:func:`addbench.bases.sampling.sample`); ``fast`` is :mod:`addbench.bases.fast`. Both run in
one process on the same weights, eager first (the fast mode changes the modules in place), and the
fast output is compared with the eager one.
"""
from __future__ import annotations

import json
import statistics
import tempfile
import time
from importlib import resources
from pathlib import Path

import torch

from addbench.bases.components import build_component as _build  # noqa: F401  (the name tests and callers use)
from addbench.bases.interface import Sampler
from addbench.errors import AddbenchError
from addbench.eval.records import LATENCY_FORMAT

PROMPT = "a photograph of an astronaut riding a horse on the moon"
SDXL_SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                  "beta_schedule": "scaled_linear", "prediction_type": "epsilon"}


# ---- random-weight full-size bases ------------------------------------------------------------------
def random_weight_base(name: str = "sdxl", device=None, dtype=None, seed: int = 0):
    """The full-size ``name`` architecture (``architectures.json``) with random weights, built on ``device``."""
    from addbench.bases.components import resolve_device
    from addbench.bases.tokenizer import build_clip_tokenizer
    from addbench.registry import BASES

    arch = json.loads(resources.files("addbench.bases").joinpath("architectures.json").read_text())
    if name != "sdxl":
        raise AddbenchError(f"--random-weights is available for sdxl only (got {name!r}); pass --model for others")
    spec = arch[name]
    device = resolve_device(device)
    torch.manual_seed(seed)
    with torch.device(device):
        comps = {k: _build(spec[k]) for k in ("unet", "vae", "text_encoder", "text_encoder_2")}
    with tempfile.TemporaryDirectory(prefix="addbench-tok-") as tmp:  # the tokenizers live in memory
        comps["tokenizer"] = build_clip_tokenizer(Path(tmp) / "tokenizer")
        comps["tokenizer_2"] = build_clip_tokenizer(Path(tmp) / "tokenizer_2", pad_token="!")
    comps["scheduler_config"] = dict(SDXL_SCHEDULER)
    comps["model_index"] = {"force_zeros_for_empty_prompt": True}
    return BASES.get(name)(device=device, dtype=dtype, components=comps)


# ---- timing -----------------------------------------------------------------------------------------
def time_ms(fn, runs: int, warmup: int, cuda: bool) -> dict:
    """median / p90 / min of ``fn()`` in ms (CUDA events on a GPU: they include host gaps while it idles)."""
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return summarize(times)


def summarize(times: list[float]) -> dict:
    s = sorted(times)
    p90 = s[min(len(s) - 1, max(0, round(0.9 * (len(s) - 1))))]
    return {"median_ms": statistics.median(s), "p90_ms": p90, "min_ms": s[0], "runs": len(s)}


def _sampler(base, nfe: int, res: int, guidance: float) -> Sampler:
    steps = nfe // 2 if guidance != 1.0 else nfe
    if steps < 1 or (guidance != 1.0 and nfe % 2):
        raise AddbenchError(f"NFE {nfe} with CFG (guidance {guidance}) needs an even NFE >= 2")
    return Sampler(steps=steps, guidance=guidance, solver="ddim", spacing="trailing", height=res, width=res)


def eager_parts(base, sampler: Sampler, prompts, seeds, runs: int, warmup: int) -> dict:
    from addbench.bases.sampling import sample, timesteps_for, to_uint8

    cuda = base.device.type == "cuda"
    with torch.no_grad():
        cond = base.encode_prompts(prompts)
        x = torch.randn((len(prompts), *base.latent_shape(sampler.height, sampler.width)), device=base.device)
        parts = {"text_encode": time_ms(lambda: base.encode_prompts(prompts), runs, warmup, cuda)}
        for i, t in enumerate(timesteps_for(base, sampler)):
            parts[f"network_eval_{i}"] = time_ms(lambda t=t: base.x0(x, t, cond, guidance=sampler.guidance), runs, warmup, cuda)
        parts["vae_decode"] = time_ms(lambda: to_uint8(base.decode(x)), runs, warmup, cuda)
        parts["end_to_end"] = time_ms(lambda: sample(base, prompts, seeds, sampler, micro_batch=len(prompts)),
                                      runs, warmup, cuda)
    return parts


def fast_parts(gen, sampler: Sampler, prompts, seeds, runs: int, warmup: int) -> tuple[dict, dict]:
    """Build the fast loop (compile + warm-up + graph capture: ``build_s``, with the compile caches' hits and
    misses during it), then time its parts."""
    from addbench.bases.compile_cache import cache_counters, counters_since

    cuda = gen.base.device.type == "cuda"
    before = cache_counters()
    t0 = time.perf_counter()
    loop = gen.loop(sampler)
    build = {"build_s": time.perf_counter() - t0, "warmup_s": loop.warmup_s, "capture_s": loop.capture_s,
             "cuda_graph": loop.graph is not None, "graph_scope": loop.graph_scope, "graph_error": loop.graph_error,
             "compile_cache_events": counters_since(before)}
    loop.load(prompts, seeds)
    parts = {k: time_ms(fn, runs, warmup, cuda) for k, fn in loop.part_runners().items()}
    parts["end_to_end"] = time_ms(lambda: gen.generate(prompts, seeds, sampler), runs, warmup, cuda)
    return parts, build


def profile_parts(loop, top: int = 15) -> dict:
    """Kernels of each part of a built loop, launched one by one (the graph replays the same kernels):
    part -> :func:`addbench.eval.profiling.kernel_table`."""
    from addbench.eval.profiling import profile_kernels

    cuda = loop.base.device.type == "cuda"
    return {k: profile_kernels(fn, top, cuda=cuda) for k, fn in loop.part_runners(graphs=False).items()}


def _network_summary(parts: dict) -> None:
    evals = [v["median_ms"] for k, v in parts.items() if k.startswith("network_eval_")]
    parts["network_eval_median_ms"] = statistics.median(evals)


def environment(base) -> dict:
    import diffusers

    dev = base.device
    return {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "torch": torch.__version__, "diffusers": diffusers.__version__, "dtype": str(base.dtype).replace("torch.", "")}


def compare(eager: tuple[torch.Tensor, torch.Tensor], fast: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """Agreement of the two modes on (final x0 latents, uint8 images) of the same prompts and seeds."""
    (le, ie), (lf, i_f) = eager, fast
    le, lf = le.float().cpu(), lf.float().cpu()
    d = (ie.int() - i_f.int()).abs()
    return {"latents_rel_l2": float((lf - le).norm() / le.norm().clamp_min(1e-12)),
            "latents_max_abs": float((lf - le).abs().max()), "latents_finite": bool(torch.isfinite(lf).all()),
            "max_abs_uint8": int(d.max()), "mean_abs_uint8": float(d.float().mean()),
            "frac_pixels_over_2": float((d > 2).float().mean())}


def eager_reference(base, sampler: Sampler, prompts, seeds) -> tuple[torch.Tensor, torch.Tensor]:
    """(final x0 latents, uint8 images) of the eager path."""
    from addbench.bases.sampling import denoise, initial_noise, sample

    noise = initial_noise(seeds, base.latent_shape(sampler.height, sampler.width)).to(base.device)
    with torch.no_grad():
        latents = denoise(base, noise, base.encode_prompts(prompts), sampler)
    return latents.cpu(), sample(base, prompts, seeds, sampler, micro_batch=len(prompts))


def measure_latency(model=None, base=None, random_weights: bool = False, res: int = 512, nfe=(1,), batch: int = 1,
                    runs: int = 20, compile=False, device=None, dtype=None, modes=("eager", "fast"),
                    guidance: float = 1.0, warmup: int = 3, fast_options=None, profile: bool = False,
                    on_record=None, compile_cache=None) -> dict:
    """Latency records, one per (mode, variant, NFE); see the module docstring. ``compile``: False, True
    (= "default") or a torch.compile mode, for the fast mode; ``fast_options``: a ``FastOptions`` or a list of
    them (variants timed in order on the same modules); ``profile``: each fast record of the smallest NFE also
    gets ``profile`` (:func:`profile_parts`); ``on_record(result)`` is called after each record is added (write
    it out: a run killed in a later variant's compile keeps what it measured); ``compile_cache``: the folder of
    torch.compile's on-disk caches for compiled variants (None: ``$ADDBENCH_CACHE/compile``; False: torch's own
    default, a per-user temp folder), so a second process reuses the first one's compile
    (:mod:`addbench.bases.compile_cache`). Returns a JSON-able dict with the environment; ``complete`` is False
    until every record is in."""
    from addbench.bases.fast import FastGenerator, FastOptions
    from addbench.bases.loading import load_base, load_generator
    from addbench.bases.sampling import timesteps_for

    if (model is None) == (base is None):
        raise AddbenchError("measure_latency needs exactly one of model or base")
    if runs < 1:
        raise AddbenchError("runs must be >= 1")
    mode_c = "default" if compile is True else (compile or None)
    variants = fast_options if isinstance(fast_options, (list, tuple)) else [fast_options or FastOptions(compile=mode_c)]
    if any(a.compile and not b.compile for a, b in zip(variants, variants[1:])):
        raise AddbenchError("fast variants share the modules and compile cannot be undone: list compiled ones last")
    cache_dir, notes = None, []
    if compile_cache is not False and any(v.compile for v in variants) and "fast" in modes:
        from addbench.bases.compile_cache import use_compile_cache

        cache_dir = str(use_compile_cache(compile_cache))
        from addbench.bases.compile_cache import freezing_note

        notes = [n for n in (freezing_note(v.inductor) for v in variants) if n]
    if random_weights:
        b = random_weight_base(base or model, device=device, dtype=dtype)
    else:
        b = load_generator(model, device=device, dtype=dtype).base if model else load_base(base, device=device, dtype=dtype)
    prompts, seeds = [PROMPT] * batch, list(range(batch))
    samplers = {n: _sampler(b, n, res, guidance) for n in nfe}
    result = {"format": LATENCY_FORMAT, **environment(b), "model": str(model or base), "random_weights": random_weights, "res": res,
              "batch": batch, "runs": runs, "warmup": warmup, "prompt": PROMPT, "compile_cache": cache_dir, "compile_cache_notes": notes[:1],
              "records": [], "complete": False}

    def add(rec: dict) -> None:
        result["records"].append(rec)
        if on_record is not None:
            on_record(result)

    reference = {}
    if "eager" in modes:
        for n, s in samplers.items():
            parts = eager_parts(b, s, prompts, seeds, runs, warmup)
            _network_summary(parts)
            reference[n] = eager_reference(b, s, prompts, seeds)
            add(_record("eager", n, s, timesteps_for(b, s), parts, {
                "variant": "eager", "compile": None, "cuda_graph": False, "channels_last": False,
                "attention": "diffusers default"}))
    if "fast" in modes:
        for opts in variants:
            gen = FastGenerator(b, samplers[nfe[0]], micro_batch=batch, options=opts)
            for n, s in samplers.items():
                parts, build = fast_parts(gen, s, prompts, seeds, runs, warmup)
                _network_summary(parts)
                rec = _record("fast", n, s, timesteps_for(b, s), parts,
                              {"variant": opts.label, **opts.describe(), **gen.prepared, **build})
                if profile and n == min(nfe):
                    rec["profile"] = profile_parts(gen.loop(s))
                if n in reference:
                    images = gen.generate(prompts, seeds, s)
                    rec["vs_eager"] = compare(reference[n], (gen.loop(s).latents, images))
                    rec["speedup_end_to_end"] = _e2e(result, "eager", n) / parts["end_to_end"]["median_ms"]
                add(rec)
            del gen
            if b.device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
    result["complete"] = True
    return result


def _e2e(result: dict, mode: str, nfe: int) -> float:
    return next(r["parts"]["end_to_end"]["median_ms"] for r in result["records"] if r["mode"] == mode and r["nfe"] == nfe)


def _record(mode: str, nfe: int, s: Sampler, ts: list[float], parts: dict, how: dict) -> dict:
    return {"mode": mode, "nfe": nfe, "steps": s.steps, "timesteps": ts, "cfg": s.guidance, "solver": s.solver,
            "res": s.height, **how, "parts": parts}
