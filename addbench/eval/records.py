"""Run records: ``record.json`` (atomic: tmp + fsync + rename) and ``per_sample.parquet``.

record.json::

    {"format": "addbench-record/1", "complete": true,
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

import json
import os
from pathlib import Path

import pandas as pd

from addbench.errors import AddbenchError
from addbench.metrics import intervals

FORMAT = "addbench-record/1"
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


def read_record(run_dir: str | Path) -> dict:
    path = Path(run_dir)
    if path.is_dir():
        path = path / "record.json"
    try:
        rec = json.loads(path.read_text())
    except FileNotFoundError:
        raise AddbenchError(f"no record.json in {path.parent}; run `addbench eval` there first") from None
    except json.JSONDecodeError as exc:
        raise AddbenchError(f"{path} is not valid JSON ({exc.msg}); re-run the eval to rewrite it") from None
    if rec.get("format") != FORMAT:
        raise AddbenchError(f"{path} has format {rec.get('format')!r}, expected {FORMAT!r}")
    return rec
