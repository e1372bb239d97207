"""Resolved run configs: engine defaults < preset(method, base) < ``key=value`` overrides.

A config is a flat JSON-able dict (nested dicts are allowed and addressed with dots: ``a.b=1``).
Overrides are typed from the value they replace, so ``--set batch=8`` stays an int and
``--set betas=0,0.99`` stays a list of floats; ``+key=value`` adds a key the preset does not have.
The resolved config is frozen (:class:`FrozenConfig`) and written beside the run as ``config.json``.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
from typing import Any

from addbench.errors import AddbenchError

# Keys the engine reads (a plug-in preset may override any of them; plug-ins add their own keys).
ENGINE_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "batch": 4,                 # images per step, all ranks together (global batch)
    "budget_images": 1000,      # stop once this many images were seen (steps x batch)
    "precision": "auto",        # "auto" (bf16 autocast on GPU, fp32 on CPU) | "bf16" | "fp32" | "bf16-pure" (bf16
                                # autocast, but the base's bf16 networks run without it: norms in bf16, no casts)
    "base_dtype": "fp32",       # dtype the base (teacher + the copies made from it) loads in; autocast does bf16
    "grad_checkpointing": False,  # activation checkpointing of every network (teacher and VAE included) ...
    "checkpoint_skip": [],      # ... except these (plug-in network names, "teacher", "vae"): memory traded for speed
    "compile": "none",          # torch.compile: none (= false) | blocks (= true; outermost repeated blocks) | layers
                                # (innermost, e.g. every ResnetBlock2D) | layers:<Class>,... (only those classes)
    "compile_mode": "default",  # torch.compile mode of those units: default | reduce-overhead (CUDA graphs; 45 s
                                # ADM steps at SDXL scale, benchmarks/RESULTS.md) | max-autotune | max-autotune-no-cudagraphs
    "channels_last": False,     # NHWC memory format for the 4D weights of every network, the teacher and the VAE
    "master_weights": "on",     # bf16/fp16 trained weights: on = fp32 master copies and fp32 AdamW moments beside
                                # them | cpu = the same in host memory, stepped there | off = AdamW on the bf16
                                # weights in place (half the optimizer memory, but lr <= 1e-5 steps round away);
                                # per network: +master_weights_<name>=cpu (e.g. the fake score's on the host only)
    "grad_clip": 10.0,          # max grad norm per network; 0 = off
    "lr": 1e-5,                 # AdamW defaults; per network: lr_<name>, betas_<name>, weight_decay_<name>
    "betas": [0.0, 0.99],
    "weight_decay": 0.0,
    "eps": 1e-8,
    "warmup_images": 0,         # linear learning-rate warm-up over this many images (every network); 0 = off
    "ema": 0.0,                 # EMA decay of the student per step; 0 = off
    "export_ema": True,         # export the EMA weights (when ema > 0)
    "freeze_others": True,      # a turn's loss gets no parameter grads for networks it does not update
    "log_every_images": 0,      # 0 = every step
    "ckpt_every_images": 0,     # 0 = budget / 10
    "keep_ckpts": 2,
    "sample_every_images": 0,   # sample grid of the student; 0 = off
    "sample_prompts": 8,
    "collapse_std": 1e-4,       # stop when a logged "*image_std" drops below this
    "progress": True,           # rich progress bar with ETA (rank 0)
    "tensorboard": True,
    "wandb": False,
    "prompts": "",              # .txt (one per line) | .jsonl ({"prompt"|"caption"|"text"}) | "toy" | "toy:N"
    "real_images": "",          # folder of *.png|jpg + .txt captions | .jsonl manifest | "toy" | "toy:N"
    "ode_pairs": "",            # directory written by addbench.train.odepairs
    "resolution": 32,
}

# Keys that may change between the first run and a resume (everything else must match).
RESUMABLE_CHANGES = frozenset({"budget_images", "log_every_images", "ckpt_every_images", "keep_ckpts",
                               "sample_every_images", "tensorboard", "wandb",
                               # memory/speed only, same math: e.g. turn checkpointing on to resume after an OOM
                               "grad_checkpointing", "checkpoint_skip", "channels_last"})


class FrozenConfig(dict):
    """A dict that refuses mutation (json.dumps still works: it is a dict)."""

    def _ro(self, *a, **k):
        raise TypeError("the resolved config is frozen; pass overrides as key=value instead")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _ro  # type: ignore[assignment]

    def __deepcopy__(self, memo):
        return thaw(self)


def freeze(d: dict) -> FrozenConfig:
    return FrozenConfig({k: freeze(v) if isinstance(v, dict) else v for k, v in d.items()})


def thaw(d: dict) -> dict:
    return {k: thaw(v) if isinstance(v, dict) else (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def deep_merge(a: dict, b: dict) -> dict:
    out = thaw(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _parse_bool(s: str) -> bool:
    low = s.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {s!r}")


def _parse_untyped(s: str) -> Any:
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        return s


def parse_value(raw: str, like: Any) -> Any:
    """``raw`` converted to the type of ``like`` (the value it replaces)."""
    if isinstance(like, bool):
        return _parse_bool(raw)
    if isinstance(like, int):
        v = float(raw)  # accepts 1e6
        if v != int(v):
            raise ValueError(f"not an integer: {raw!r}")
        return int(v)
    if isinstance(like, float):
        return float(raw)
    if isinstance(like, (list, tuple)):
        s = raw.strip()
        items = json.loads(s) if s.startswith("[") else [p for p in s.split(",") if p.strip() != ""]
        if like and not s.startswith("["):
            items = [parse_value(str(p), like[0]) for p in items]
        return list(items)
    if isinstance(like, dict):
        raise ValueError("is a group; set one of its keys with a dot: " + ", ".join(sorted(like)))
    if like is None:
        return None if raw.strip().lower() in ("none", "null") else _parse_untyped(raw)
    return raw


def _all_keys(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        out.append(prefix + k)
        if isinstance(v, dict):
            out += _all_keys(v, prefix + k + ".")
    return out


def apply_overrides(cfg: dict, overrides: list[str]) -> dict:
    """A copy of ``cfg`` with each ``key=value`` (or ``+key=value`` for a new key) applied in order."""
    out = thaw(cfg)
    for item in overrides:
        if "=" not in item:
            raise AddbenchError(f"override {item!r} is not key=value (e.g. --set batch=8)")
        key, raw = item.split("=", 1)
        key = key.strip()
        add = key.startswith("+")
        key = key.lstrip("+")
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            if not isinstance(node.get(p), dict):
                if not add:
                    raise AddbenchError(f"unknown config key {key!r}; use +{key}=... to add it")
                node[p] = {}
            node = node[p]
        if leaf not in node and not add:
            close = difflib.get_close_matches(key, _all_keys(out), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; use +key=value to add a new key"
            raise AddbenchError(f"unknown config key {key!r}{hint} (see --dry-run for all keys)")
        try:
            node[leaf] = parse_value(raw, node[leaf]) if leaf in node else _parse_untyped(raw)
        except ValueError as exc:
            raise AddbenchError(f"bad value for {key}: {exc}") from None
    return out


def per_network(cfg, key: str, name: str):
    """``<key>_<name>`` where the config has it (e.g. ``lr_fake``, ``master_weights_fake``), else ``<key>``."""
    return cfg.get(f"{key}_{name}", cfg[key])


def checkpointed(cfg, name: str) -> bool:
    """Whether network ``name`` (a plug-in network, "teacher" or "vae") runs with activation checkpointing."""
    return bool(cfg.get("grad_checkpointing")) and name not in (cfg.get("checkpoint_skip") or ())


def config_hash(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


MASTER_WEIGHTS = {"on": "on", "true": "on", "cpu": "cpu", "off": "off", "false": "off"}


def _master_place(value) -> str | None:
    """``on`` | ``cpu`` | ``off`` for a ``master_weights`` value however spelled, None for an unknown one."""
    return MASTER_WEIGHTS.get(str(value).strip().lower())


def master_mode(value) -> str:
    """``master_weights`` checked: ``on`` (fp32 masters beside the weights), ``cpu`` (in host memory) or ``off``."""
    mode = _master_place(value)
    if mode is None:
        raise AddbenchError(f"master_weights={value!r}; use on (fp32 masters beside the weights), cpu (in host "
                            "memory) or off (AdamW on the bf16 weights in place)")
    return mode


def _masters_moved_only(key: str, old: dict, new: dict) -> bool:
    """``master_weights`` / ``master_weights_<name>`` changed between ``on`` and ``cpu`` only: where the fp32 masters
    live, not what they compute (the same update, the same saved state), e.g. to resume on a smaller GPU."""
    if key != "master_weights" and not key.startswith("master_weights_"):
        return False
    modes = {_master_place(c.get(key, c.get("master_weights"))) for c in (old, new)}
    return len(modes) == 1 or modes <= {"on", "cpu"}  # the same mode spelled or placed differently, or on <-> cpu


def config_diff(old: dict, new: dict, ignore=RESUMABLE_CHANGES) -> list[str]:
    """Keys (dotted) whose values differ between two resolved configs, minus ``ignore`` and master weights moved
    between the GPU and the host (:func:`_masters_moved_only`)."""
    out = []
    for k in sorted(set(old) | set(new)):
        if k in ignore or _masters_moved_only(k, old, new):
            continue
        a, b = old.get(k, "<missing>"), new.get(k, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{k}.{s}" for s in config_diff(a, b, ignore=())]
        elif json.dumps(a, default=str) != json.dumps(b, default=str):
            out.append(f"{k}: {a!r} -> {b!r}")
    return out
