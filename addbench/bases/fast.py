"""Fast generation for the UNet bases (SD1.5 / SD2.1 / SDXL) with the eager path's numerics.

What makes it fast, each switchable in :class:`FastOptions`:

- **static shapes**: one fixed micro-batch (padded, like :func:`addbench.bases.sampling.sample`), token ids
  and noise copied into fixed device buffers; timesteps and CFG scale are baked in per sampler;
- **channels-last** UNet and VAE (cuDNN's fast bf16 convolution layout), **SDPA** attention processors,
  optionally fused QKV projections;
- **one CUDA graph** for the whole static loop: batched text encoding -> NFE network evals (+ CFG) ->
  VAE decode -> uint8, replayed per micro-batch (no per-kernel launch cost); on CPU the same loop runs
  eagerly (the graph is a CUDA-only wrapper);
- optionally ``torch.compile`` (inductor, without its own CUDA graphs) of the UNet and the VAE decoder,
  captured inside our graph;
- optionally the two SDXL text encoders on two CUDA streams (they are independent; the fork and join are
  captured in the graph), and cuDNN's benchmark mode (time every convolution algorithm once per shape at
  warm-up instead of taking its heuristic pick).

The loop calls the base's own ``x0`` / ``schedule`` / ``decode``, so its numerics are the eager path's
(:func:`addbench.bases.sampling.sample`); only kernel choices differ (bf16 rounding). ``FastGenerator`` is a
:class:`~addbench.bases.interface.Generator`: same (prompt, seed) -> same image whatever the batch.
It changes the base's modules in place (memory format, attention processors, compile).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
from dataclasses import dataclass

import torch

from addbench.bases.interface import Generator, Sampler
from addbench.bases.sampling import initial_noise, timesteps_for, to_uint8
from addbench.errors import AddbenchError

COMPILE_MODES = ("default", "max-autotune-no-cudagraphs", "max-autotune")


@dataclass(frozen=True)
class FastOptions:
    cuda_graph: bool = True  # capture the whole loop (CUDA only; CPU runs the same loop eagerly)
    compile: str | None = None  # torch.compile mode for UNet + VAE decoder (None: no compile)
    compile_text: bool = False  # also compile the text encoders
    channels_last: bool = True
    fuse_qkv: bool = False  # diffusers' fused QKV projections (UNet + VAE)
    # extra torch._inductor.config settings applied before compiling, e.g. (("coordinate_descent_tuning", True),
    # ("freezing", True)); process-wide, they stay set (compilation is lazy)
    inductor: tuple = ()
    text_streams: bool = False  # SDXL: the first text encoder runs on a side CUDA stream beside the second
    cudnn_benchmark: bool = False  # torch.backends.cudnn.benchmark = True (process-wide; stays set)

    def describe(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def label(self) -> str:
        """e.g. ``graph+compile(default)+channels_last``."""
        parts = ["graph" if self.cuda_graph else "no-graph"]
        extra = "".join(f",{k}={v}" for k, v in self.inductor)
        parts += [f"compile({self.compile}{',text' if self.compile_text else ''}{extra})"] if self.compile else []
        parts += ["channels_last"] if self.channels_last else []
        parts += ["fused_qkv"] if self.fuse_qkv else []
        parts += ["text_streams"] if self.text_streams else []
        parts += ["cudnn_benchmark"] if self.cudnn_benchmark else []
        return "+".join(parts)


# the variant grammar of ``addbench latency --fast`` and benchmarks/latency_sdxl.py: tokens joined by '+'
VARIANT_TOKENS = {"graph": "CUDA graph + channels-last + SDPA (the base of every variant)",
                  "nograph": "the same without the CUDA graph", "compile": "torch.compile of the UNet and VAE decoder",
                  "text": "with compile: the text encoders too", "fused": "fused QKV projections",
                  "streams": "SDXL's two text encoders on two CUDA streams",
                  "bench": "cuDNN benchmark mode (process-wide)"}


def parse_inductor(items) -> tuple:
    """``["KEY=VALUE", ...]`` -> ``((key, value), ...)``, values parsed as ``--set`` values are
    (:func:`addbench.config.parse_assignments`: true/false, numbers, else strings)."""
    from addbench.config import parse_assignments

    return tuple(parse_assignments(list(items or ()), "--inductor").items())


def parse_variant(spec: str, compile_mode: str = "default", inductor: tuple = ()) -> FastOptions:
    """``"graph+compile+text+fused+streams"`` -> :class:`FastOptions` (``inductor`` only for compiled variants)."""
    bits = set(spec.split("+"))
    if not spec or not bits <= set(VARIANT_TOKENS):
        raise AddbenchError(f"unknown fast variant {spec!r}: combine {', '.join(VARIANT_TOKENS)} with '+', "
                            "e.g. graph+compile+text+fused+streams")
    compiled = "compile" in bits
    return FastOptions(cuda_graph="nograph" not in bits, compile=compile_mode if compiled else None,
                       compile_text="text" in bits and compiled, fuse_qkv="fused" in bits,
                       inductor=tuple(inductor) if compiled else (), text_streams="streams" in bits,
                       cudnn_benchmark="bench" in bits)


def _check_base(base) -> None:
    if not hasattr(base, "text_encoder") or getattr(base, "network_key", "") != "unet":
        raise AddbenchError(f"the fast path supports the UNet bases (sd15, sd21, sdxl); got {getattr(base, 'name', base)!r}")


def prepare_modules(base, opts: FastOptions) -> dict:
    """Put the base's modules in fast form in place; returns what was done (and compile seconds = 0: lazy)."""
    _check_base(base)
    from diffusers.models.attention_processor import AttnProcessor2_0

    done = {}
    mods = [m for m in (base.network, base.vae) if m is not None]
    for m in mods:
        if opts.fuse_qkv and hasattr(m, "fuse_qkv_projections"):
            m.fuse_qkv_projections()  # sets FusedAttnProcessor2_0 (SDPA)
        elif hasattr(m, "set_attn_processor"):
            m.set_attn_processor(AttnProcessor2_0())
        if opts.channels_last:
            m.to(memory_format=torch.channels_last)
    done["attention"] = "sdpa+fused_qkv" if opts.fuse_qkv else "sdpa"
    if opts.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    if opts.compile:
        if opts.compile not in COMPILE_MODES:
            raise AddbenchError(f"unknown compile mode {opts.compile!r}; use one of {', '.join(COMPILE_MODES)}")
        import torch._inductor.config as inductor_config

        inductor_config.conv_1x1_as_mm = True
        for key, value in opts.inductor:
            if not hasattr(inductor_config, key):
                raise AddbenchError(f"unknown torch._inductor.config setting {key!r} (torch {torch.__version__}); "
                                    "see torch/_inductor/config.py for the names")
            setattr(inductor_config, key, value)
        base.network.compile(mode=opts.compile)
        if base.vae is not None:
            base.vae.decoder.compile(mode=opts.compile)
        if opts.compile_text:
            for enc in _encoders(base):
                enc.compile(mode=opts.compile)
    return done


