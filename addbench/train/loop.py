"""The training loop. It knows nothing about the method: it runs the plug-in's turns by their ratios.

One *step* runs every turn whose ``every`` divides the step number, ``repeats`` times each, each call on
a fresh batch; then ``images_seen += batch``. A call is: zero grads -> (other networks frozen) ->
autocast loss -> backward -> clip each updated network's grad norm -> optimiser steps. After the step: the
logs read from the GPU in one copy (a non-finite loss stops the run), EMA of the student, logs averaged over
ranks, callbacks, and a checkpoint when one is due. No turn waits for the GPU, so an eager step's host keeps
launching kernels ahead of it. SIGTERM / SIGINT stop the loop after the step in progress, with one line that
names the state kept and the command that resumes (docs/training.md).
"""
from __future__ import annotations

import contextlib
import copy
import math
import os
import shlex
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from addbench.errors import AddbenchError
from addbench.train.accumulate import accumulation_rounds, mean_logs, micro_batches
from addbench.train.callbacks import (CollapseDetector, JsonlLogger, NonFiniteDetector, ProgressBar, SampleGrid,
                                      TensorBoardLogger, TrainingInterrupted, TrainingStopped, WandbLogger)
from addbench.train.checkpoint import EMA, clean_key, latest_state, model_state, restore, save_state, state_images
from addbench.train.config import checkpointed, config_hash, per_network
from addbench.train.data import TrainData
from addbench.train.optim import MasterAdamW, optimizer
from addbench.train.parallel import (DistContext, check_compile_mode, compile_units, enable_activation_checkpointing,
                                     is_sharded, mean_over_ranks, parallelize, reshard)
from addbench.train.plugin import Distiller, Turn, check_plugin


@dataclass
class LoopState:
    step: int
    images_seen: int
    budget: int
    run_dir: Path
    distiller: Distiller
    cfg: dict
    ctx: DistContext
    nets: dict[str, nn.Module] = field(default_factory=dict)
    opts: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    ema: EMA | None = None
    history: list[dict] = field(default_factory=list)  # averaged logs of every step of this process


def calls_at(turns: list[Turn], step: int) -> list[Turn]:
    """The turn calls of one step, in order (a turn appears ``repeats`` times)."""
    return [t for t in turns if step % t.every == 0 for _ in range(t.repeats)]


PRECISIONS = ("auto", "bf16", "bf16-pure", "fp32")


def precision(cfg: dict, device: torch.device) -> str:
    """``cfg["precision"]`` checked, ``auto`` resolved (bf16 on a GPU, fp32 on the CPU)."""
    prec = cfg["precision"]
    if prec not in PRECISIONS:
        raise AddbenchError(f"precision={prec!r}; use one of {', '.join(PRECISIONS)}")
    return ("bf16" if device.type == "cuda" else "fp32") if prec == "auto" else prec


def autocast(cfg: dict, device: torch.device):
    """The loss's context: bf16 autocast, or none (fp32). ``bf16-pure`` is bf16 autocast too, but the base's
    networks opt out of it (:func:`run_in_own_dtype`)."""
    if precision(cfg, device) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def run_in_own_dtype(module: nn.Module) -> None:
    """``precision=bf16-pure``: ``module``'s forward runs with autocast off, i.e. in its (bf16) parameters' dtype.

    Under bf16 autocast a bf16 diffusers network still runs its norms in fp32: every LayerNorm / GroupNorm casts
    its input and affine parameters up and its output back down (the next linear or conv), thousands of extra
    copy kernels per SDXL UNet call. Off, the norms read and write bf16 (accumulating in fp32 inside the kernel, as
    in bf16 inference); the plug-ins' own heads and losses stay under autocast. Hooks, not a wrapped ``forward``,
    so ``copy.deepcopy`` of the module keeps working on the copy."""
    bad = sorted({str(p.dtype).replace("torch.", "") for p in module.parameters()
                  if p.is_floating_point() and p.dtype != torch.bfloat16})
    if bad:
        raise AddbenchError(f"precision=bf16-pure runs the base's networks in their own dtype, but they hold "
                            f"{', '.join(bad)} weights: add base_dtype=bf16 (or use precision=bf16)")
    stack: list = []

    def enter(mod, args):
        ctx = torch.autocast(next(mod.parameters()).device.type, enabled=False)
        ctx.__enter__()
        stack.append(ctx)

    def leave(mod, args, out):
        stack.pop().__exit__(None, None, None)

    module.register_forward_pre_hook(enter)
    module.register_forward_hook(leave, always_call=True)


