"""Processes and sharding: torchrun + torch.distributed, FSDP2 (``fully_shard``), torchtitan style.

``parallelize(model, ctx, ...)`` applies, in order: activation checkpointing -> (optional)
``torch.compile`` per block -> ``fully_shard`` per block then on the root. With one process it only
does the first two. Works on CPU with gloo (tests) and on GPUs with NCCL.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from addbench.errors import AddbenchError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistContext:
    """Read torchrun's env (RANK, WORLD_SIZE, LOCAL_RANK); start the process group if world > 1.

    ``device``: "cpu" | "cuda" | None (cuda when available). Backend: NCCL on cuda, gloo on cpu.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(kind, local) if kind == "cuda" else torch.device(kind)
    if kind == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        # CUDA: NCCL for the GPU tensors, gloo beside it for host tensors (DCP's async save needs a CPU backend)
        dist.init_process_group("cpu:gloo,cuda:nccl" if kind == "cuda" else "gloo",
                                device_id=dev if kind == "cuda" else None)
    return DistContext(rank, world, local, dev)


def shutdown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def mean_over_ranks(values: dict[str, float], ctx: DistContext) -> dict[str, float]:
    """Average a dict of floats over ranks (same keys on every rank)."""
    if not ctx.distributed or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64,
                     device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    t /= ctx.world_size
    return dict(zip(keys, t.tolist()))


@torch.no_grad()
def broadcast_from_main(model: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's parameters and buffers to every rank (before sharding: FSDP2 shards each rank's
    own values, so networks initialised from a per-rank RNG must be made identical first)."""
    if not ctx.distributed:
        return
    for t in list(model.parameters()) + list(model.buffers()):
        dist.broadcast(t.data, src=0)


def blocks_of(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks to checkpoint / compile / shard: children of the outermost ModuleLists
    (diffusers UNets: down_blocks, up_blocks; DiTs: transformer_blocks), plus ``mid_block``."""
    out: list[nn.Module] = []

    def visit(m: nn.Module):
        for name, child in m.named_children():
            if isinstance(child, nn.ModuleList):
                out.extend(child)
            elif name == "mid_block":
                out.append(child)
            else:
                visit(child)

    visit(model)
    return out


def layers_of(model: nn.Module) -> list[nn.Module]:
    """The innermost repeated blocks: :func:`blocks_of`, descended while a block holds repeated blocks of its own
    (SDXL's UNet: every ResnetBlock2D, BasicTransformerBlock, Downsample2D / Upsample2D; the glue around them
    stays eager)."""
    out: list[nn.Module] = []
    for blk in blocks_of(model):
        inner = blocks_of(blk)
        # a ModuleList of torch.nn layers (an attention's to_out = [Linear, Dropout]) marks a leaf, not more blocks
        leaf = not inner or any(type(m).__module__.startswith("torch.nn") for m in inner)
        out.extend([blk] if leaf else layers_of(blk))
    return out


COMPILE_UNITS = {"none": None, "false": None, "blocks": blocks_of, "true": blocks_of, "layers": layers_of}


def compile_mode(how) -> tuple[str, frozenset[str]]:
    """The engine's ``compile`` setting checked: (``none`` (also false) | ``blocks`` (also true) | ``layers``, the
    layer class names to keep). ``layers:BasicTransformerBlock,ResnetBlock2D`` keeps only those classes."""
    key, _, only = str(how).strip().partition(":")
    key = key.lower()
    if key not in COMPILE_UNITS or (only and key != "layers"):
        raise AddbenchError(f"compile={how!r}; use none, blocks (= true), layers or layers:<Class>[,<Class>]")
    return {"false": "none", "true": "blocks"}.get(key, key), frozenset(c.strip() for c in only.split(",") if c.strip())


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def check_compile_mode(mode, how) -> str | None:
    """The engine's ``compile_mode`` checked against ``compile``: None for ``default``, else the torch.compile mode
    (``reduce-overhead`` = CUDA graphs of each compiled unit, to cut the host's kernel launches)."""
    mode = str(mode).strip().lower()
    if mode not in COMPILE_MODES:
        raise AddbenchError(f"compile_mode={mode!r}; use one of {', '.join(COMPILE_MODES)}")
    if mode != "default" and compile_mode(how)[0] == "none":
        raise AddbenchError(f"compile_mode={mode} compiles nothing with compile={how}; add compile=blocks or layers")
    return None if mode == "default" else mode


