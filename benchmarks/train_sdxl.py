"""One training iteration of each distiller at SDXL scale with random weights: step time per turn, images/s,
peak GPU memory and MFU; prints a table (and Markdown rows), writes JSON.

    python benchmarks/train_sdxl.py --res 1024 --micro-batch 1,4 --iters 3 \
        --methods add,dmd,dmd2,dmdx.adp,dmdx.adm --out train_sdxl.json
    python benchmarks/train_sdxl.py --tiny --iters 2 --methods dmd2 --out tiny.json   # CPU smoke run

What runs is the training engine itself: ``resolve_config`` (engine defaults < the plug-in's sdxl preset <
the overrides below), ``loop.setup`` (plug-in ``setup``, activation checkpointing, AdamW) and ``loop.run``
(the turns by their ratios, autocast, backward, clipping, optimiser steps). Only two things differ from
``addbench train``: state checkpoints are not written (``loop.save_state`` is a no-op here) and the
student is not exported. Overrides: ``batch`` = micro-batch (one process), ``grad_checkpointing=true``,
``precision=bf16`` (GPU), ``resolution``; the data are stand-ins made in a temp dir (prompts, random-noise
PNGs with captions, random-tensor ODE pairs in the ``addbench.train.odepairs`` format), and the
backbones real runs load from disk are saved there with random weights: DINOv2 ViT-S/14 (ADD's
``feature_net``), SAM ViT-B (DMDX ADP ``pixel_backbone=sam:``) and VGG16 for LPIPS (DMD) in a temp torch
hub dir. DMD has no sdxl preset: its sd15 preset is used (``preset_from`` in the JSON).

The base is built once (``addbench.eval.latency.random_weight_base``: architectures.json, bf16 on the GPU),
so every trainable copy is bf16 like the teacher; the engine trains them through fp32 master weights and fp32
AdamW moments (``master_weights=on``, its default since 2026-12-02; the runs before that date updated the bf16
weights in place with bf16 moments, which ``--set master_weights=off`` reproduces). One network's masters in host
memory: ``--set dmdx.adm:+master_weights_fake=cpu`` (a ``+`` key needs the method scope).

Timing: one step = every turn call of one loop step; each call is timed from the engine asking for its
batch to the next call's request (so data loading, forward, backward, clipping and the optimiser step of
that turn), with CUDA events; the first ``--warmup`` steps are excluded. images/s = micro-batch / step
time (the engine's images-seen accounting: one step = ``batch`` images). Memory, reset before each method:
``peak_gib`` = ``torch.cuda.max_memory_allocated`` over the timed steps (steady state: weights, grads, AdamW
states, activations), ``peak_all_gib`` also covers setup and the warm-up (whose FLOP counting adds Python
dispatch, not memory, as far as we know); both include the resident base (teacher UNet, text encoders,
VAE: ``resident_gib``; ``peak_above_resident_gib`` is the method's own share).

FLOPs: counted with ``torch.utils.flop_counter`` (matmul / conv / attention) on the first warm-up step,
split by phase: forward, backward, and the forward recomputation of gradient checkpointing (ops that run
inside the backward pass with grad mode on). MFU = (forward + backward) / step time / peak; HFU adds the
recomputation (ADD's R1 double-backward also lands in "recompute"). ``--methods unet`` adds the issue's
anchor: one plain UNet forward + backward with checkpointing (reference: 391 ms, 14.2 GiB at micro-batch 4,
1024², H200). Peak bf16 dense: 989.4 TFLOP/s for H100 SXM / H200 (``--peak-tflops`` to override).
An out-of-memory (or any other failure) of one method is reported in its row and the next method runs.
The JSON is rewritten after every step (a method's ``status`` is ``running`` until it finishes), so a run killed
by a time limit keeps the steps it finished. ``--profile`` runs one more step per method under ``torch.profiler``
(excluded from the timing): kernel time by kind (``addbench.eval.profiling.kernel_kind``), busy time against the
step time (the difference is the GPU waiting for the host), launch count, top kernels.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

METHODS = ("add", "dmd", "dmd2", "dmdx.adp", "dmdx.adm")
PEAK_BF16_TFLOPS = (("H200", 989.4), ("H100 PCIe", 756.0), ("H100", 989.4), ("A100", 312.0), ("L40S", 362.1))
GIB = 2**30
PROMPTS = ["a photograph of an astronaut riding a horse on the moon", "a red cube on a wooden table",
           "a watercolor painting of a lighthouse at dawn", "a close-up of a cat's face, studio lighting"]


# ---- stand-in data and backbones ------------------------------------------------------------------------
def write_images(folder: Path, n: int, res: int, seed: int = 0) -> Path:
    """``n`` random-noise PNGs (``res``²) with same-name .txt captions (the ``real_images`` folder format)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        # smooth noise (upsampled 64² noise): compresses fast and is not a constant image
        low = torch.rand((1, 3, 64, 64), generator=g)
        img = torch.nn.functional.interpolate(low, size=(res, res), mode="bilinear")[0]
        arr = (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        Image.fromarray(arr).save(folder / f"{i:03d}.png", compress_level=1)
        (folder / f"{i:03d}.txt").write_text(PROMPTS[i % len(PROMPTS)])
    return folder


def write_ode_pairs(folder: Path, n: int, latent_shape: tuple[int, ...], seed: int = 0) -> Path:
    """``n`` random (noise, target, prompt) pairs in the ``addbench.train.odepairs`` format (one shard)."""
    from safetensors.torch import save_file

    from addbench.train.odepairs import FORMAT, _shard_path

    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
    manifest = {"format": FORMAT, "n_pairs": n, "steps": 0, "guidance": 1.0, "seed": seed, "resolution": None,
                "shard_size": n, "spacing": "trailing", "base": "random-tensors (benchmark)", "n_prompts": n}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    tensors = {"noise": torch.randn((n, *latent_shape), generator=g),
               "target": torch.randn((n, *latent_shape), generator=g).clamp(-4, 4)}
    save_file(tensors, str(_shard_path(folder, 0)), metadata={"format": FORMAT, "ids": json.dumps(list(range(n))),
                                                              "prompts": json.dumps(prompts)})
    return folder


def save_dinov2(folder: Path, tiny: bool) -> Path:
    """DINOv2 ViT-S/14 (ADD's feature network, Table 1a) with random weights, saved with save_pretrained."""
    from transformers import Dinov2Config, Dinov2Model

    kw = dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4, patch_size=14, image_size=518)
    if tiny:
        kw.update(hidden_size=32, num_attention_heads=2, image_size=56)
    torch.manual_seed(1)
    Dinov2Model(Dinov2Config(**kw)).save_pretrained(str(folder))
    return folder