def _grad_norm(params, max_norm: float) -> torch.Tensor | float:
    """Clip the gradients to ``max_norm`` (0: no clipping) and return their norm before clipping, as a tensor
    (read with the step's other logs, :func:`read_logs`)."""
    params = [p for p in params if p.grad is not None]
    if not params:
        return 0.0
    n = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"))
    return n.full_tensor() if hasattr(n, "full_tensor") else n


def read_logs(logs: dict) -> dict[str, float]:
    """name -> float for a step's logs, whose values are floats or 0-dim tensors: the tensors are read in one
    device-to-host copy (one wait for the GPU per step, not one per value; an eager step launches kernels ahead
    of the GPU only between such waits)."""
    tensors = {k: v for k, v in logs.items() if isinstance(v, torch.Tensor)}
    out = {k: float(v) for k, v in logs.items() if k not in tensors}
    by_device: dict = {}
    for k, v in tensors.items():
        by_device.setdefault(v.device, []).append(k)
    for keys in by_device.values():
        values = torch.stack([tensors[k].detach().float().reshape(()) for k in keys]).tolist()
        out.update(zip(keys, values))
    return {k: out[k] for k in logs}


def default_callbacks(state: LoopState, resume_step: int) -> list:
    cfg, ctx, run_dir = state.cfg, state.ctx, state.run_dir
    cbs: list = [*validation_callback(state), NonFiniteDetector(), CollapseDetector(float(cfg["collapse_std"]))]
    if not ctx.is_main:
        return cbs
    cbs.append(JsonlLogger(run_dir, int(cfg["log_every_images"]), resume_step))
    if cfg["tensorboard"]:
        try:
            cbs.append(TensorBoardLogger(run_dir))
        except ImportError:
            pass  # tensorboard not installed: JSONL only
    if cfg["wandb"]:
        try:
            cbs.append(WandbLogger(run_dir, cfg))
        except ImportError:
            print("wandb=true but wandb is not installed; logging to metrics.jsonl only")
    if cfg["sample_every_images"]:
        prompts = (state.distiller.preview_prompts if hasattr(state.distiller, "preview_prompts") else None)
        cbs.append(SampleGrid(run_dir, int(cfg["sample_every_images"]),
                              prompts or [f"sample {i}" for i in range(int(cfg["sample_prompts"]))], int(cfg["seed"])))
    if cfg["progress"]:
        cbs.append(ProgressBar(state.budget, state.images_seen))
    return cbs


def validation_callback(state: LoopState) -> list:
    """``val_every_images``: the harness scores the student during training (every rank: gathering is collective);
    first in the list, so the loggers see its ``val/*`` values in the same step."""
    cfg = state.cfg
    if not int(cfg.get("val_every_images") or 0):
        return []
    from addbench.train.validation import Validation

    return [Validation(state.run_dir, int(cfg["val_every_images"]), str(cfg["val_suite"]), int(cfg["val_limit"]),
                       device=state.ctx.device, is_main=state.ctx.is_main)]


