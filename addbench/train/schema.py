"""Typed configs: a frozen dataclass declares the keys of a run and their types; this module checks a flat config
dict against it and builds the typed object.

Supported annotations: ``bool``, ``int``, ``float`` (an int is accepted and converted), ``str``, ``list[X]``
(a tuple is accepted), ``Literal[...]`` (fixed choices), ``X | Y`` (``None`` included) and ``Any``.
Types are checked here; value ranges (``lr > 0``, ``batch >= 1``) by ``config.KEY_CHECKS``.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from typing import Any, Literal

from addbench import validate as V
from addbench.errors import AddbenchError


@functools.lru_cache(maxsize=None)
def field_types(cls) -> dict[str, Any]:
    """Key -> type annotation of every field of dataclass ``cls`` (its bases' included)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def defaults_of(cls) -> dict[str, Any]:
    """Key -> default of every field of ``cls`` that has one (fresh lists each call)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _args(tp) -> tuple[Any, tuple]:
    origin = typing.get_origin(tp)
    if origin is types.UnionType:
        origin = typing.Union
    return origin, typing.get_args(tp)


def type_name(tp) -> str:
    """Short spelling of an annotation for ``--dry-run``: ``int``, ``list[float]``, ``files|dcp``, ``int | list[int]``."""
    origin, args = _args(tp)
    if origin is typing.Union:
        return " | ".join(type_name(a) for a in args)
    if origin is Literal:
        return "|".join(str(a) for a in args)
    if origin in (list, tuple):
        return f"list[{type_name(args[0]) if args else 'any'}]"
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


def describe(tp) -> str:
    """What a value of ``tp`` must be, in words (after "must be")."""
    origin, args = _args(tp)
    if origin is typing.Union:
        return " or ".join(describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (list, tuple):
        inner = describe(args[0]) if args else "values"
        return "a list of " + {"an integer": "integers", "a number": "numbers", "a string": "strings",
                               "true or false": "booleans"}.get(inner, inner)
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "none",
            dict: "a group of keys"}.get(tp, type_name(tp))


class Mismatch(ValueError):
    """A value is not of its declared type."""


def coerce(value: Any, tp) -> Any:
    """``value`` checked against ``tp`` and converted where allowed (int -> float, tuple -> list); else Mismatch."""
    origin, args = _args(tp)
    if tp is Any:
        return value
    if origin is typing.Union:
        for a in args:
            try:
                return coerce(value, a)
            except Mismatch:
                pass
        raise Mismatch(value)
    if origin is Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
        raise Mismatch(value)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise Mismatch(value)
        return [coerce(v, args[0]) for v in value] if args else list(value)
    if tp is type(None):
        if value is None:
            return None
        raise Mismatch(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise Mismatch(value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise Mismatch(value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise Mismatch(value)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise Mismatch(value)


def _looks_like_list(raw: str) -> bool:
    return raw.strip().startswith("[") or "," in raw


def parse_as(raw: str, tp) -> Any:
    """The text of a ``--set key=value`` read as ``tp``; ValueError when it cannot be."""
    from addbench.train.config import _parse_untyped, parse_value

    origin, args = _args(tp)
    if origin is typing.Union:  # a list member first when the text looks like a list, else the others in order
        order = sorted(args, key=lambda a: _args(a)[0] not in (list, tuple)) if _looks_like_list(raw) else \
            sorted(args, key=lambda a: _args(a)[0] in (list, tuple))
        errors = []
        for a in order:
            try:
                return coerce(parse_as(raw, a), a)
            except (ValueError, json.JSONDecodeError) as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if errors else f"not {describe(tp)}: {raw!r}")
    if origin in (list, tuple):
        s = raw.strip()
        if s.startswith("["):
            return json.loads(s)
        return [parse_as(p, args[0]) if args else _parse_untyped(p) for p in s.split(",") if p.strip() != ""]
    if tp is type(None):
        if raw.strip().lower() in ("none", "null"):
            return None
        raise ValueError(f"not none: {raw!r}")
    if tp in (bool, int, float):
        return parse_value(raw, tp())
    if tp is str or origin is Literal:
        return raw
    return _parse_untyped(raw)


def where(origin: str | None) -> str:
    """``from preset toy`` / ``from --set`` / ``engine default`` for an origin of ``entry.config_origins``."""
    if not origin:
        return "set by the engine"
    if origin == "override":
        return "from --set"
    if origin == "default":
        return "engine default"
    return "from " + origin


def check_types(cfg: dict, cls, origins: dict[str, str] | None = None, strict: bool = True) -> dict:
    """``cfg`` with every key declared by dataclass ``cls`` checked against its type and converted (a new dict).
    ``strict``: a preset key that ``cls`` does not declare is refused (keys added with ``+key=value`` pass).
    Raises one line: ``key=value: must be <type> (declared <type> in <cls>, from preset toy)``."""
    decl = field_types(cls)
    origins = origins or {}
    out = dict(cfg)
    for key, value in cfg.items():
        origin = origins.get(key)
        if key not in decl:
            if strict and origin and origin.startswith("preset"):
                raise AddbenchError(f"{origin} sets {key!r}, which {cls.__name__} (the distiller's config_class) "
                                    "does not declare; declare it there with its type")
            continue
        try:
            out[key] = coerce(value, decl[key])
        except Mismatch:
            raise V.fail(key, value, describe(decl[key]),
                         f"declared {type_name(decl[key])} in {cls.__name__}, {where(origin)}") from None
    return out


def build(cls, cfg: dict):
    """The ``cls`` instance of a config dict: declared keys checked and converted, missing ones from the field
    defaults (a missing required key raises); keys ``cls`` does not declare stay in the dict only."""
    decl = field_types(cls)
    values = {}
    for key, tp in decl.items():
        if key in cfg:
            try:
                values[key] = coerce(cfg[key], tp)
            except Mismatch:
                raise V.fail(key, cfg[key], describe(tp), f"declared {type_name(tp)} in {cls.__name__}") from None
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise AddbenchError(f"the config lacks {', '.join(missing)}, required by {cls.__name__}; "
                            "set them in the preset or with --set key=value")
    return cls(**values)


def typed(cfg: dict, cls):
    """The typed object of ``cfg``: the one ``resolve_config`` attached when it is of class ``cls``, else built."""
    cached = getattr(cfg, "_typed", None)
    if type(cached) is cls:
        return cached
    return build(cls, cfg)
