"""Run records: ``record.json`` (atomic: tmp + fsync + rename) and ``per_sample.parquet``.

The format is versioned and checked against a JSON Schema on write and on read (``record-v2.schema.json``; records
of format ``addbench-record/1`` are still read, against ``record-v1.schema.json``). docs/records.md describes every
field. Format 2 adds, for image runs: ``files`` (the manifest of the run's samples and per_sample.parquet,
:mod:`addbench.eval.manifest`), each metric's ``provenance`` (sha256 of its weight files, its reference statistics)
and the run's ``micro_batch``, ``score_batch``, ``requested_device`` and ``dtype`` in ``provenance``.

record.json (format 1 shown; format 2 adds the fields above)::

    {"format": "addbench-record/2", "complete": true,
     "model": {"name", "model_hash", "base", "sampler", "nfe"},
     "suite": {"name", "version", "hash", "config_sha256", "prompt_set", "prompt_sha256", "n_prompts",
               "seeds", "resolution", "limit"},
     "metrics": {"<metric id>": {"name", "value", "ci95": [lo, hi] | null,
                                 "ci": {"method", "draws", "level", "unit": "prompt"} | null,
                                 "higher_is_better", "convention", "kwargs", "n", "per": "sample"|"prompt"|"set",
                                 "by_category": {...} | absent}},
     "provenance": {"libraries", "python", "device", "world_size", "git_commit", "timestamp", "command", "host",
                    "timing_s": {"load", "metrics_load", "wait_metrics", "generate", "score": {metric id: s},
                                 "wait_io", "generated", "read", "loop", "sync", "split_bootstrap", "record",
                                 "total"}}}   (seconds on rank 0; generated/read: sample counts)

``ci`` says how ``ci95`` was made (addbench.metrics.intervals): ``method`` "percentile" (means) or "basic+bias"
(FID, KID: an interval for the estimator's mean at this sample size), ``draws`` bootstrap draws of prompts. Records
written before the key existed have none: their FID/KID ``ci95`` is the percentile interval of 200 draws (which sits
above the estimate), the other metrics' the percentile interval of 1,000 draws.

per_sample.parquet: one row per (prompt_index, seed): prompt_index, seed, prompt, image (path relative to
the run dir), one column per per-sample metric id (per-prompt metrics repeat their value on every seed row).
"""
from __future__ import annotations

import functools
import json
import os
import re
from importlib import resources
from pathlib import Path

import pandas as pd

from addbench.errors import AddbenchError
from addbench.metrics import intervals

FORMAT = "addbench-record/2"
READ_FORMATS = ("addbench-record/1", FORMAT)  # the formats read_record accepts, oldest first
LATENCY_FORMAT = "addbench-latency/1"  # `addbench latency` results, which `addbench leaderboard` also reads