def setup(distiller: Distiller, base, cfg: dict, ctx: DistContext, run_dir: Path) -> LoopState:
    """Build networks (plug-in), parallelize, optimisers, EMA; restore the latest state if there is one."""
    nets = distiller.setup(base, cfg)
    check_plugin(distiller, nets)
    unknown = sorted(set(cfg["checkpoint_skip"] or ()) - set(nets) - {"teacher", "vae"})
    if unknown:
        raise AddbenchError(f"checkpoint_skip names {', '.join(unknown)}; use {', '.join(sorted(nets))}, teacher or vae")
    if precision(cfg, ctx.device) == "bf16-pure":  # the base's networks (teacher, its copies, VAE decoder) skip autocast
        kind = type(base.network)
        vae = getattr(base, "vae", None)
        pure = [base.network, *[n for n in nets.values() if type(n) is kind], getattr(vae, "decoder", vae)]
        for m in {id(m): m for m in pure if m is not None}.values():
            run_in_own_dtype(m)
    if cfg["channels_last"]:  # same math, cuDNN's preferred conv layout; set before compiling and sharding
        for m in [*nets.values(), getattr(base, "network", None), getattr(base, "vae", None)]:
            if m is not None:
                m.to(memory_format=torch.channels_last)
    mode = check_compile_mode(cfg["compile_mode"], cfg["compile"])
    for name, net in nets.items():
        nets[name] = parallelize(net.to(ctx.device), ctx, activation_checkpointing=checkpointed(cfg, name),
                                 compile=cfg["compile"], compile_mode=mode)
    if getattr(base, "network", None) is not None:  # the frozen teacher runs as often as a trained copy
        compile_units(base.network, cfg["compile"], mode)
    distiller.nets = nets
    vae = getattr(base, "vae", None)
    if checkpointed(cfg, "vae") and vae is not None:
        # pixel-space losses (ADD, DMDX ADP) backpropagate through the frozen VAE decoder: at SDXL 1024², micro-batch
        # 4, its activations alone overflow 141 GB; checkpointing it costs one more decoder forward per backward
        enable_activation_checkpointing(vae)
    trained = {n for t in distiller.turns for n in t.networks}
    unknown = sorted(k for k in cfg if k.startswith("master_weights_") and k[len("master_weights_"):] not in trained)
    if unknown:
        raise AddbenchError(f"{', '.join(unknown)} names no trained network; use master_weights_<name> with "
                            f"{', '.join(sorted(trained))}")
    opts = {name: optimizer([p for p in nets[name].parameters() if p.requires_grad],
                            distiller.optimizer_settings(name, cfg), per_network(cfg, "master_weights", name))
            for name in sorted(trained)}
    for name, opt in opts.items():
        if isinstance(opt, MasterAdamW) and is_sharded(nets[name]):
            raise AddbenchError(f"{name} is sharded with bf16/fp16 weights, whose small AdamW steps round away; under "
                                "FSDP2 train from fp32 weights (base_dtype=fp32; autocast computes in bf16) or set "
                                "master_weights=off")
    for opt in opts.values():  # the key :func:`warmup_` adds, there before a resume (FSDP2 loads only known keys)
        for group in opt.param_groups:
            group.setdefault("base_lr", group["lr"])
    ema = EMA(nets[distiller.student_network], float(cfg["ema"])) if float(cfg["ema"]) > 0 else None
    state = LoopState(0, 0, int(cfg["budget_images"]), Path(run_dir), distiller, cfg, ctx, nets, opts, ema)
    meta = restore(run_dir, nets=nets, opts=opts, ema=ema, ctx=ctx)
    if meta is not None:
        state.step, state.images_seen = meta["step"], meta["images_seen"]
    return state


def warmup_(opt: torch.optim.Optimizer, images_seen: int, warmup_images: int) -> None:
    """Linear learning-rate warm-up: the configured lr times min(1, (images_seen + 1) / warmup_images).
    The configured lr is kept in each param group as ``base_lr``, so a resumed run continues the ramp."""
    for group in opt.param_groups:
        group.setdefault("base_lr", group["lr"])
        frac = min(1.0, (images_seen + 1) / warmup_images) if warmup_images > 0 else 1.0
        group["lr"] = group["base_lr"] * frac


# ---- stopping on SIGTERM / SIGINT ----------------------------------------------------------------------