# ---- the static loop --------------------------------------------------------------------------------
def _encoders(base) -> list:
    return [base.text_encoder] + ([base.text_encoder_2] if getattr(base, "text_encoder_2", None) is not None else [])


def _tokenizers(base) -> list:
    return [base.tokenizer] + ([base.tokenizer_2] if getattr(base, "tokenizer_2", None) is not None else [])


def tokenize(base, prompts: list[str]) -> list[torch.Tensor]:
    """CPU token ids (N, 77) per text encoder, as the base's ``encode_prompts`` makes them."""
    return [tok(list(prompts), padding="max_length", max_length=tok.model_max_length, truncation=True,
                return_tensors="pt").input_ids for tok in _tokenizers(base)]


def encode_ids(base, ids: list[torch.Tensor], streams: bool = False):
    """The base's ``encode_prompts`` from token ids (no tokenizer, no host work): a ``Cond``.

    ``streams`` (CUDA, two encoders): the first encoder runs on a side stream beside the second; the side
    stream waits for the current one before it starts and the current one waits for it before the concat,
    so the order of every read and write is the sequential one's (and a CUDA graph captures both branches).
    """
    from addbench.bases.cond import Cond

    encs = _encoders(base)
    if len(encs) == 1:  # SD1.5 / SD2.1: last hidden state (with the pad mask where the encoder asks for one)
        mask, pad = None, base.tokenizer.pad_token_id
        if getattr(encs[0].config, "use_attention_mask", False) and pad is not None:
            mask = (ids[0] != pad).long()
        return Cond(encs[0](ids[0], attention_mask=mask)[0])
    # SDXL: penultimate hidden states of both, concatenated; pooled from the second
    if streams and ids[0].is_cuda:
        main, side = torch.cuda.current_stream(ids[0].device), _side_stream(ids[0].device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            first = encs[0](ids[0], output_hidden_states=True).hidden_states[-2]
        out = encs[1](ids[1], output_hidden_states=True)
        main.wait_stream(side)
        return Cond(torch.cat([first, out.hidden_states[-2]], dim=-1), out[0])
    hidden = []
    for enc, i in zip(encs, ids):
        out = enc(i, output_hidden_states=True)
        hidden.append(out.hidden_states[-2])
    return Cond(torch.cat(hidden, dim=-1), out[0])


_SIDE_STREAMS: dict = {}


def _side_stream(device) -> "torch.cuda.Stream":
    """One side stream per device, made once (a new stream per call would be a new stream per graph replay)."""
    key = torch.device(device).index or 0
    if key not in _SIDE_STREAMS:
        _SIDE_STREAMS[key] = torch.cuda.Stream(device=device)
    return _SIDE_STREAMS[key]


def schedule_on(schedule, device):
    """A copy of ``schedule`` whose lookup table lives on ``device`` (no host->device copy inside a graph)."""
    table = getattr(schedule, "alphas_cumprod", None)
    if table is None or table.device == torch.device(device):
        return schedule
    dev = copy.copy(schedule)
    dev.alphas_cumprod = table.to(device)
    return dev


@contextlib.contextmanager
def _use_schedule(base, schedule):
    """``base.schedule`` is ``schedule`` during the call (same values, table on the device)."""
    old = base.schedule
    base.schedule = schedule
    try:
        yield
    finally:
        base.schedule = old


class StaticLoop:
    """One static-shape generation for (base, sampler, batch): ids + noise buffers -> uint8 images.

    ``run()`` replays the captured graph (CUDA) or runs the loop (CPU); ``load(prompts, seeds)`` fills the
    buffers. Parts (``encode``, ``step(i)``, ``decode``) are separately runnable for per-part timing.
    """

    def __init__(self, base, sampler: Sampler, batch: int, opts: FastOptions):
        _check_base(base)
        self.base, self.sampler, self.batch, self.opts = base, sampler, batch, opts
        self.h = sampler.height or base.default_sampler.height
        self.w = sampler.width or base.default_sampler.width
        self.shape = base.latent_shape(self.h, self.w)
        self.ts = timesteps_for(base, sampler)
        dev = base.device
        self.schedule = schedule_on(base.schedule, dev)
        self.ids = [torch.zeros((batch, tok.model_max_length), dtype=torch.long, device=dev) for tok in _tokenizers(base)]
        self.noise = torch.zeros((batch, *self.shape), dtype=torch.float32, device=dev)
        self.t = [torch.full((batch,), float(t), dtype=torch.float32, device=dev) for t in self.ts]
        self.time_ids = base.time_ids(batch, self.h, self.w) if hasattr(base, "time_ids") else None
        self.null = None
        if sampler.guidance != 1.0:
            self.null = self._with_time_ids(base.null_cond(batch).to(dev))
        self.graph = None
        self.graph_scope: str | None = None  # what the CUDA graph holds (None: no graph)
        self.graph_error: str | None = None  # why the text encoders stayed out of it, if they did
        self.out: torch.Tensor | None = None
        self.latents: torch.Tensor | None = None
        self.capture_s = 0.0
        self.warmup_s = 0.0

    def _with_time_ids(self, cond):
        if self.time_ids is not None:
            cond.time_ids = self.time_ids
        return cond

    # parts: pure device work on the static buffers
    def encode(self):
        return self._with_time_ids(encode_ids(self.base, self.ids, streams=self.opts.text_streams))

    def step(self, i: int, x: torch.Tensor, cond) -> torch.Tensor:
        """One network evaluation (CFG batched) and the PF-ODE update, exactly as ``sampling.denoise``."""
        x0 = self.base.x0(x, self.t[i], cond, guidance=self.sampler.guidance, null=self.null).float()
        return x0 if i + 1 == len(self.ts) else self.base.schedule.pf_ode_step(x, x0, self.t[i], self.t[i + 1])

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        return to_uint8(self.base.decode(x0))

    def forward(self) -> torch.Tensor:
        with torch.no_grad(), _use_schedule(self.base, self.schedule):
            return self.denoise_decode(self.encode())

    def denoise_decode(self, cond) -> torch.Tensor:
        with torch.no_grad(), _use_schedule(self.base, self.schedule):
            x = self.noise.float()
            for i in range(len(self.ts)):
                x = self.step(i, x, cond)
            self.latents = x  # final x0 latents (a graph buffer: refreshed by each replay)
            return self.decode(x)

    # graph
    def load(self, prompts: list[str], seeds: list[int]) -> None:
        if len(prompts) != self.batch or len(seeds) != self.batch:
            raise AddbenchError(f"static loop is for batch {self.batch}; got {len(prompts)} prompts, {len(seeds)} seeds")
        for buf, ids in zip(self.ids, tokenize(self.base, prompts)):
            buf.copy_(ids, non_blocking=True)
        self.noise.copy_(initial_noise(seeds, self.shape), non_blocking=True)

    def build(self, warmup: int = 2) -> "StaticLoop":
        """Warm up (compiles, cuDNN autotune) and capture the CUDA graph (CUDA + ``opts.cuda_graph``)."""
        t0 = time.perf_counter()
        if self.base.device.type != "cuda" or not self.opts.cuda_graph:
            self.out = self.forward()
            self.warmup_s = time.perf_counter() - t0
            return self
        try:
            self.graph, self.out, self.warmup_s, self.capture_s = capture(self.forward, warmup)
            self.graph_scope = "text+network+vae"
        except RuntimeError as exc:  # e.g. a host sync inside the text encoders: keep them out of the graph
            self.graph_error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
            torch.cuda.synchronize()
            with torch.no_grad(), _use_schedule(self.base, self.schedule):
                self._cond = self.encode()
            self.graph, self.out, self.warmup_s, self.capture_s = capture(lambda: self.denoise_decode(self._cond), warmup)
            self.graph_scope = "network+vae"
        return self

    def run(self) -> torch.Tensor:
        """uint8 (batch, 3, H, W) on the device; on a graph, the same buffer is overwritten by the next run."""
        if self.graph is None:
            self.out = self.forward()
            return self.out
        if self.graph_scope == "network+vae":
            with torch.no_grad():
                fresh = self.encode()
            for dst, src in ((self._cond.hidden, fresh.hidden), (self._cond.pooled, fresh.pooled)):
                if dst is not None:
                    dst.copy_(src)
        self.graph.replay()
        return self.out

    def part_runners(self, graphs: bool = True) -> dict:
        """name -> zero-argument callable running one part on static buffers, each its own graph when the
        whole loop is one (and ``graphs``): ``text_encode``, ``network_eval_<i>`` (step i incl. CFG),
        ``vae_decode``. ``graphs=False``: the same parts launched kernel by kernel (for a profiler)."""
        with torch.no_grad(), _use_schedule(self.base, self.schedule):
            cond = self.encode()
            x = self.noise.float().clone()
            parts = {"text_encode": self.encode}
            parts.update({f"network_eval_{i}": (lambda i=i: self.step(i, x, cond)) for i in range(len(self.ts))})
            parts["vae_decode"] = lambda: self.decode(x)
            eager = {k: _no_grad(_with_schedule(self.base, self.schedule, fn)) for k, fn in parts.items()}
            if self.graph is None or not graphs:
                return eager
            return {k: eager[k] if k == "text_encode" and self.graph_scope == "network+vae" else capture(fn)[0].replay
                    for k, fn in parts.items()}


def _no_grad(fn):
    return lambda: torch.no_grad()(fn)()


def _with_schedule(base, schedule, fn):
    def run():
        with _use_schedule(base, schedule):
            return fn()
    return run


def capture(fn, warmup: int = 2):
    """(graph, static output, warm-up s, capture s) for a CUDA function of static buffers."""
    t0 = time.perf_counter()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    t1 = time.perf_counter()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    torch.cuda.synchronize()
    return graph, out, t1 - t0, time.perf_counter() - t1


# ---- the Generator ----------------------------------------------------------------------------------
class FastGenerator(Generator):
    """A ``Generator`` over a UNet base through :class:`StaticLoop` (one loop per sampler, built on first use)."""

    def __init__(self, base, sampler: Sampler | None = None, micro_batch: int = 1, options: FastOptions | None = None,
                 name: str | None = None, model_hash: str = "", base_name: str | None = None):
        _check_base(base)
        self.base = base
        self.options = options or FastOptions()
        sampler = sampler or base.default_sampler
        self.sampler = dataclasses.replace(sampler, height=sampler.height or base.default_sampler.height,
                                           width=sampler.width or base.default_sampler.width)
        self.micro_batch = int(micro_batch)
        self.base_name = base_name or base.name
        self.name = name or f"{self.base_name}@{self.sampler.label}"
        self.model_hash = model_hash
        self.prepared = prepare_modules(base, self.options)
        self._loops: dict = {}

    def loop(self, sampler: Sampler | None = None) -> StaticLoop:
        s = sampler or self.sampler
        s = dataclasses.replace(s, height=s.height or self.sampler.height, width=s.width or self.sampler.width)
        key = repr(sorted(s.to_dict().items()))
        if key not in self._loops:
            self._loops[key] = StaticLoop(self.base, s, self.micro_batch, self.options)
            self._loops[key].load([""] * self.micro_batch, [0] * self.micro_batch)
            self._loops[key].build()
        return self._loops[key]

    def generate(self, prompts: list[str], seeds: list[int], sampler: Sampler | None = None) -> torch.Tensor:
        if len(prompts) != len(seeds):
            raise AddbenchError(f"got {len(prompts)} prompts but {len(seeds)} seeds; pass one seed per prompt")
        loop = self.loop(sampler)
        mb, out = self.micro_batch, []
        for start in range(0, len(prompts), mb):
            p, s = list(prompts[start:start + mb]), list(seeds[start:start + mb])
            n = len(p)
            loop.load(p + [p[-1]] * (mb - n), s + [s[-1]] * (mb - n))
            out.append(loop.run()[:n].cpu())
        return torch.cat(out) if out else torch.empty((0, 3, loop.h, loop.w), dtype=torch.uint8)

    @property
    def effective_micro_batch(self) -> int:
        return self.micro_batch

    def describe(self) -> dict:
        return {**super().describe(), "fast": self.options.describe(), "micro_batch": self.micro_batch,
                "device": str(self.base.device), "dtype": str(self.base.dtype).replace("torch.", "")}


def make_fast(generator, options: FastOptions | None = None, micro_batch: int | None = None) -> FastGenerator:
    """The fast twin of a ``DiffusionGenerator`` (same base and sampler), e.g. for ``addbench eval --fast``.

    Pixels differ from the eager path at the bf16 level, so the name gets ``+fast`` and the model hash
    includes the fast options: eval runs of the two never resume from each other.
    """
    import hashlib

    options = options or FastOptions()
    mb = micro_batch or getattr(generator, "effective_micro_batch", None) or getattr(generator, "micro_batch", None) or 1
    digest = hashlib.sha256(f"{generator.model_hash}|fast:{options.label}".encode()).hexdigest()
    return FastGenerator(generator.base, generator.sampler, mb, options, name=f"{generator.name}+fast",
                         model_hash=digest, base_name=generator.base_name)
