"""Paired comparison of two eval runs (``addbench compare RUN_A RUN_B``).

For every metric id both records hold: the two values, the difference B - A, and for per-sample / per-prompt metrics
a paired bootstrap over prompts (:func:`addbench.metrics.intervals.paired_bootstrap`): each metric's values are
averaged over seeds per prompt, the per-prompt differences are resampled with replacement (the same prompts for both
runs), giving a 95% percentile interval for the difference and a two-sided bootstrap p-value.

Set-level metrics (FID, KID: ``per: "set"``) have no per-row value in ``per_sample.parquet``, and the per-sample
features they are computed from live only in memory during the eval (``FID._feats``); a run dir does not keep them.
They are reported with both values, the difference and each run's own interval, marked "no paired interval:
set-level metric".

Two runs compare only when they ran the same protocol. :func:`comparability_problems` lists what differs: suite hash,
prompt set, seeds, generation dtype, metric ids (ids embed conventions; only equal ids compare), metric kwargs and
reference statistics. Any of them refuses the comparison (one-line AddbenchError) unless ``force``; an incomplete
run is refused always.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from addbench.errors import AddbenchError
from addbench.eval.records import read_record
from addbench.eval.tables import shown_interval
from addbench.metrics import intervals
from addbench.suites import canonical_dtype

NO_PAIRED_SET = "no paired interval: set-level metric (per-sample features are not stored in the run dir)"


@dataclass(frozen=True)
class Run:
    path: Path
    record: dict
    per_sample: pd.DataFrame | None

    @property
    def label(self) -> str:
        model = self.record.get("model") or {}
        return f"{model.get('name', '?')} nfe {model.get('nfe', '?')} ({self.path})"


@dataclass(frozen=True)
class MetricComparison:
    id: str
    higher_is_better: bool
    a: float
    b: float
    diff: float  # B - A; paired: the mean of the per-prompt differences
    ci95: tuple[float, float] | None  # paired bootstrap interval of diff
    p: float | None
    n_prompts: int | None
    ci95_a: list | None  # each run's own interval from its record
    ci95_b: list | None
    note: str

    def to_dict(self) -> dict:
        return asdict(self)


# Loading.
def load_run(run_dir: str | Path) -> Run:
    """The record (refused when incomplete) and its per-sample table (None when the run dir has none)."""
    path = Path(run_dir)
    rec = read_record(path)
    if not rec.get("complete", False):
        raise AddbenchError(f"{path} is an incomplete run (complete: false); finish it with `addbench eval` first")
    table = path / "per_sample.parquet" if path.is_dir() else path.parent / "per_sample.parquet"
    return Run(path, rec, pd.read_parquet(table) if table.is_file() else None)


# Comparability.
def _dtype(rec: dict) -> str | None:
    """The dtype the model generated in (``model.dtype``, format 2 also ``provenance.dtype``), else the one the
    suite asked for (``suite.generation_dtype``)."""
    model, suite, prov = rec.get("model") or {}, rec.get("suite") or {}, rec.get("provenance") or {}
    raw = model.get("dtype") or prov.get("dtype") or suite.get("generation_dtype")
    try:
        return canonical_dtype(raw)
    except AddbenchError:
        return str(raw)


def reference_id(rec: dict, metric_id: str) -> str | None:
    """A hash naming the reference statistics a metric used, where the record carries one: the metric's
    ``provenance.reference`` (format 2: ``{"source", "sha256", ...}`` or null), else a ``reference`` in the metric
    entry or at the record's top level (a string, or a dict with sha256 / hash / key / source). None: not recorded."""
    entry = (rec.get("metrics") or {}).get(metric_id) or {}
    ref = (entry.get("provenance") or {}).get("reference") or entry.get("reference")
    if ref is None:
        ref = (rec.get("reference") or {}).get(metric_id) if isinstance(rec.get("reference"), dict) else None
    if isinstance(ref, dict):
        for key in ("sha256", "stats_sha256", "hash", "key", "source"):
            if ref.get(key):
                return str(ref[key])
        return None
    return None if ref is None else str(ref)


def _differs(what: str, a, b) -> list[str]:
    return [f"different {what} ({a} vs {b})"] if a is not None and b is not None and a != b else []


def protocol_problems(a: dict, b: dict) -> list[str]:
    """Suite hash, prompt set, seeds and generation dtype of two records, where they differ."""
    sa, sb = a.get("suite") or {}, b.get("suite") or {}
    out = _differs("suite hash", sa.get("hash"), sb.get("hash"))
    for key in ("prompt_sha256", "n_prompts", "limit"):
        if sa.get(key) != sb.get(key):
            out.append(f"different prompt set ({key} {sa.get(key)} vs {sb.get(key)})")
            break
    out += _differs("seeds", sa.get("seeds"), sb.get("seeds"))
    out += _differs("generation dtype", _dtype(a), _dtype(b))
    return out


def select_metrics(a: dict, b: dict, wanted: list[str] | None) -> tuple[list[str], list[str]]:
    """(ids in both records, ids in only one) among the ``wanted`` ids or names (default: all)."""
    ids_a, ids_b = a.get("metrics") or {}, b.get("metrics") or {}

    def chosen(ids: dict) -> set[str]:
        if not wanted:
            return set(ids)
        return {i for i, m in ids.items() if i in wanted or m.get("name") in wanted}

    ca, cb = chosen(ids_a), chosen(ids_b)
    every = {**ids_a, **ids_b}
    unknown = [w for w in wanted or () if not any(w == i or w == m.get("name") for i, m in every.items())]
    if unknown:
        raise AddbenchError(f"no metric matches --metrics {','.join(unknown)}; the runs have "
                            f"{', '.join(sorted(every))}")
    return sorted(ca & cb), sorted(ca ^ cb)


