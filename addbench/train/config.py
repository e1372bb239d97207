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

from addbench import validate as V
from addbench.errors import AddbenchError
from addbench.train.engine_config import EngineConfig
from addbench.train.schema import defaults_of, describe, parse_as, type_name, where

# Keys the engine reads, with their defaults: the fields of EngineConfig (engine_config.py, with what each means).
# A plug-in preset may override any of them; plug-ins declare their own keys in a subclass (``config_class``).
ENGINE_DEFAULTS: dict[str, Any] = defaults_of(EngineConfig)

# Keys that may change between the first run and a resume (everything else must match).
RESUMABLE_CHANGES = frozenset({"budget_images", "log_every_images", "ckpt_every_images", "keep_ckpts",
                               "sample_every_images", "tensorboard", "wandb",
                               "progress",  # display only (issue 18: it blocked a resume)
                               "micro_batch",  # memory only: the same updates to float rounding (accumulate.py)
                               "val_every_images", "val_suite", "val_limit",  # what is logged, not what is trained
                               "state_layout", "async_save",  # how states are written; a resume reads either
                               # memory/speed only, same math: e.g. turn checkpointing on to resume after an OOM
                               "grad_checkpointing", "checkpoint_skip", "channels_last"})


class FrozenConfig(dict):
    """A dict that refuses mutation (json.dumps still works: it is a dict)."""

    def _ro(self, *a, **k):
        raise TypeError("the resolved config is frozen; pass overrides as key=value instead")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _ro  # type: ignore[assignment]

    def __deepcopy__(self, memo):
        return thaw(self)

    @property
    def typed(self):
        """The run's typed config (the distiller's ``config_class`` instance, engine keys included), attached by
        ``entry.resolve_config``; ``schema.typed(cfg, cls)`` builds one for any dict."""
        cached = getattr(self, "_typed", None)
        if cached is None:
            raise AttributeError("this config was not made by resolve_config; use schema.typed(cfg, ConfigClass)")
        return cached


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


