"""``addbench train NAME --base B --out DIR [--set key=value ...] [--dry-run]``.

Resolves the plug-in (``DISTILLERS``) and the base (``BASES``), merges engine defaults < preset(method,
base) < overrides into a frozen config written as ``<out>/config.json``, trains (resuming from
``<out>/state`` when it exists: run the same command again) and exports the student to
``<out>/checkpoint`` (the addbench checkpoint directory that ``addbench eval --model`` loads).
Multi-process: ``torchrun --nproc_per_node N -m addbench.cli train ...`` (FSDP2; gloo on CPU, NCCL on GPU).
"""
from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import numpy as np
import torch

from addbench.errors import AddbenchError
from addbench.train.config import (ENGINE_DEFAULTS, FrozenConfig, apply_overrides, check_config, config_diff,
                                   deep_merge, freeze)
from addbench.train.engine_config import EngineConfig
from addbench.train.schema import build, check_types, field_types, type_name


def _distiller_class(distiller):
    if isinstance(distiller, str):
        from addbench.registry import DISTILLERS

        return DISTILLERS.get(distiller)
    return distiller


def _base_name(base) -> str:
    return base if isinstance(base, str) else getattr(base, "name", type(base).__name__)


def config_class(distiller):
    """The dataclass that types a distiller's config: its ``config_class`` (engine keys included), else the engine's
    (an untyped plug-in: its own keys are checked by KEY_CHECKS and their values' types only)."""
    return getattr(_distiller_class(distiller), "config_class", None) or EngineConfig


def _origins(preset: dict, name: str, overrides) -> dict[str, str]:
    out = {k: "default" for k in ENGINE_DEFAULTS}
    out.update({k: f"preset {name}" for k in preset})
    for item in overrides:
        key = item.split("=", 1)[0].strip().lstrip("+").split(".")[0]
        out[key] = "override"
    return out


def resolve_config(distiller, base, overrides: list[str] = ()) -> FrozenConfig:
    """Engine defaults < preset(method, base) < ``key=value`` overrides, checked against the distiller's typed
    config (``config_class``: every preset key declared, every value of its type, ints converted where a float is
    declared) and the value rules of ``KEY_CHECKS``, frozen; ``cfg.typed`` is the typed object."""
    cls = _distiller_class(distiller)
    name = _base_name(base)
    preset = cls.preset(name)
    conf_cls = config_class(cls)
    types = field_types(conf_cls)
    defaults = deep_merge(ENGINE_DEFAULTS, preset)
    cfg = apply_overrides(defaults, list(overrides), types)
    cfg = check_types(cfg, conf_cls, _origins(preset, name, overrides),
                      strict=getattr(cls, "config_class", None) is not None)
    check_config(cfg, defaults, typed_keys=frozenset(types))  # before anything is written: --dry-run refuses too
    cfg["distiller"] = cls.name or cls.__name__
    cfg["base"] = name
    out = freeze(cfg)
    out._typed = build(conf_cls, out)
    return out


def config_origins(distiller, base, overrides: list[str] = ()) -> dict[str, str]:
    """Where each top-level value of :func:`resolve_config` comes from: ``default`` (the engine's), ``preset <base>``
    (the distiller's preset for that base) or ``override`` (``--set``; the last one wins)."""
    cls = _distiller_class(distiller)
    name = _base_name(base)
    return _origins(cls.preset(name), name, overrides)


def describe_config(cfg: dict, origins: dict[str, str], types: dict | None = None) -> str:
    """``key  type = value  (origin)`` lines, one per top-level key, sorted: what ``--dry-run`` shows a person.
    ``types``: declared types (``schema.field_types``); a key none declares shows ``-``."""
    types = types or {}
    names = {k: type_name(types[k]) if k in types else "-" for k in cfg}
    width = max((len(k) for k in cfg), default=0)
    tw = max((len(t) for t in names.values()), default=0)
    return "".join(f"{k:<{width}}  {names[k]:<{tw}} = {json.dumps(v, default=str)}  "
                   f"({origins.get(k, 'set by the engine')})\n" for k, v in sorted(cfg.items()))