def save_sam(folder: Path, tiny: bool) -> Path:
    """SAM ViT-B image encoder (DMDX ADP's pixel discriminator) with random weights (transformers defaults = ViT-B)."""
    from transformers import SamVisionConfig, SamVisionModel

    kw = {}
    if tiny:
        kw = dict(hidden_size=32, num_attention_heads=2, mlp_dim=64, image_size=64, patch_size=16, output_channels=16,
                  window_size=2, num_pos_feats=16)
    torch.manual_seed(2)
    SamVisionModel(SamVisionConfig(**kw)).save_pretrained(str(folder))
    return folder


def install_random_vgg16(hub_dir: Path) -> None:
    """LPIPS-VGG loads torchvision's VGG16 from the torch hub cache: put random weights there (nothing downloads)."""
    import torchvision

    w = torchvision.models.VGG16_Weights.IMAGENET1K_V1
    ckpt = hub_dir / "checkpoints" / Path(w.url).name
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(3)
    torch.save(torchvision.models.vgg16().state_dict(), ckpt)
    torch.hub.set_dir(str(hub_dir))


class World:
    """Stand-in data and backbone directories under ``root``, made lazily (only what the methods need)."""

    def __init__(self, root: Path, res: int, latent_shape, tiny: bool, n: int):
        self.root, self.res, self.latent_shape, self.tiny, self.n = root, res, tuple(latent_shape), tiny, n
        self._made: dict[str, str] = {}

    def get(self, what: str) -> str:
        if what not in self._made:
            p = self.root / what
            if what == "prompts":
                p = self.root / "prompts.txt"
                p.write_text("\n".join(PROMPTS) + "\n")
            elif what == "images":
                write_images(p, self.n, self.res)
            elif what == "pairs":
                write_ode_pairs(p, self.n, self.latent_shape)
            elif what == "dinov2":
                save_dinov2(p, self.tiny)
            elif what == "sam":
                save_sam(p, self.tiny)
            elif what == "vgg":
                install_random_vgg16(p)
            self._made[what] = str(p)
        return self._made[what]


# ---- plug-ins and configs -------------------------------------------------------------------------------
def plugin_class(name: str):
    """(plug-in class, preset it takes): a subclass using its sd15 preset when it has no sdxl preset (DMD)."""
    from addbench.errors import AddbenchError
    from addbench.registry import DISTILLERS

    cls = DISTILLERS.get(name)
    try:
        cls.preset("sdxl")
        return cls, "sdxl"
    except AddbenchError:
        src = next((b for b in ("sd15", "sd21", "default") if b in cls.presets), None)
        if src is None:
            raise
        sub = type(cls.__name__, (cls,), {"presets": {**cls.presets, "sdxl": dict(cls.presets[src])},
                                          "__module__": cls.__module__})
        return sub, src


