"""The engine's config keys, typed: :class:`EngineConfig` (its defaults are ``config.ENGINE_DEFAULTS``).

A distiller's own keys are a subclass of it (``config_class`` on the plug-in, e.g. ``distillers/dmd2/config.py``),
so ``plugin.conf`` reads every key of a run with its type: ``plugin.conf.batch``, ``plugin.conf.lambda_dm``.
A preset may override any of these keys; per-network keys (``lr_<name>``, ``betas_<name>``,
``weight_decay_<name>``, ``master_weights_<name>``) are declared by the distiller or added with ``+key=value``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


def _list(*items):
    return field(default_factory=lambda: list(items))


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    seed: int = 0
    batch: int = 4                 # images per step, all ranks together (global batch)
    budget_images: int = 1000      # stop once this many images were seen (steps x batch)
    micro_batch: int = 0           # images per process per forward/backward; batch / processes / micro_batch rounds
    # of gradient accumulation (0 = no accumulation). Same updates to float rounding
    precision: str = "auto"        # "auto" (bf16 autocast on GPU, fp32 on CPU) | "bf16" | "fp32" | "bf16-pure" (bf16
    # autocast, but the base's bf16 networks run without it: norms in bf16, no casts); checked by KEY_CHECKS
    base_dtype: str = "fp32"       # dtype the base (teacher + the copies made from it) loads in; autocast does bf16
    grad_checkpointing: bool = False  # activation checkpointing of every network (teacher and VAE included) ...
    checkpoint_skip: list[str] = _list()  # ... except these (plug-in network names, "teacher", "vae")
    compile: str = "none"          # torch.compile: none (= false) | blocks (= true; outermost repeated blocks) | layers
    # (innermost, e.g. every ResnetBlock2D) | layers:<Class>,... (only those classes)
    compile_mode: str = "default"  # torch.compile mode of those units: default | reduce-overhead (CUDA graphs; 45 s
    # ADM steps at SDXL scale, benchmarks/RESULTS.md) | max-autotune | max-autotune-no-cudagraphs
    channels_last: bool = False    # NHWC memory format for the 4D weights of every network, the teacher and the VAE
    master_weights: str = "on"     # bf16/fp16 trained weights: on = fp32 master copies and fp32 AdamW moments beside
    # them | cpu = the same in host memory, stepped there | off = AdamW on the bf16 weights in place (half the
    # optimizer memory, but lr <= 1e-5 steps round away); per network: +master_weights_<name>=cpu
    grad_clip: float = 10.0        # max grad norm per network; 0 = off
    lr: float = 1e-5               # AdamW defaults; per network: lr_<name>, betas_<name>, weight_decay_<name>
    betas: list[float] = _list(0.0, 0.99)
    weight_decay: float = 0.0
    eps: float = 1e-8
    warmup_images: int = 0         # linear learning-rate warm-up over this many images (every network); 0 = off
    ema: float = 0.0               # EMA decay of the student per step; 0 = off
    export_ema: bool = True        # export the EMA weights (when ema > 0)
    freeze_others: bool = True     # a turn's loss gets no parameter grads for networks it does not update
    log_every_images: int = 0      # 0 = every step
    ckpt_every_images: int = 0     # 0 = budget / 10
    keep_ckpts: int = 2
    state_layout: Literal["files", "dcp"] = "files"  # training states: files (gathered to rank 0; resume at the same
    # world size) | dcp (torch.distributed.checkpoint shards, safetensors only; resume at any world size)
    async_save: bool = False       # dcp states: copy to host memory, then write them in a background thread while
    # training goes on (the state is published, manifest last, when the write ends: at the next save or the run's end)
    sample_every_images: int = 0   # sample grid of the student; 0 = off
    sample_prompts: int = 8
    val_every_images: int = 0      # score the current student with the harness every this many images; 0 = off
    val_suite: str = "toy-val"     # ... on this suite (a validation split: never the one you report) ...
    val_limit: int = 0             # ... its first this many prompts (0 = all); values logged as val/<metric>
    collapse_std: float = 1e-4     # stop when a logged "*image_std" drops below this
    progress: bool = True          # rich progress bar with ETA (rank 0)
    tensorboard: bool = True
    wandb: bool = False
    prompts: str = ""              # .txt (one per line) | .jsonl ({"prompt"|"caption"|"text"}) | "toy" | "toy:N"
    real_images: str = ""          # folder of *.png|jpg + .txt captions | .jsonl manifest | "toy" | "toy:N"
    ode_pairs: str = ""            # directory written by addbench.train.odepairs
    resolution: int | list[int] = 32  # pixels, or [height, width]