def compile_units(model: nn.Module, how, mode: str | None = None) -> list[nn.Module]:
    """``torch.compile`` (``Module.compile``, lazy) of ``model``'s units: ``blocks`` the outermost repeated blocks
    (few large graphs), ``layers`` the innermost ones (small graphs shared by every instance of a layer class,
    since dynamo caches by code, not by module; ``layers:<Class>,...`` only those classes); ``none``: nothing.
    A container (the heads' ModuleList) stands for its members. ``mode``: torch.compile's (None: its default).
    Returns the compiled units."""
    how, only = compile_mode(how)
    if how == "none":
        return []
    units = COMPILE_UNITS[how](model) or (list(model) if isinstance(model, nn.ModuleList) else [model])
    if only:
        units = [u for u in units if type(u).__name__ in only]
    if how == "layers":  # one layer class meets many shapes and grad modes (teacher, trained copy, frozen copy)
        import torch._dynamo

        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        torch._dynamo.config.accumulated_recompile_limit = max(torch._dynamo.config.accumulated_recompile_limit, 2048)
    for unit in units:
        unit.compile(**({"mode": mode} if mode else {}))
    return units


def enable_activation_checkpointing(model: nn.Module) -> str:
    """diffusers' ``enable_gradient_checkpointing`` when the model has it, else wrap each block with
    ``torch.utils.checkpoint`` (non-reentrant). Returns which one was used."""
    if hasattr(model, "enable_gradient_checkpointing"):
        model.enable_gradient_checkpointing()
        return "diffusers"
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    def wrap(m: nn.Module):
        for name, child in m.named_children():
            if isinstance(child, nn.ModuleList):
                for i, blk in enumerate(child):
                    child[i] = checkpoint_wrapper(blk)
            else:
                wrap(child)

    wrap(model)
    return "checkpoint_wrapper"


def parallelize(model: nn.Module, ctx: DistContext, *, activation_checkpointing: bool = False,
                compile: bool | str = "none", compile_mode: str | None = None, shard: bool = True,
                mp_dtype: torch.dtype | None = None) -> nn.Module:
    """Rank 0's weights to all ranks -> activation checkpointing -> compile (:func:`compile_units`) -> FSDP2
    ``fully_shard`` (blocks, then root). In place; returns the module (references held elsewhere stay valid)."""
    broadcast_from_main(model, ctx)
    if activation_checkpointing:
        enable_activation_checkpointing(model)
    blocks = blocks_of(model)
    compile_units(model, compile, compile_mode)
    if ctx.distributed and shard and any(p.requires_grad for p in model.parameters()):
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        kw = {}
        if mp_dtype is not None:
            kw["mp_policy"] = MixedPrecisionPolicy(param_dtype=mp_dtype, reduce_dtype=torch.float32)
        for blk in blocks:
            fully_shard(blk, **kw)
        fully_shard(model, **kw)
    return model


def is_sharded(model: nn.Module) -> bool:
    """Whether FSDP2 sharded ``model`` (a DTensor parameter; or a ``fully_shard`` module, whose root may hold its
    unsharded plain parameters just now)."""
    if any(type(p).__name__ == "DTensor" for p in model.parameters()):
        return True
    if not dist.is_available():
        return False
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in model.modules())


def reshard(model: nn.Module) -> None:
    """Register the sharded parameters again on every FSDP2 module of ``model`` (``FSDPModule.reshard``, no
    communication; a no-op where already sharded), so that ``model.parameters()`` are the sharded ones.

    Toggle ``requires_grad`` only after this: FSDP2 copies it from the sharded parameter to the unsharded one at each
    all-gather, and the root (``reshard_after_forward=False``) stays unsharded after a forward without backward
    (a frozen network's turn), so a toggle then lands on the unsharded copy and the next all-gather undoes it: with
    micro-batches the root lost every round's gradient but the first (benchmarks/fsdp2_accumulation_repro.py)."""
    from torch.distributed.fsdp import FSDPModule

    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.reshard()