def batch_plan(cfg: dict, world_size: int) -> str:
    """One line: how a step's ``batch`` is cut over processes and accumulation rounds (``--dry-run``)."""
    from addbench.train.accumulate import accumulation_rounds

    rounds = accumulation_rounds(cfg, world_size)  # raises on a micro_batch that does not divide the batch
    local = int(cfg["batch"]) // max(1, world_size)
    return (f"step = batch {cfg['batch']} = {world_size} process(es) x {rounds} accumulation round(s) x "
            f"{local // rounds} images per forward/backward")


def load_base(base, cfg: dict, device: torch.device):
    """A ``Base`` object: passed through, or loaded from its registered name / pipeline dir.

    Trainable copies are made from the base's networks, so they load in fp32 (master weights; bf16 compute
    comes from autocast) unless ``base_dtype`` says otherwise -- on a GPU the bases default to bf16 for
    inference, and AdamW steps of 1e-5 vanish in bf16 weights.
    """
    if not isinstance(base, str):
        return base
    from addbench.bases.loading import load_base as _load

    return _load(base, device=device, dtype=cfg.get("base_dtype", "fp32"))


def _check_or_write_config(run_dir: Path, cfg: dict, is_main: bool) -> None:
    """A run that saved a state keeps its config (resumes must match it); one that never did (it failed in setup,
    e.g. on a bad value) has nothing to protect and takes the new one."""
    from addbench.train.checkpoint import latest_state

    path = run_dir / "config.json"
    if path.exists() and latest_state(run_dir) is not None:
        diff = config_diff(json.loads(path.read_text()), cfg)
        if diff:
            raise AddbenchError(f"{run_dir} holds a run with another config ({'; '.join(diff[:3])}); "
                                "run the same command to resume, or pick a new --out")
        return
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cfg, indent=1, sort_keys=True))
        os.replace(tmp, path)


def train(distiller, base, out: Path, overrides: list[str] = (), dry_run: bool = False, *,
          device: str | None = None, callbacks: list | None = None) -> Path:
    """Train ``distiller`` (registered name or Distiller class) on ``base`` (registered name or Base
    object); returns the exported checkpoint directory ``<out>/checkpoint`` (with ``dry_run``: prints the
    resolved config and returns ``<out>/config.json`` without writing anything)."""
    from addbench.train import loop
    from addbench.train.checkpoint import export_student
    from addbench.train.data import TrainData
    from addbench.train.parallel import barrier, init_distributed, shutdown

    cfg = resolve_config(distiller, base, overrides)
    run_dir = Path(out)
    if dry_run:  # the resolved config as JSON on stdout; each value with its type and origin on stderr
        print(json.dumps(cfg, indent=1, sort_keys=True))
        print(describe_config(cfg, config_origins(distiller, base, list(overrides)),
                              field_types(config_class(distiller))), end="", file=sys.stderr)
        print(batch_plan(cfg, int(os.environ.get("WORLD_SIZE", "1"))), file=sys.stderr)
        return run_dir / "config.json"
    from addbench.validate import device_available, writable_dir

    writable_dir(run_dir, "--out")
    device_available(device or os.environ.get("ADDBENCH_DEVICE"), "--device")
    ctx = init_distributed(device or os.environ.get("ADDBENCH_DEVICE"))
    try:
        _check_or_write_config(run_dir, cfg, ctx.is_main)
        barrier(ctx)
        seed = int(cfg["seed"])
        torch.manual_seed(seed + ctx.rank)
        np.random.seed((seed + ctx.rank) % 2**32)
        random.seed(seed + ctx.rank)
        base_obj = load_base(base, cfg, ctx.device)
        plugin = _distiller_class(distiller)(cfg)
        state = loop.setup(plugin, base_obj, cfg, ctx, run_dir)
        data = TrainData(cfg, plugin.data_needs, ctx.rank, ctx.world_size, ctx.device)
        loop.run(state, data, callbacks)
        student = loop.final_student(state, base_obj)
        ckpt = run_dir / "checkpoint"
        if ctx.is_main:
            network, sampler = plugin.student(student)
            export_student(ckpt, network=network, sampler=sampler, base=cfg["base"], distiller=cfg["distiller"],
                           config=cfg)
        barrier(ctx)
        return ckpt
    finally:
        shutdown(ctx)