def method_overrides(cls, world: World, micro_batch: int, iters: int, cuda: bool, extra: list[tuple[bool, str]],
                     batch: int = 0) -> list[str]:
    """Benchmark overrides for one method: only keys its resolved config has (plus the user's ``--set``).
    ``batch`` > ``micro_batch``: the step's batch, reached by gradient accumulation over micro-batches."""
    from addbench.train.entry import resolve_config

    plain = set(resolve_config(cls, "sdxl"))
    extra = [v for scoped, v in extra if scoped or v.lstrip("+").split("=")[0].split(".")[0] in plain]
    cfg0 = resolve_config(cls, "sdxl", extra)
    keys, needs = set(cfg0), set(cls(cfg0).data_needs)  # DMD's data needs depend on its config
    batch = batch or micro_batch
    want = {"batch": batch, "micro_batch": micro_batch if batch != micro_batch else 0,
            "budget_images": iters * batch, "resolution": world.res,
            "grad_checkpointing": "true", "precision": "bf16" if cuda else "fp32", "ema": 0.0,
            "sample_every_images": 0, "tensorboard": "false", "wandb": "false", "progress": "false",
            "prompts": world.get("prompts")}
    if "images" in needs:
        want["real_images"] = world.get("images")
    if "ode_pairs" in needs:
        want["ode_pairs"] = world.get("pairs")
    if "feature_net" in keys and cfg0["feature_net"] != "teacher":
        want["feature_net"] = world.get("dinov2")
    if "pixel_backbone" in keys and str(cfg0["pixel_backbone"]).startswith("sam:"):
        want["pixel_backbone"] = "sam:" + world.get("sam")
    if "lpips_net" in keys and cfg0["lpips_net"] == "vgg" and float(cfg0.get("lambda_reg", 1.0)):
        world.get("vgg")
    if world.tiny and "latent_taps" in keys:
        want["latent_taps"] = "base"  # the tiny SDXL UNet has 2 down blocks, not SDXL's 3
    if world.tiny and "head_width" in keys:
        want["head_width"] = 64  # tiny features have 4-8 channels: GroupNorm on a 1x1 map needs > 32
    out = [f"{k}={v}" for k, v in want.items() if k in keys]
    return out + list(extra)


def split_sets(sets: list[str], methods: list[str]) -> dict[str, list[tuple[bool, str]]]:
    """``--set key=value`` (every method whose config has the key) or ``--set method:key=value`` (that one;
    an unknown key is then an error). Per method: [(scoped, "key=value")]."""
    out: dict[str, list[tuple[bool, str]]] = {m: [] for m in methods}
    for s in sets:
        head, _, rest = s.partition("=")
        if ":" in head:
            m, _, key = head.partition(":")
            if m not in out:
                raise SystemExit(f"--set {s}: method {m!r} is not among --methods")
            out[m].append((True, f"{key}={rest}"))
        elif head.strip().startswith("+"):  # no method's config has a new key, so unscoped it would be dropped
            raise SystemExit(f"--set {s}: a +key adds a key, so name the method: --set {methods[0]}:{s}")
        else:
            for m in methods:
                out[m].append((False, s))
    return out