def atomic_write_json(path: Path, obj: dict) -> None:
    """Write ``obj`` as JSON to ``path`` (its folder made if missing): tmp + fsync + rename, so a kill mid-write
    leaves the previous version."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:  # make the rename durable too
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def metric_entry(metric, kwargs: dict, n_boot: int = intervals.DRAWS) -> dict:
    per = metric.per_sample()
    kind = "set" if per is None else ("prompt" if getattr(metric, "grouped", False) else "sample")
    ci = metric.bootstrap(n_boot=n_boot)
    value = float(metric.compute())
    intervals.check_contains(value, ci, metric.id)  # every recorded interval contains its estimate
    info = getattr(metric, "ci_info", None)
    return {
        "name": metric.name,
        "value": value,
        "ci95": [float(ci[0]), float(ci[1])] if ci is not None else None,
        "ci": (info(n_boot) if info else intervals.ci_info("unknown", n_boot)) if ci is not None else None,
        "higher_is_better": bool(metric.higher_is_better),
        "convention": metric.convention(),
        "kwargs": kwargs,
        "n": int(float(metric._n)) if hasattr(metric, "_n") else None,
        "per": kind,
    }


def per_sample_frame(samples: list[dict], metrics: list) -> pd.DataFrame:
    """samples: [{"prompt_index", "seed", "prompt", "image", "category"}] in order; one column per metric id."""
    df = pd.DataFrame(samples)
    for m in metrics:
        per = m.per_sample()
        if per is None:
            continue
        if getattr(m, "grouped", False):
            by_prompt = {p: v for (p, _), v in per.items()}
            df[m.id] = [by_prompt.get(p, float("nan")) for p in df["prompt_index"]]
        else:
            df[m.id] = [per.get((p, s), float("nan")) for p, s in zip(df["prompt_index"], df["seed"])]
    return df


def by_category(df: pd.DataFrame, metric_id: str) -> dict | None:
    """Mean per prompt category (e.g. HPDv2 styles, Parti categories) when the prompt set has categories."""
    if "category" not in df or df["category"].isna().all() or metric_id not in df:
        return None
    per_prompt = df.groupby("prompt_index").agg(category=("category", "first"), v=(metric_id, "mean"))
    return {str(k): float(v) for k, v in per_prompt.groupby("category")["v"].mean().items()}


def write_per_sample(path: Path, df: pd.DataFrame) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


FIX = "delete the run dir or re-run with --repair"


@functools.lru_cache(maxsize=None)
def schema(fmt: str) -> dict:
    """The JSON Schema of record format ``fmt`` (``addbench-record/1`` or ``/2``)."""
    version = fmt.rsplit("/", 1)[1]
    return json.loads(resources.files("addbench.eval").joinpath(f"record-v{version}.schema.json").read_text())


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
          "integer": int, "number": (int, float)}


def _is(value, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[name])


def _path(parts: tuple) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if re.fullmatch(r"[A-Za-z_]\w*", p) else f"[{p!r}]")
    return out


def _check(value, sch: dict, root: dict, at: tuple) -> tuple[tuple, str] | None:
    """The first problem (JSON path parts, message) of ``value`` under ``sch``, or None. The JSON Schema subset the
    record schemas use: $ref (local), type, const, enum, required, properties, additionalProperties,
    propertyNames, minProperties, items, minItems, maxItems, pattern, minimum, oneOf, allOf, not, if/then."""
    if "$ref" in sch:
        node = root
        for part in sch["$ref"].lstrip("#/").split("/"):
            node = node[part]
        return _check(value, node, root, at)
    if "type" in sch:
        types = sch["type"] if isinstance(sch["type"], list) else [sch["type"]]
        if not any(_is(value, t) for t in types):
            return at, f"{json.dumps(value, default=str)[:60]} is not of type {' or '.join(types)}"
    if "const" in sch and value != sch["const"]:
        return at, f"{value!r} should be {sch['const']!r}"
    if "enum" in sch and value not in sch["enum"]:
        return at, f"{value!r} is not one of {sch['enum']}"
    if isinstance(value, str):
        if "pattern" in sch and not re.search(sch["pattern"], value):
            return at, f"{value[:60]!r} does not match {sch['pattern']!r}"
    if _is(value, "number") and "minimum" in sch and value < sch["minimum"]:
        return at, f"{value} is less than {sch['minimum']}"
    if isinstance(value, dict):
        missing = [k for k in sch.get("required", ()) if k not in value]
        if missing:
            return at, f"{missing[0]!r} is a required property"
        if len(value) < sch.get("minProperties", 0):
            return at, f"should have at least {sch['minProperties']} entries"
        props, extra = sch.get("properties", {}), sch.get("additionalProperties", True)
        for k, v in value.items():
            if "propertyNames" in sch and (bad := _check(k, sch["propertyNames"], root, at + (k,))):
                return bad[0], f"key {k!r}: {bad[1]}"
            if k in props:
                sub = props[k]
            elif extra is False:
                return at + (k,), "is not an allowed property"
            else:
                sub = extra if isinstance(extra, dict) else None
            if sub is not None and (bad := _check(v, sub, root, at + (k,))):
                return bad
    if isinstance(value, list):
        if len(value) < sch.get("minItems", 0) or len(value) > sch.get("maxItems", len(value)):
            return at, f"has {len(value)} items"
        for i, v in enumerate(value):
            if "items" in sch and (bad := _check(v, sch["items"], root, at + (i,))):
                return bad
    if "not" in sch and _check(value, sch["not"], root, at) is None:
        return at, "matches a form that is not allowed"
    for sub in sch.get("allOf", ()):
        if bad := _check(value, sub, root, at):
            return bad
    if "oneOf" in sch:
        results = [_check(value, sub, root, at) for sub in sch["oneOf"]]
        if sum(r is None for r in results) != 1:
            return max((r for r in results if r), key=lambda r: (len(r[0]), "not of type" not in r[1]), default=(at, "matches more than one form"))
    if "if" in sch and _check(value, sch["if"], root, at) is None and "then" in sch:
        return _check(value, sch["then"], root, at)
    return None


def schema_errors(record, path: str | Path = "record.json") -> str | None:
    """None when ``record`` is a valid record of a readable format, else one line: the file, the JSON path of the
    problem, what is wrong and the fix."""
    if not isinstance(record, dict):
        return f"{path}: not a record (a JSON {type(record).__name__}, not an object); {FIX}"
    fmt = record.get("format")
    if fmt not in READ_FORMATS:
        return f"{path}: $.format is {fmt!r}, not one of {', '.join(READ_FORMATS)}; {FIX}"
    sch = schema(fmt)
    bad = _check(record, sch, sch, ())
    if bad is None:
        return None
    return f"{path}: invalid {fmt} record at {_path(bad[0])}: {' '.join(bad[1].split())[:200]}; {FIX}"


def validate(record, path: str | Path = "record.json") -> dict:
    """``record`` when it is valid (see :func:`schema_errors`), else an AddbenchError of one line."""
    problem = schema_errors(record, path)
    if problem:
        raise AddbenchError(problem)
    return record


def write_record(path: Path, record: dict) -> None:
    """Validate ``record`` (format 2) and write it atomically; a record that fails its schema is never written."""
    record = json.loads(json.dumps(record, default=str))  # what a reader will see (tuples -> lists, ...)
    problem = schema_errors(record, path)
    if problem:
        raise AddbenchError(problem.replace(FIX, "this is a bug in addbench: please report it"))
    atomic_write_json(path, record)


def load_record_file(path: str | Path) -> dict:
    """Read and validate ``path`` (a record.json); any problem is one line naming the file (never a traceback)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        record = json.loads(text)
    except FileNotFoundError:
        raise AddbenchError(f"no record.json in {path.parent}; run `addbench eval` there first") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise AddbenchError(f"{path} is not valid JSON ({msg}{where}); {FIX}") from None
    except OSError as exc:
        raise AddbenchError(f"{path} cannot be read ({exc.strerror or exc}); {FIX}") from None
    return validate(record, path)


def read_record(run_dir: str | Path) -> dict:
    """The validated record of a run dir (or a record.json path), format 1 or 2."""
    path = Path(run_dir)
    if path.is_dir():
        path = path / "record.json"
    return load_record_file(path)
