"""Resolved command configurations (frozen dataclasses) and ``key=value`` override parsing.

``--dry-run`` prints ``EvalConfig.resolve(...).to_dict()`` as JSON; the eval runner writes the same fields
(plus the generator's own description) to ``<run dir>/config.json``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import yaml

from addbench.errors import AddbenchError


def parse_value(text: str):
    """YAML scalar parsing: ``4`` -> 4, ``1e-6`` -> 1e-06, ``true`` -> True, ``[1,2]`` -> [1, 2], else the string."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value) if any(c in value.lower() for c in ".e") and value.lower() not in ("e",) else value
        except ValueError:
            return value
    return value


def parse_assignments(items: list[str] | None, what: str = "--set") -> dict:
    """["a=1", "b.c=x"] -> {"a": 1, "b.c": "x"}; a malformed item is a one-line error."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AddbenchError(f"{what} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = parse_value(value)
    return out


def nest_dotted(flat: dict, what: str = "--metric") -> dict[str, dict]:
    """{"fid.reference": "/d"} -> {"fid": {"reference": "/d"}}."""
    out: dict[str, dict] = {}
    for key, value in flat.items():
        head, sep, tail = key.partition(".")
        if not sep or not tail:
            raise AddbenchError(f"{what} expects METRIC.KEY=VALUE, got {key!r}")
        out.setdefault(head, {})[tail] = value
    return out


def parse_int_list(text: str | None, what: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise AddbenchError(f"{what} expects comma-separated integers like 1,2,4; got {text!r}") from None


@dataclass(frozen=True)
class EvalConfig:
    model: str
    suite: str
    out: str = "runs"
    device: str = "cpu"
    dtype: str | None = None
    batch_size: int = 8
    sampler_overrides: dict = field(default_factory=dict)
    metric_overrides: dict = field(default_factory=dict)
    limit: int | None = None
    run_dir: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def resolved(self) -> dict:
        """The configuration plus what the suite resolves to (no model is loaded)."""
        from addbench.eval.runner import metric_kwargs
        from addbench.suites import load_suite

        suite = load_suite(self.suite).with_generation_dtype(self.dtype)
        try:
            kwargs = metric_kwargs(suite, self.metric_overrides)
        except AddbenchError as exc:  # a missing $VAR is worth showing, not fatal, in a dry run
            kwargs = [{"error": str(exc)}] * len(suite.metrics)
        return {**self.to_dict(), "suite_resolved": {
            "name": suite.name, "version": suite.version, "config_sha256": suite.config_sha256,
            "path": suite.path, "prompts": suite.resolved["prompts"], "seeds": list(suite.seeds),
            "resolution": suite.resolution, "sampler": suite.sampler,
            "generation_dtype": suite.generation_dtype,
            "metrics": [{"name": m.name, "kwargs": kw} for m, kw in zip(suite.metrics, kwargs)]}}
