"""Resolved command configurations (frozen dataclasses) and ``key=value`` override parsing.

``--dry-run`` prints ``EvalConfig.resolve(...).to_dict()`` as JSON; the eval runner writes the same fields
(plus the generator's own description) to ``<run dir>/config.json``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import yaml

from addbench import validate as V
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


def parse_int_list(text: str | None, what: str, minimum: int | None = None, hint: str = "") -> list[int] | None:
    """"1,2,4" -> [1, 2, 4]; with ``minimum``: every item >= minimum and at least one item."""
    if text is None:
        return None
    try:
        out = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise AddbenchError(f"{what} expects comma-separated integers like 1,2,4; got {text!r}") from None
    if minimum is not None:
        if not out:
            raise V.fail(what, text, "comma-separated integers like 1,2,4", hint)
        for x in out:
            V.int_at_least(x, minimum, what, hint, maximum=V.SEED_MAX)
    return out


MAX_STEPS = 10_000  # more sampling steps than any schedule has timesteps
SAMPLER_CHECKS = {
    "steps": lambda v: V.int_at_least(v, 1, "--steps", "the number of sampling steps", maximum=MAX_STEPS),
    "guidance": lambda v: V.non_negative(v, "--guidance", "the CFG scale; 1 = none"),
}


def check_sampler_overrides(overrides: dict | None) -> None:
    """``--steps`` an integer >= 1, ``--guidance`` finite and >= 0 (nan would score black images)."""
    for key, value in (overrides or {}).items():
        if value is not None and key in SAMPLER_CHECKS:
            SAMPLER_CHECKS[key](value)


@dataclass(frozen=True)
class EvalConfig:
    """Every option of one evaluation: the CLI (``addbench eval``), the Python API (``addbench.evaluate``) and
    ``--dry-run`` all build this object, and :meth:`run` is the one call into the runner."""
    model: str
    suite: str
    out: str = "runs"
    device: str = "cpu"
    dtype: str | None = None
    batch_size: int | None = 8
    sampler_overrides: dict = field(default_factory=dict)
    metric_overrides: dict = field(default_factory=dict)
    limit: int | None = None
    run_dir: str | None = None
    progress: bool = True
    rescore: bool = False
    fast: bool = False
    score_batch: int = 64
    overlap_scoring: bool = False
    metric_precision: str | None = None
    repair: bool = False
    verify: str = "auto"

    def __post_init__(self):
        """Flags checked before anything touches the disk (a refused run leaves no run dir)."""
        check_sampler_overrides(self.sampler_overrides)
        if self.batch_size is not None:
            V.int_at_least(self.batch_size, 1, "--batch-size", "images per generate call")
        if self.limit is not None:
            V.int_at_least(self.limit, 1, "--limit", "only the first N prompts")
        V.int_at_least(self.score_batch, 1, "--score-batch", "images per scoring group")
        V.one_of(self.verify, ("auto", "size", "full"), "--verify")
        V.device_available(self.device)
        V.dtype_name(self.dtype)
        V.writable_dir(self.out, "--out")
        if self.run_dir is not None:
            V.writable_dir(self.run_dir, "--run-dir")

    def to_dict(self) -> dict:
        return asdict(self)

    def run(self):
        """Generate, score and record (``addbench.eval.runner.evaluate``); returns its ``EvalResult``."""
        from addbench.bases.components import resolve_device
        from addbench.eval.runner import evaluate

        return evaluate(self.model, self.suite, out_dir=self.out, device=str(resolve_device(self.device)),
                        batch_size=self.batch_size, sampler_overrides=dict(self.sampler_overrides), dtype=self.dtype,
                        limit=self.limit,
                        run_dir=self.run_dir, progress=self.progress, rescore=self.rescore,
                        metric_overrides=dict(self.metric_overrides), fast=self.fast, score_batch=self.score_batch,
                        overlap_scoring=self.overlap_scoring, metric_precision=self.metric_precision,
                        repair=self.repair, verify=self.verify)

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