# ---- timing and FLOPs ----------------------------------------------------------------------------------
class PhaseFlops(TorchDispatchMode):
    """Counts FLOPs with ``torch.utils.flop_counter``'s formulas (matmul / conv / attention; other ops are
    decomposed first when they can be, as ``FlopCounterMode`` does), by turn and by phase: forward, backward,
    and recompute (the forward recomputation of activation checkpointing: ops that run inside the backward
    pass with grad mode on). No module tracking: ``FlopCounterMode``'s backward hooks break ``autograd.grad``
    on leaves (ADD's R1 penalty)."""

    def __init__(self):
        super().__init__()
        self.turn = "?"
        self.by_turn: dict[str, dict[str, int]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func._overloadpacket
        if packet not in flop_registry and func is not torch.ops.prim.device.default:
            with self:
                r = func.decompose(*args, **kwargs)
            if r is not NotImplemented:
                return r
        out = func(*args, **kwargs)
        if packet in flop_registry:
            n = int(flop_registry[packet](*args, **kwargs, out_val=out))
            in_backward = torch._C._current_graph_task_id() != -1
            phase = ("recompute" if torch.is_grad_enabled() else "backward") if in_backward else "forward"
            d = self.by_turn.setdefault(self.turn, {"forward": 0, "backward": 0, "recompute": 0})
            d[phase] += n
        return out


class Clock:
    """CUDA events on the GPU (host clock on the CPU): ``mark()`` now, ``ms(a, b)`` after a sync."""

    def __init__(self, cuda: bool):
        self.cuda = cuda

    def mark(self):
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def ms(self, a, b) -> float:
        if self.cuda:
            b.synchronize()
            return a.elapsed_time(b)
        return (b - a) * 1e3


# the CUDA caching allocator's counters kept per step (our name -> torch.cuda.memory_stats key)
ALLOCATOR_COUNTERS = {"alloc_retries": "num_alloc_retries", "cuda_mallocs": "num_device_alloc",
                      "cuda_frees": "num_device_free"}


class TurnTimer:
    """Wraps the engine's ``TrainData`` (``batch`` marks the start of every turn call) and is a loop
    callback (``on_step`` marks the end of the step); counts FLOPs during step 0 when ``count_flops``."""

    def __init__(self, data, cuda: bool, count_flops: bool, warmup: int = 1, profile_step: int | None = None,
                 after_step=None):
        self.data, self.cuda, self.count_flops, self.warmup = data, cuda, count_flops, warmup
        self.after_step = after_step  # called with the timer after every step (the benchmark writes its JSON)
        self.profile_step = profile_step  # this step runs under torch.profiler and is left out of ``steps``
        self.profile: dict | None = None
        self._prof = None
        self.clock = Clock(cuda)
        self.peak_warmup_gib: float | None = None
        self.marks: list = []  # (turn, mark) of the current step
        self.t_step0: float | None = None
        self._alloc0: dict = {}
        self.data_s = 0.0
        self.steps: list[dict] = []
        self.flops: PhaseFlops | None = None
        self.flops_by_turn: dict | None = None
        self.flops_complete = False

    def batch(self, step: int, call: int = 0, turn: str = ""):
        if step == 0 and call == 0 and self.count_flops and self.flops is None:
            self.flops = PhaseFlops()
            self.flops.__enter__()
        if self.flops is not None:
            self.flops.turn = turn
        if not self.marks:
            self.t_step0 = time.perf_counter()
            self._alloc0 = self._allocator_now()
            if len(self.steps) == self.profile_step and self.profile is None:
                from torch.profiler import ProfilerActivity, profile

                self._prof = profile(activities=[ProfilerActivity.CUDA if self.cuda else ProfilerActivity.CPU])
                self._prof.__enter__()
        self.marks.append((turn, self.clock.mark()))
        t = time.perf_counter()
        out = self.data.batch(step, call, turn)
        self.data_s += time.perf_counter() - t
        return out

    def _stop_flops(self):
        if self.flops is not None:
            self.flops.__exit__(None, None, None)
            self.flops_by_turn, self.flops = self.flops.by_turn, None

    def on_step(self, state, logs):
        end = self.clock.mark()
        if self.cuda:
            torch.cuda.synchronize()
        wall = (time.perf_counter() - self.t_step0) * 1e3
        bounds = [m for _, m in self.marks] + [end]
        calls = [(turn, self.clock.ms(bounds[i], bounds[i + 1])) for i, (turn, _) in enumerate(self.marks)]
        if self._prof is not None:
            self._stop_profile(calls)
            if self.after_step is not None:
                self.after_step(self)
            return
        self.steps.append({"step": state.step, "calls": calls, "step_ms": sum(ms for _, ms in calls), "wall_ms": wall,
                           "flop_counted": self.flops is not None, **self._allocator_counts()})
        self.marks = []
        self.flops_complete = self.flops_complete or self.flops is not None
        self._stop_flops()
        if self.cuda and len(self.steps) == self.warmup:  # peak of the timed steps alone from here on
            self.peak_warmup_gib = round(torch.cuda.max_memory_allocated() / GIB, 2)
            torch.cuda.reset_peak_memory_stats()
        if self.after_step is not None:
            self.after_step(self)

    def _allocator_now(self) -> dict:
        """The CUDA caching allocator's event counters: ``alloc_retries`` (a malloc failed, the cache was freed
        and the malloc retried: a device-wide sync each), ``cuda_mallocs`` / ``cuda_frees``."""
        if not self.cuda:
            return {}
        st = torch.cuda.memory_stats()
        return {ours: st.get(torch_key, 0) for ours, torch_key in ALLOCATOR_COUNTERS.items()}

    def _allocator_counts(self) -> dict:
        """The allocator's events during this step (counted from the step's first turn)."""
        now = self._allocator_now()
        return {k: v - self._alloc0.get(k, 0) for k, v in now.items()}

    def _stop_profile(self, calls=None):
        from addbench.eval.profiling import kernel_table

        prof, self._prof, self.marks = self._prof, None, []
        if self.cuda:
            torch.cuda.synchronize()
        prof.__exit__(None, None, None)
        if calls is not None:  # a finished step (not one cut short by a failure)
            self.profile = {"step_ms": sum(ms for _, ms in calls), "calls": [[t, round(ms, 2)] for t, ms in calls],
                            **kernel_table(prof, top=30, cuda=self.cuda)}

    def on_end(self, state):
        self._stop_flops()
        if self._prof is not None:
            self._stop_profile()


@contextlib.contextmanager
def no_state_saving():
    """``loop.run`` writes a full training state (every network + AdamW) at the end: skip it here."""
    from addbench.train import loop

    saved = loop.save_state
    loop.save_state = lambda *a, **k: None
    try:
        yield
    finally:
        loop.save_state = saved


def remove_taps(obj) -> None:
    """Drop forward hooks a plug-in left on shared modules (DMDX taps the shared teacher)."""
    from addbench.discriminators import NetworkTaps

    seen = set()
    for v in list(vars(obj).values()):
        if isinstance(v, torch.nn.Module):
            for m in v.modules():
                if isinstance(m, NetworkTaps) and id(m) not in seen:
                    seen.add(id(m))
                    m.remove()


# ---- one method ---------------------------------------------------------------------------------------
def run_method(name: str, base, world: World, micro_batch: int, iters: int, warmup: int, extra: list[tuple[bool, str]],
               count_flops: bool, record: dict, profile: bool = False, progress=None, batch: int = 0) -> None:
    """Train ``iters`` steps of ``name`` through the engine (one more, profiled, with ``profile``); fills
    ``record`` as it goes and calls ``progress()`` after every step (so a failure or a kill keeps what was
    measured)."""
    from addbench.train import loop
    from addbench.train.data import TrainData
    from addbench.train.entry import resolve_config
    from addbench.train.parallel import init_distributed

    cuda = base.device.type == "cuda"
    cls, preset_from = plugin_class(name)
    overrides = method_overrides(cls, world, micro_batch, iters + int(profile), cuda, extra, batch)
    batch = batch or micro_batch  # images per step (the engine's accounting): what images/s divides
    cfg = resolve_config(cls, base, overrides)
    record.update(preset_from=preset_from, overrides=[o for o in overrides if not o.startswith(("prompts=", "real_images=",
                                                                                                  "ode_pairs="))],
                  turns_per_step=[t.name for t in loop.calls_at(cls(cfg).turns, 1)])
    ctx = init_distributed(base.device.type)
    torch.manual_seed(int(cfg["seed"]))
    plugin = cls(cfg)
    t0 = time.perf_counter()
    state = timer = None
    try:
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-", dir=world.root) as run_dir:
            state = loop.setup(plugin, base, cfg, ctx, Path(run_dir))
            record["setup_s"] = round(time.perf_counter() - t0, 2)
            if cuda:
                record["after_setup_gib"] = round(torch.cuda.memory_allocated() / GIB, 2)
            record["trainable_params"] = {k: sum(p.numel() for p in n.parameters() if p.requires_grad)
                                          for k, n in state.nets.items()}
            record["param_dtype"] = str(next(state.nets[plugin.student_network].parameters()).dtype).replace("torch.", "")
            data = TrainData(cfg, plugin.data_needs, ctx.rank, ctx.world_size, ctx.device)
            timer = TurnTimer(data, cuda, count_flops, warmup, profile_step=iters if profile else None,
                              after_step=step_writer(record, batch, warmup, progress))
            with no_state_saving():
                loop.run(state, timer, callbacks=[timer])
    finally:
        if timer is not None:
            timer._stop_flops()
            summarize(record, timer, batch, warmup)
        remove_taps(plugin)


def step_writer(record: dict, micro_batch: int, warmup: int, progress):
    """The timer's ``after_step``: the record summarized so far, then ``progress()`` (None: nothing)."""
    if progress is None:
        return None
    return lambda timer: (summarize(record, timer, micro_batch, warmup), progress())


def summarize(record: dict, timer: TurnTimer, micro_batch: int, warmup: int) -> None:
    """``micro_batch``: the images one step trains on (the whole batch when it accumulates)."""
    record["steps_run"] = len(timer.steps)
    record["steps"] = [{"step": s["step"], "step_ms": round(s["step_ms"], 2), "wall_ms": round(s["wall_ms"], 2),
                        "flop_counted": s["flop_counted"], "calls": [[t, round(ms, 2)] for t, ms in s["calls"]],
                        **{k: s[k] for k in ALLOCATOR_COUNTERS if k in s}}
                       for s in timer.steps]
    if timer.peak_warmup_gib is not None:
        record["peak_warmup_gib"] = timer.peak_warmup_gib
    timed = timer.steps[warmup:]
    if timed:
        step_ms = [s["step_ms"] for s in timed]
        record["step_ms"] = round(statistics.mean(step_ms), 2)
        record["step_ms_median"] = round(statistics.median(step_ms), 2)
        record["images_per_s"] = round(micro_batch / (record["step_ms"] / 1e3), 3)
        turns: dict[str, list[float]] = {}
        for s in timed:
            for t, ms in s["calls"]:
                turns.setdefault(t, []).append(ms)
        record["turn_ms"] = {t: {"mean_ms": round(statistics.mean(v), 2), "calls_per_step": len(v) / len(timed)}
                             for t, v in turns.items()}
    if timer.profile is not None:
        record["profile"] = timer.profile
    if timer.flops_by_turn is not None and timer.flops_complete:
        tot = {p: sum(d[p] for d in timer.flops_by_turn.values()) for p in ("forward", "backward", "recompute")}
        record["flops_per_step"] = {**tot, "by_turn": timer.flops_by_turn}
        record["model_tflop_per_step"] = round((tot["forward"] + tot["backward"]) / 1e12, 6)


# ---- the anchor: one plain UNet forward + backward ----------------------------------------------------------
ANCHOR = "unet"  # not a distiller: the reference (SDXL UNet fwd+bwd, mb 4, 1024², checkpointing: 391 ms, 14.2 GiB, H200)


class _NoData:
    def batch(self, step, call=0, turn=""):
        return {}


def run_unet_anchor(base, res: int, micro_batch: int, iters: int, warmup: int, count_flops: bool, record: dict,
                    profile: bool = False, channels_last: bool = False, progress=None) -> None:
    """A trainable copy of the UNet (the base's dtype, as the distillers' copies), activation checkpointing,
    autocast like the engine: forward + backward of a mean-square loss per step, no optimiser."""
    from types import SimpleNamespace

    from addbench.train.parallel import enable_activation_checkpointing

    cuda = base.device.type == "cuda"
    net = base.copy_network().requires_grad_(True).train()
    if channels_last:
        net.to(memory_format=torch.channels_last)
    enable_activation_checkpointing(net)
    record.update(preset_from="-", turns_per_step=["fwd+bwd"], trainable_params={"unet": sum(p.numel() for p in net.parameters())},
                  param_dtype=str(next(net.parameters()).dtype).replace("torch.", ""))
    g = torch.Generator().manual_seed(0)
    x = torch.randn((micro_batch, *base.latent_shape(res, res)), generator=g).to(base.device)
    t = torch.full((micro_batch,), 500.0, device=base.device)
    cond = base.encode_prompts([PROMPTS[0]]).repeat(micro_batch)
    timer = TurnTimer(_NoData(), cuda, count_flops, warmup, profile_step=iters if profile else None,
                      after_step=step_writer(record, micro_batch, warmup, progress))
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    try:
        for step in range(iters + int(profile)):
            timer.batch(step, 0, "fwd+bwd")
            with amp:
                out = base.predict(x, t, cond, network=net)
            out.float().pow(2).mean().backward()
            timer.on_step(SimpleNamespace(step=step + 1), {})
    finally:
        timer.on_end(None)
        summarize(record, timer, micro_batch, warmup)


def anchor_channels_last(sets: list[tuple[bool, str]]) -> bool:
    """The anchor takes one setting of the engine's: ``--set channels_last=true`` (or ``unet:channels_last=...``)."""
    from addbench.config import parse_value

    vals = [parse_value(v.partition("=")[2]) for _, v in sets if v.partition("=")[0] == "channels_last"]
    return bool(vals[-1]) if vals else False


def profile_line(p: dict) -> str:
    kinds = ", ".join(f"{k} {ms:.0f}" for k, ms in p["by_kind"].items())
    return (f"  profiled step: {p['step_ms']:.0f} ms, kernels busy {p['busy_ms']:.0f} ms ({p['kernels']} launches): "
            f"{kinds} ms")


# ---- bases ---------------------------------------------------------------------------------------------
def build_base(tiny: bool, root: Path, device: str | None):
    if tiny:
        from addbench.bases.loading import load_base
        from addbench.bases.tiny import save_tiny_pipeline

        return load_base(str(save_tiny_pipeline("sdxl", root / "pipe")), device=device or "cpu", dtype="fp32")
    from addbench.eval.latency import random_weight_base

    return random_weight_base("sdxl", device=device, dtype=torch.bfloat16)


def peak_tflops(device: torch.device, override: float | None) -> tuple[float | None, str]:
    if override:
        return override, "--peak-tflops"
    if device.type != "cuda":
        return None, "cpu"
    name = torch.cuda.get_device_name(device)
    for key, v in PEAK_BF16_TFLOPS:
        if key in name:
            return v, f"{key} bf16 dense"
    return None, f"unknown GPU {name!r}: pass --peak-tflops"


# ---- output --------------------------------------------------------------------------------------------
MD_HEAD = ("| method | micro-batch | res | status | step ms | per turn: ms × calls | images/s | peak GiB | "
           "model TFLOP/step | MFU |\n|---|---|---|---|---|---|---|---|---|---|")


def md_row(r: dict) -> str:
    turns = ", ".join(f"{t} {v['mean_ms']:.0f}×{v['calls_per_step']:g}" for t, v in (r.get("turn_ms") or {}).items())
    f = lambda k, fmt: (fmt.format(r[k]) if r.get(k) is not None else "-")  # noqa: E731
    status = r["status"] if r["status"] == "ok" else r["status"] + (f" ({r['error_short']})" if r.get("error_short") else "")
    mb = r["micro_batch"] if r.get("batch", r["micro_batch"]) == r["micro_batch"] else \
        f"{r['micro_batch']} x {r['batch'] // r['micro_batch']} = {r['batch']}"  # accumulation rounds
    return (f"| {r['method']} | {mb} | {r['res']} | {status} | {f('step_ms', '{:.0f}')} | {turns or '-'} | "
            f"{f('images_per_s', '{:.2f}')} | {f('peak_gib', '{:.1f}')} | {f('model_tflop_per_step', '{:.3g}')} | "
            f"{f('mfu', '{:.1%}')} |")


def write_json(path: Path | None, result: dict) -> None:
    """After every step and method (atomic): a run killed by a time limit keeps what it measured."""
    from addbench.eval.records import atomic_write_json

    if path is not None:
        atomic_write_json(path, result)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--res", type=int, default=None, help="pixels (default 1024; --tiny: 64)")
    ap.add_argument("--micro-batch", default="1", help="micro-batch per step; a comma list runs each")
    ap.add_argument("--batch", type=int, default=0,
                    help="images per step through gradient accumulation over --micro-batch (default: the micro-batch)")
    ap.add_argument("--iters", type=int, default=2, help="steps per method, warm-up included")
    ap.add_argument("--warmup", type=int, default=1, help="first steps excluded from the timing (FLOPs counted on step 0)")
    ap.add_argument("--methods", default=",".join(METHODS),
                    help=f"comma list of {', '.join(METHODS)}, and {ANCHOR!r} (plain UNet fwd+bwd, the issue's anchor)")
    ap.add_argument("--set", action="append", default=[], metavar="[METHOD:]KEY=VALUE",
                    help="extra config override (all methods whose config has KEY, or one method)")
    ap.add_argument("--tiny", action="store_true", help="tiny random SDXL pipeline on the CPU (smoke test of this script)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--no-flops", action="store_true", help="skip the FLOP count (step 0 then runs at full speed)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="accelerator peak for MFU (bf16 dense TFLOP/s)")
    ap.add_argument("--profile", action="store_true",
                    help="run one more step per method under torch.profiler (not timed): kernel time by kind, top kernels")
    ap.add_argument("--time-limit", type=float, default=None, help="seconds: skip methods not started by then")
    ap.add_argument("--workdir", type=Path, default=None, help="where stand-in data go (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    a = ap.parse_args(argv)
    if a.iters <= a.warmup or a.warmup < (0 if a.no_flops else 1):
        raise SystemExit("need --iters > --warmup >= 1 (step 0 is the FLOP-counted warm-up; --no-flops allows 0)")
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    from addbench.registry import DISTILLERS

    bad = [m for m in methods if m not in DISTILLERS.names() and m != ANCHOR]
    if bad:
        raise SystemExit(f"unknown method(s) {bad}; known: {DISTILLERS.names()} and {ANCHOR!r} (plain UNet fwd+bwd)")
    mbs = [int(b) for b in a.micro_batch.split(",")]
    res = a.res or (64 if a.tiny else 1024)
    sets = split_sets(a.set, methods)
    warnings.filterwarnings("ignore", message=".*module hierarchy tracking.*")
    if a.tiny:
        torch.set_num_threads(1)
    t_start = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="addbench-train-bench-", dir=a.workdir)
    root = Path(tmp.name)
    base = build_base(a.tiny, root, a.device)
    cuda = base.device.type == "cuda"
    peak, peak_src = peak_tflops(base.device, a.peak_tflops)
    import diffusers

    result = {"device": torch.cuda.get_device_name(base.device) if cuda else "cpu", "torch": torch.__version__,
              "diffusers": diffusers.__version__, "base": "sdxl (tiny)" if a.tiny else "sdxl (random weights)",
              "base_dtype": str(base.dtype).replace("torch.", ""), "res": res, "iters": a.iters, "warmup": a.warmup,
              "peak_tflops": peak, "peak_source": peak_src, "base_build_s": round(time.perf_counter() - t_start, 1),
              "records": []}
    if cuda:
        result["base_resident_gib"] = round(torch.cuda.memory_allocated() / GIB, 2)
    print(f"{result['device']} | torch {torch.__version__} | {result['base']} {result['base_dtype']} | {res}px | "
          f"{a.iters} steps ({a.warmup} warm-up) | base built in {result['base_build_s']}s", flush=True)
    world = World(root, res, base.latent_shape(res, res), a.tiny, n=max(8, max(mbs), a.batch))
    rc = 0
    for mb in mbs:
        for name in methods:
            rec = {"method": name, "micro_batch": mb, "batch": a.batch or mb, "res": res,
                   "status": "running"}  # "ok" once it finishes
            result["records"].append(rec)
            if a.time_limit and time.perf_counter() - t_start > a.time_limit:
                rec["status"] = "skipped"
                rec["error_short"] = f"--time-limit {a.time_limit:g}s reached"
                print(md_row(rec), flush=True)
                write_json(a.out, result)
                continue
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                rec["resident_gib"] = round(torch.cuda.memory_allocated() / GIB, 2)
            t0 = time.perf_counter()
            try:
                progress = lambda: write_json(a.out, result)  # noqa: E731 - after every step
                if name == ANCHOR:
                    run_unet_anchor(base, res, mb, a.iters, a.warmup, not a.no_flops, rec, a.profile,
                                    channels_last=anchor_channels_last(sets[name]), progress=progress)
                else:
                    run_method(name, base, world, mb, a.iters, a.warmup, sets[name], not a.no_flops, rec, a.profile,
                               progress=progress, batch=a.batch)
                rec["status"] = "ok"
            except torch.OutOfMemoryError as e:
                rec["status"] = "oom"
                rec["error"] = str(e).splitlines()[0][:300]
                rec["error_short"] = "out of memory"
            except Exception as e:  # noqa: BLE001 - report and go on with the next method
                rec["status"] = "error"
                rec["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:500]
                rec["error_short"] = type(e).__name__
                rec["traceback"] = traceback.format_exc()[-3000:]
                rc = 1
            rec["total_s"] = round(time.perf_counter() - t0, 1)
            gc.collect()
            if cuda:
                now = round(torch.cuda.max_memory_allocated() / GIB, 2)
                if "peak_warmup_gib" in rec:  # peak_gib: the timed steps (steady state); peak_all_gib: incl. setup + warm-up
                    rec["peak_gib"], rec["peak_all_gib"] = now, max(now, rec["peak_warmup_gib"])
                else:  # failed or stopped during setup / warm-up: the peak so far
                    rec["peak_gib"] = rec["peak_all_gib"] = now
                rec["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / GIB, 2)
                rec["peak_above_resident_gib"] = round(rec["peak_gib"] - rec["resident_gib"], 2)
                torch.cuda.empty_cache()
            if rec.get("model_tflop_per_step") is not None and rec.get("step_ms"):
                fl = rec["flops_per_step"]
                rec["model_tflop_per_s"] = round(rec["model_tflop_per_step"] / (rec["step_ms"] / 1e3), 2)
                if peak:
                    rec["mfu"] = round(rec["model_tflop_per_s"] / peak, 4)
                    hw = (fl["forward"] + fl["backward"] + fl["recompute"]) / 1e12 / (rec["step_ms"] / 1e3)
                    rec["hfu"] = round(hw / peak, 4)
            if rec["status"] != "ok":
                print(f"{name} (micro-batch {mb}): {rec['status']}: {rec.get('error')}", flush=True)
                if rec.get("traceback"):
                    print(rec["traceback"], flush=True)
            print(md_row(rec), flush=True)
            if rec.get("profile"):
                print(profile_line(rec["profile"]), flush=True)
            result["total_s"] = round(time.perf_counter() - t_start, 1)
            write_json(a.out, result)
    result["total_s"] = round(time.perf_counter() - t_start, 1)
    print(f"\n{result['device']}, {res}px, random weights, {a.iters - a.warmup} timed step(s) after {a.warmup} warm-up; "
          f"peak = max_memory_allocated incl. the resident base; MFU vs {peak or '-'} TFLOP/s ({peak_src})")
    print(MD_HEAD)
    for r in result["records"]:
        print(md_row(r))
    for r in result["records"]:
        if r["method"] == ANCHOR and r.get("step_ms"):
            print(f"anchor ({ANCHOR}, micro-batch {r['micro_batch']}, {res}px): {r['step_ms']:.0f} ms, peak "
                  f"{r.get('peak_gib', '-')} GiB ({r.get('peak_above_resident_gib', '-')} GiB above the resident base); "
                  f"reference: 391 ms, 14.2 GiB at micro-batch 4, 1024², H200")
    result["complete"] = True
    write_json(a.out, result)
    if a.out:
        print(f"wrote {a.out}")
    tmp.cleanup()
    return rc


if __name__ == "__main__":
    sys.exit(main())