class StopOnSignal:
    """SIGTERM / SIGINT while training: the first lets the step in progress finish (with its checkpoint when one is
    due) and then stops the loop; a second stops it at once (the half step is dropped; the states on disk are whole).
    Installed in the main thread only; the previous handlers come back on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: int | None = None
        self._old: dict = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._old.items():
            if handler is not None:
                signal.signal(s, handler)

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise TrainingInterrupted(signum)
        self.signum = signum


def resume_command(run_dir: Path, ctx: DistContext) -> str:
    """The command that resumes this run: the one that started it (``sys.argv``), spelled ``addbench ...``,
    ``torchrun ... -m addbench.cli ...`` or ``python SCRIPT ...``; ``--out`` added where it was left to its default."""
    argv = list(sys.argv) or [""]
    cli = Path(argv[0]).name == "addbench" or Path(argv[0]).as_posix().endswith("addbench/cli.py")
    if not cli and not argv[0].endswith(".py"):
        return f"the same call again (out={run_dir})"
    args = argv[1:]
    if cli and not any(a == "--out" or a.startswith("--out=") for a in args):
        args += ["--out", str(run_dir)]
    if ctx.distributed:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", ctx.world_size))
        nodes = ctx.world_size // max(local, 1)
        head = ["torchrun", f"--nproc_per_node={local}", *([f"--nnodes={nodes}"] if nodes > 1 else [])]
        head += ["-m", "addbench.cli"] if cli else [argv[0]]
    else:
        head = ["addbench"] if cli else ["python", argv[0]]
    return shlex.join(head + args)


def stopped_line(state: LoopState, signum: int) -> str:
    """``stopped at step N (SIGTERM); kept state step_X (M images); resume with: COMMAND``."""
    last = latest_state(state.run_dir)
    kept = (f"kept state {last.name} ({state_images(last)} images)" if last is not None
            else "no state kept yet (the run starts over)")
    return (f"stopped at step {state.step} ({signal.Signals(signum).name}); {kept}; "
            f"resume with: {resume_command(state.run_dir, state.ctx)}")


def run(state: LoopState, data: TrainData, callbacks: list | None = None) -> LoopState:
    """Train until the budget is spent, then save the final state. SIGTERM / SIGINT stop it cleanly
    (:class:`StopOnSignal`): one line says what was kept and how to resume, and the process exits with 128 + the
    signal number (:class:`TrainingInterrupted`)."""
    cfg, ctx, nets = state.cfg, state.ctx, state.nets
    cbs = default_callbacks(state, state.step) if callbacks is None else callbacks
    # FSDP2: requires_grad is toggled on the sharded parameters, never on a root's unsharded copy (parallel.reshard)
    sharded = [name for name, net in nets.items() if is_sharded(net)]
    for name in sharded:
        reshard(nets[name])
    wants_grad = {name: [p.requires_grad for p in net.parameters()] for name, net in nets.items()}
    now_on: dict[str, bool] = {}

    def trainable(only: tuple[str, ...] | None):
        for name, net in nets.items():
            on = only is None or name in only or not cfg["freeze_others"]
            if name in sharded and now_on.get(name) != on:  # at most one root all-gather more per switch
                reshard(net)
            now_on[name] = on
            for p, g in zip(net.parameters(), wants_grad[name]):
                p.requires_grad_(g and on)

    stop, interrupted = StopOnSignal(), None
    try:
        with stop:
            _train(state, data, cbs, stop, trainable)
    except TrainingInterrupted as exc:
        interrupted = exc
        raise
    finally:
        trainable(None)
        for cb in cbs:
            cb.on_end(state)
        if interrupted is not None and ctx.is_main:
            print(stopped_line(state, interrupted.signum), file=sys.stderr, flush=True)
    return state


def _train(state: LoopState, data: TrainData, cbs: list, stop: StopOnSignal, trainable) -> None:
    """:func:`run`'s steps, its checkpoints and its final state; stops after a step when ``stop`` saw a signal."""
    cfg, ctx, d, nets, opts = state.cfg, state.ctx, state.distiller, state.nets, state.opts
    every_ckpt = int(cfg["ckpt_every_images"]) or max(int(cfg["batch"]), state.budget // 10)
    chash = config_hash({k: v for k, v in cfg.items() if k != "budget_images"})
    # compile_mode=reduce-overhead: each turn is one iteration for torch's CUDA-graph trees (the graph outputs of
    # the turn before are not read again: losses and logs are eager tensors)
    graph_turns = check_compile_mode(cfg["compile_mode"], cfg["compile"]) == "reduce-overhead"
    rounds = accumulation_rounds(cfg, ctx.world_size)
    sharded = sorted(n for n in nets if is_sharded(nets[n]))

    pending: list = []  # a dcp state still being written in the background (async_save)

    def settle() -> None:  # finish and publish it (collective)
        while pending:
            pending.pop().wait()

    def save() -> None:  # the state of this step (collective)
        settle()
        out = save_state(state.run_dir, step=state.step, images_seen=state.images_seen, nets=nets, opts=opts,
                         ema=state.ema, config_hash=chash, ctx=ctx, keep=int(cfg["keep_ckpts"]),
                         info={"fsdp2_sharded": sharded}, layout=str(cfg.get("state_layout", "files")),
                         background=bool(cfg.get("async_save", False)))
        if hasattr(out, "wait"):  # a PendingState (async_save); a folder otherwise
            pending.append(out)

    while state.images_seen < state.budget:
        logs: dict = {}  # floats or 0-dim tensors until the end of the step
        losses: list[tuple[str, torch.Tensor]] = []  # every turn call's loss, checked at the end of the step
        for call, turn in enumerate(calls_at(d.turns, state.step)):
            batch = data.batch(state.step, call, turn.name)
            for opt in opts.values():
                opt.zero_grad(set_to_none=True)
            trainable(turn.networks)
            parts, extras, loss = micro_batches(batch, rounds), [], 0.0
            for j, part in enumerate(parts):  # gradient accumulation: the rounds' gradients add up to the batch's
                if graph_turns:
                    torch.compiler.cudagraph_mark_step_begin()
                with autocast(cfg, ctx.device):
                    part_loss, extra = d.loss(turn.name, part, state.step)
                (part_loss / len(parts)).backward()
                loss = loss + part_loss.detach() / len(parts)
                extras.append(extra)
            extra = mean_logs(extras)
            for name in turn.networks:
                logs[f"{name}/grad_norm"] = _grad_norm(nets[name].parameters(), float(cfg["grad_clip"]))
            for name in turn.networks:
                warmup_(opts[name], state.images_seen, int(cfg["warmup_images"]))
                opts[name].step()
            losses.append((turn.name, loss.detach()))
            logs[f"{turn.name}/loss"] = loss.detach()
            logs.update(extra)
        trainable(None)
        # the step's one wait for the GPU. A non-finite loss stops the run here, before the EMA, callbacks and
        # checkpoint: the weights it updated in memory are dropped, the last state on disk stays good
        values = read_logs({**{f"#{i}": v for i, (_, v) in enumerate(losses)}, **logs})
        for i, (turn_name, _) in enumerate(losses):
            lv = values[f"#{i}"]
            if not math.isfinite(lv):
                if not ctx.distributed:  # publish the last good state (one process: no collective to agree on)
                    settle()
                raise TrainingStopped(f"step {state.step}: turn {turn_name!r} loss is {lv}; lower the learning "
                                      f"rate or check the loss (last good state in {state.run_dir / 'state'})")
        logs = {k: values[k] for k in logs}
        state.step += 1
        state.images_seen += int(cfg["batch"])
        if state.ema is not None:
            state.ema.update()
        if ctx.distributed:  # the ranks agree on stopping through the step's one all-reduce
            logs["#stop"] = float(stop.signum is not None)
        logs = mean_over_ranks(logs, ctx)
        agreed = logs.pop("#stop", None)
        state.history.append({"step": state.step, **logs})
        for cb in cbs:
            cb.on_step(state, logs)
        if state.images_seen // every_ckpt != (state.images_seen - int(cfg["batch"])) // every_ckpt:
            save()
        if (agreed > 0) if agreed is not None else (stop.signum is not None):
            settle()
            raise TrainingInterrupted(stop.signum or int(signal.SIGTERM))
    settle()
    last = latest_state(state.run_dir)
    if last is None or int(last.name.split("_")[1]) != state.step:
        save()
    settle()


def final_student(state: LoopState, base) -> nn.Module | None:
    """The student with final (or EMA) weights as a plain module on rank 0 (None on other ranks).
    Collective under FSDP2: every rank must call it."""
    net = state.nets[state.distiller.student_network]
    sd = {clean_key(k): v for k, v in model_state(net, state.ctx).items()}
    if state.ema is not None and state.cfg["export_ema"]:
        sd.update(state.ema.full_state())
    if not state.ctx.is_main:
        return None
    template = base.copy_network() if is_sharded(net) else copy.deepcopy(net)
    keys = {clean_key(k): k for k in template.state_dict()}
    template.load_state_dict({keys[k]: v for k, v in sd.items() if k in keys})
    return template.cpu()
