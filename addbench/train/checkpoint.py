"""Training state on disk: resume = run the same command again.

``<run>/state/step_000001200/`` holds ``networks.safetensors`` (every trainable network, keys
``<net>/<param>``), ``ema.safetensors``, ``optim.pt`` (full optimiser state dicts), ``rng_rank<r>.pt``
(torch CPU/CUDA, numpy, python) and ``meta.json`` (step, images seen, config hash). Each state is
written to a ``.tmp_*`` directory and renamed, so a killed run never leaves a half state; the last
``keep`` states are kept. With FSDP2 the full state dicts are gathered to rank 0, which writes them.
At the end :func:`export_student` writes the addbench checkpoint directory of DESIGN.md.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

from addbench.train.parallel import DistContext, barrier

_WRAP_PREFIXES = ("_checkpoint_wrapped_module.", "_orig_mod.", "_fsdp_wrapped_module.", "module.")


def clean_key(k: str) -> str:
    for p in _WRAP_PREFIXES:
        k = k.replace(p, "")
    return k


# ---- EMA ------------------------------------------------------------------------------------------

class EMA:
    """Exponential moving average of a network's parameters (works on FSDP2-sharded parameters). The shadows are
    fp32 whatever the network's dtype: a bf16 shadow would not move by (1 - decay) x a small difference."""

    def __init__(self, net: nn.Module, decay: float):
        self.decay = decay
        self.params = [(clean_key(n), p) for n, p in net.named_parameters()]
        self.shadow = {n: p.detach().float().clone() for n, p in self.params}

    @torch.no_grad()
    def update(self) -> None:
        pairs = [(self.shadow[n], p.detach()) for n, p in self.params]
        for i in range(0, len(pairs), 64):  # a bf16 network's fp32 copies 64 tensors at a time, not all at once
            chunk = pairs[i:i + 64]
            torch._foreach_lerp_([s for s, _ in chunk], [p.float() for _, p in chunk], 1 - self.decay)

    def full_state(self) -> dict[str, torch.Tensor]:
        return {n: (t.full_tensor() if hasattr(t, "full_tensor") else t).detach().cpu().clone()
                for n, t in self.shadow.items()}

    @torch.no_grad()
    def load_full_state(self, sd: dict[str, torch.Tensor]) -> None:
        for n, t in self.shadow.items():
            src = sd[n]
            if hasattr(t, "device_mesh"):
                from torch.distributed.tensor import distribute_tensor

                src = distribute_tensor(src.to(t.device), t.device_mesh, t.placements)
            t.copy_(src)


# ---- full state dicts (collective under FSDP2) -----------------------------------------------------

def _opts(ctx: DistContext, cpu_offload: bool = True):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=cpu_offload and ctx.distributed)


def model_state(net: nn.Module, ctx: DistContext) -> dict[str, torch.Tensor]:
    if not ctx.distributed:
        return {k: v.detach().cpu() for k, v in net.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(net, options=_opts(ctx))


def _rng_state() -> dict:
    s = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def _set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def latest_state(run_dir: Path) -> Path | None:
    root = Path(run_dir) / "state"
    done = sorted(p for p in root.glob("step_*") if (p / "meta.json").is_file()) if root.is_dir() else []
    return done[-1] if done else None


def save_state(run_dir: Path, *, step: int, images_seen: int, nets: dict[str, nn.Module],
               opts: dict[str, torch.optim.Optimizer], ema: EMA | None, config_hash: str,
               ctx: DistContext, keep: int = 2, info: dict | None = None) -> Path:
    from safetensors.torch import save_file

    root = Path(run_dir) / "state"
    final = root / f"step_{step:09d}"
    tmp = root / f".tmp_step_{step:09d}"
    if ctx.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier(ctx)
    torch.save(_rng_state(), tmp / f"rng_rank{ctx.rank}.pt")
    weights = {f"{name}/{k}": v for name, net in nets.items() for k, v in model_state(net, ctx).items()}
    optim = {}
    for name, opt in opts.items():
        if ctx.distributed:
            from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

            optim[name] = get_optimizer_state_dict(nets[name], opt, options=_opts(ctx))
        else:
            optim[name] = opt.state_dict()
    ema_sd = ema.full_state() if ema is not None else None
    if ctx.is_main:
        save_file({k: v.detach().clone().contiguous() for k, v in weights.items()}, str(tmp / "networks.safetensors"))
        if ema_sd is not None:
            save_file({k: v.contiguous() for k, v in ema_sd.items()}, str(tmp / "ema.safetensors"))
        torch.save(optim, tmp / "optim.pt")
        (tmp / "meta.json").write_text(json.dumps({"step": step, "images_seen": images_seen,
                                                   "world_size": ctx.world_size, "config_hash": config_hash,
                                                   **(info or {})}))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in sorted(p for p in root.glob("step_*") if p != final)[: max(0, len(list(root.glob("step_*"))) - keep)]:
            shutil.rmtree(old, ignore_errors=True)
    barrier(ctx)
    return final


def load_state(path: Path, *, nets: dict[str, nn.Module], opts: dict[str, torch.optim.Optimizer],
               ema: EMA | None, ctx: DistContext) -> dict:
    """Restore networks, optimisers, EMA and this rank's RNG; returns meta (step, images_seen)."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = json.loads((path / "meta.json").read_text())
    weights = load_file(str(path / "networks.safetensors"))
    optim = torch.load(path / "optim.pt", weights_only=False)
    for name, net in nets.items():
        sd = {k.split("/", 1)[1]: v for k, v in weights.items() if k.split("/", 1)[0] == name}
        if ctx.distributed:
            from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

            set_model_state_dict(net, sd, options=_opts(ctx, cpu_offload=False))
            if name in opts:
                set_optimizer_state_dict(net, opts[name], optim[name], options=_opts(ctx, cpu_offload=False))
        else:
            net.load_state_dict(sd)
            if name in opts:
                opts[name].load_state_dict(optim[name])
    if ema is not None and (path / "ema.safetensors").exists():
        ema.load_full_state(load_file(str(path / "ema.safetensors")))
    rng = path / f"rng_rank{ctx.rank}.pt"
    if rng.exists() and meta.get("world_size", 1) == ctx.world_size:
        _set_rng_state(torch.load(rng, weights_only=False))
    return meta


# ---- export -----------------------------------------------------------------------------------------

def export_student(out: Path, *, network: nn.Module, sampler, base: str, distiller: str, config: dict) -> Path:
    """Write the addbench checkpoint directory (DESIGN.md) atomically (tmp dir + rename). Diffusers networks
    go through ``addbench.bases.checkpoint.save_checkpoint`` (``save_pretrained``, what ``addbench eval
    --model`` loads); other modules (tests, custom students) get ``network/model.safetensors``."""
    from safetensors.torch import save_file

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if hasattr(network, "save_pretrained"):
        from addbench.bases.checkpoint import save_checkpoint

        save_checkpoint(tmp, base, network, sampler, distiller, dict(config))
    else:
        (tmp / "network").mkdir(parents=True)
        sd = {clean_key(k): v.detach().cpu().clone().contiguous() for k, v in network.state_dict().items()}
        save_file(sd, str(tmp / "network" / "model.safetensors"))
        meta = {"format": "addbench-checkpoint/1", "base": base, "sampler": sampler.to_dict(),
                "distiller": distiller, "config": dict(config)}
        (tmp / "addbench_checkpoint.json").write_text(json.dumps(meta, indent=1, default=str))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out