def metric_problems(a: dict, b: dict, ids: list[str], unmatched: list[str]) -> list[str]:
    """Unmatched metric ids, and shared ids whose kwargs or reference statistics differ."""
    out = [f"metric ids differ (only in one run: {', '.join(unmatched)})"] if unmatched else []
    for mid in ids:
        ka, kb = a["metrics"][mid].get("kwargs"), b["metrics"][mid].get("kwargs")
        if ka is not None and kb is not None and ka != kb:
            out.append(f"{mid}: different metric kwargs ({ka} vs {kb})")
        out += [f"{mid}: {p}" for p in _differs("reference statistics", reference_id(a, mid), reference_id(b, mid))]
    return out


def comparability_problems(a: dict, b: dict, ids: list[str], unmatched: list[str]) -> list[str]:
    return protocol_problems(a, b) + metric_problems(a, b, ids, unmatched)


# Paired differences.
def per_prompt_means(df: pd.DataFrame, metric_id: str) -> pd.Series:
    """The metric averaged over seeds, one value per prompt index (prompts without a finite value dropped)."""
    if metric_id not in df:
        return pd.Series(dtype=np.float64)
    return df.groupby("prompt_index")[metric_id].mean().dropna()


def compare_metric(a: Run, b: Run, mid: str, n_boot: int, seed: int) -> MetricComparison:
    ea, eb = a.record["metrics"][mid], b.record["metrics"][mid]
    common = dict(id=mid, higher_is_better=bool(ea.get("higher_is_better", True)), a=float(ea["value"]),
                  b=float(eb["value"]), ci95_a=shown_interval(ea), ci95_b=shown_interval(eb))
    unpaired = dict(diff=common["b"] - common["a"], ci95=None, p=None, n_prompts=None)
    if "set" in (ea.get("per"), eb.get("per")):
        return MetricComparison(**common, **unpaired, note=NO_PAIRED_SET)
    if a.per_sample is None or b.per_sample is None:
        return MetricComparison(**common, **unpaired, note="no paired interval: per_sample.parquet missing")
    pa, pb = per_prompt_means(a.per_sample, mid), per_prompt_means(b.per_sample, mid)
    prompts = pa.index.intersection(pb.index)
    if len(prompts) == 0:
        return MetricComparison(**common, **unpaired, note="no paired interval: no prompt has values in both runs")
    diff, lo, hi, p = intervals.paired_bootstrap((pb[prompts] - pa[prompts]).to_numpy(), n_boot, seed)
    return MetricComparison(**common, diff=diff, ci95=(lo, hi), p=p, n_prompts=len(prompts),
                            note=verdict(diff, (lo, hi), common["higher_is_better"]))


def verdict(diff: float, ci: tuple[float, float], higher_is_better: bool) -> str:
    if ci[0] <= 0 <= ci[1]:
        return "no difference at 95%"
    return "B better" if (diff > 0) == higher_is_better else "A better"


# The whole comparison.
def compare_runs(run_a: str | Path, run_b: str | Path, metrics: list[str] | None = None, n_boot: int = 2000,
                 seed: int = 0, force: bool = False) -> dict:
    """``{"a", "b", "draws", "seed", "forced": [problems], "metrics": [MetricComparison dicts]}``."""
    a, b = load_run(run_a), load_run(run_b)
    ids, unmatched = select_metrics(a.record, b.record, metrics)
    problems = comparability_problems(a.record, b.record, ids, unmatched)
    if problems and not force:
        raise AddbenchError(f"runs not comparable: {'; '.join(problems)} (--force compares anyway)")
    if not ids:
        raise AddbenchError(f"the runs share no metric id ({', '.join(unmatched)} in one only)")
    return {"a": a.label, "b": b.label, "draws": n_boot, "seed": seed, "forced": problems,
            "metrics": [compare_metric(a, b, mid, n_boot, seed).to_dict() for mid in ids]}


# Output.
def _num(x) -> str:
    return "–" if x is None else f"{x:.4g}"


def _ci(ci) -> str:
    return "–" if ci is None else f"[{ci[0]:.4g}, {ci[1]:.4g}]"


def format_markdown(result: dict) -> str:
    lines = [f"A: {result['a']}", f"B: {result['b']}",
             f"paired bootstrap over prompts: {result['draws']} draws, seed {result['seed']}, 95% percentile "
             f"intervals, two-sided bootstrap p", ""]
    lines += [f"forced despite: {p}" for p in result["forced"]] + ([""] if result["forced"] else [])
    lines += ["| metric | A | B | B − A | 95% CI (B − A) | p | prompts | note |",
              "|---|---|---|---|---|---|---|---|"]
    for m in result["metrics"]:
        arrow = "↑" if m["higher_is_better"] else "↓"
        own = m["ci95"] is None and m["ci95_a"] and m["ci95_b"]  # unpaired: each run's own interval
        va, vb = (f"{_num(m[k])} {_ci(m['ci95_' + k])}" if own else _num(m[k]) for k in "ab")
        lines.append(f"| {m['id']} {arrow} | {va} | {vb} | {_num(m['diff'])} | {_ci(m['ci95'])} "
                     f"| {_num(m['p'])} | {m['n_prompts'] or '–'} | {m['note']} |")
    return "\n".join(lines) + "\n"