def apply_overrides(cfg: dict, overrides: list[str], types: dict[str, Any] | None = None) -> dict:
    """A copy of ``cfg`` with each ``key=value`` (or ``+key=value`` for a new key) applied in order. ``types``: the
    declared type of each top-level key (``schema.field_types``): such a key is read as its type, and may be set
    without ``+`` when ``cfg`` lacks it; other keys are read as the type of the value they replace."""
    types = types or {}
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
        declared = types.get(key) if not parents else None
        if leaf not in node and not add and declared is None:
            close = difflib.get_close_matches(key, sorted(set(_all_keys(out)) | set(types)), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; use +key=value to add a new key"
            raise AddbenchError(f"unknown config key {key!r}{hint} (see --dry-run for all keys)")
        if declared is not None:
            try:
                node[leaf] = parse_as(raw, declared)
            except ValueError as exc:
                raise V.fail(key, raw, describe(declared), f"declared {type_name(declared)}, {where('override')}: {exc}") \
                    from None
            continue
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


# ---- value checks: every key of a resolved config, by a table of patterns, else by the value's type ------------
def _int_min(minimum: int, hint: str = ""):
    return lambda v, key, cfg: V.int_at_least(v, minimum, key, hint)


def _fractions(lo_open: bool = False, hi_open: bool = False, n: int | None = None, hint: str = ""):
    def check(v, key, cfg):
        interval = f"{'(' if lo_open else '['}0, 1{')' if hi_open else ']'}"
        rule = f"a list of {str(n) + ' ' if n else ''}numbers in {interval}"
        if not isinstance(v, (list, tuple)) or (n is not None and len(v) != n):
            raise V.fail(key, v, rule, hint)
        for x in v:
            f = V.in_range(x, 0.0, 1.0, key, hint, hi_open=hi_open)
            if lo_open and f == 0:
                raise V.fail(key, v, rule, hint)
    return check


def _budget(v, key, cfg):
    batch = cfg.get("batch")
    minimum = batch if isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1 else 1
    V.int_at_least(v, minimum, key, f"images seen in training; at least one step of batch={minimum}")


def _precision(v, key, cfg):
    from addbench.train.loop import PRECISIONS
    if v not in PRECISIONS:
        raise AddbenchError(f"{key}={v!r}; use one of {', '.join(PRECISIONS)} (autocast of the training losses)")


def _async_save(v, key, cfg):
    if v and cfg.get("state_layout", "files") != "dcp":
        raise AddbenchError(f"{key}=true needs state_layout=dcp (the files layout gathers the state to rank 0); "
                            "add --set state_layout=dcp")


def _compile(v, key, cfg):
    from addbench.train.parallel import compile_mode
    compile_mode(v)


def _compile_mode(v, key, cfg):
    from addbench.train.parallel import check_compile_mode
    check_compile_mode(v, cfg.get("compile", "none"))


# Value rules: (fnmatch pattern, check(value, key, cfg)); the first matching pattern checks the key. Types are not
# checked here but by the dataclasses (schema.check_types: EngineConfig and the plug-in's config_class), before
# these rules run. Keys no pattern matches: numbers (also inside lists) must be finite; a key no dataclass declares
# (``+key=value``, or an untyped plug-in's) keeps the type of its default (booleans stay booleans).
KEY_CHECKS: list[tuple[str, Any]] = [
    ("seed", _int_min(0, "the random seed")),
    ("batch", _int_min(1, "images per step, all ranks together")),
    ("micro_batch", _int_min(0, "images per process per forward/backward; 0 = the whole per-process batch")),
    ("budget_images", _budget),
    ("precision", _precision),
    ("base_dtype", lambda v, key, cfg: V.dtype_name(v, key)),
    ("compile", _compile),
    ("async_save", _async_save),
    ("compile_mode", _compile_mode),
    ("master_weights*", lambda v, key, cfg: master_mode(v)),
    ("lr", lambda v, key, cfg: V.positive(v, key, "the AdamW learning rate")),
    ("lr_*", lambda v, key, cfg: V.positive(v, key, "a network's AdamW learning rate")),
    ("betas*", _fractions(hi_open=True, n=2, hint="AdamW's (beta1, beta2), e.g. 0.9,0.999")),
    ("weight_decay*", lambda v, key, cfg: V.non_negative(v, key, "AdamW weight decay")),
    ("eps", lambda v, key, cfg: V.positive(v, key, "AdamW epsilon")),
    ("grad_clip", lambda v, key, cfg: V.non_negative(v, key, "max grad norm; 0 = off")),
    ("ema", lambda v, key, cfg: V.in_range(v, 0.0, 1.0, key, "EMA decay per step; 0 = off")),
    ("real_images", lambda v, key, cfg: None),  # a source (folder, manifest, toy:N), not a count
    ("*_images", _int_min(0, "a number of images; 0 = off or the default")),
    ("keep_ckpts", _int_min(1, "training states kept")),
    ("sample_prompts", _int_min(1, "prompts in the sample grid")),
    ("val_limit", _int_min(0, "prompts of val_suite to score; 0 = all")),
    ("collapse_std", lambda v, key, cfg: V.non_negative(v, key, "0 = never stop")),
    ("resolution", lambda v, key, cfg: [V.int_at_least(x, 1, key, "image side in pixels (or [height, width])")
                                        for x in (v if isinstance(v, (list, tuple)) else [v])]),
    ("lambda_*", lambda v, key, cfg: V.non_negative(v, key, "a loss weight; 0 = off")),
    ("*_steps", _int_min(1, "a number of steps")),
    ("fake_per_g", _int_min(1, "fake-score updates per generator update")),
    ("head_width", _int_min(0, "0 = the bottleneck's channels")),
    ("*_guidance", lambda v, key, cfg: [V.non_negative(x, key, "a CFG scale (or a [lo, hi] range); 1 = none")
                                        for x in (v if isinstance(v, (list, tuple)) else [v])]),
    ("dm_t", _fractions(n=2, hint="[lo, hi] fractions of T")),
    ("gan_t_max", lambda v, key, cfg: V.in_range(v, 0.0, 1.0, key, "a fraction of T")),
    ("dt_fraction", lambda v, key, cfg: V.in_range(v, 0.0, 1.0, key, "a fraction of T")),
    ("gen_t", lambda v, key, cfg: V.non_negative(v, key, "the generator's conditioning timestep")),
]


def _by_type(v, key: str) -> None:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return
    if isinstance(v, (int, float)):
        V.finite(v, key)
    elif isinstance(v, (list, tuple)):
        for x in v:
            _by_type(x, key)


def check_config(cfg: dict, defaults: dict | None = None, prefix: str = "", root: dict | None = None,
                 typed_keys: frozenset = frozenset()) -> None:
    """Every key of ``cfg`` checked (finite numbers, signs, ranges, choices); the first bad one raises one line
    ``key=value: must be ... (what it is)``. ``defaults``: the values before overrides -- a key whose default is a
    boolean must stay a boolean (``maybe`` is refused), a number must stay a number; ``typed_keys``: keys whose
    type a dataclass checked already (their default's type is not imposed)."""
    import fnmatch

    root = cfg if root is None else root
    defaults = defaults or {}
    for k, v in cfg.items():
        key = prefix + k
        if isinstance(v, dict):
            check_config(v, defaults.get(k) if isinstance(defaults.get(k), dict) else {}, key + ".", root)
            continue
        like = defaults.get(k) if prefix or k not in typed_keys else None
        if isinstance(like, bool) and not isinstance(v, bool):
            raise V.fail(key, v, "true or false")
        check = next((c for pat, c in KEY_CHECKS if fnmatch.fnmatchcase(k, pat)), None) if not prefix else None
        # a key with its own check decides its shapes (resolution 32 or [32, 32]); others keep the default's type
        if check is None and isinstance(like, (int, float)) and not isinstance(like, bool) and \
                (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise V.fail(key, v, "a number", f"the default is {like!r}")
        if check is not None:
            check(v, key, root)
        else:
            _by_type(v, key)
