"""Preference records, one JSON object a line, as ``addbench elo`` reads them (addbench.metrics.winrate)::

    {"prompt": str, "prompt_index": int, "seed": int, "a": model, "b": model, "winner": "a"|"b"|"tie",
     "question": "quality"|"alignment", "rater": str}

``a`` is the model of the lower run index, ``b`` the other, whatever side each was shown on. The human export
writes two records per real vote (one per question) and leaves out attention checks and every vote of a flagged
rater. The automatic arena judges every model pair on every shared key by a per-sample score column of
per_sample.parquet (winner: the better score by the metric's direction in record.json, higher when unstated; tie
when equal).
"""
from __future__ import annotations

import json
import math
from itertools import combinations
from pathlib import Path

from addbench.arena.controls import rater_stats
from addbench.arena.runs import ArenaRun, prompt_of, shared_keys
from addbench.arena.study import QUESTIONS
from addbench.errors import AddbenchError

FIELDS = ("prompt", "prompt_index", "seed", "a", "b", "winner", "question", "rater")


def _row(prompt: str, key: tuple[int, int], a: str, b: str, winner: str, question: str, rater: str) -> dict:
    return dict(zip(FIELDS, (prompt, int(key[0]), int(key[1]), a, b, winner, question, rater)))


def human_rows(votes: list[dict], max_fail: float, include_flagged: bool = False) -> list[dict]:
    """Preference records of the real votes of raters in good standing (all raters with ``include_flagged``)."""
    flagged = {r for r, s in rater_stats(votes, max_fail).items() if s["flagged"]}
    rows = []
    for v in votes:
        if v["control"] or (v["rater"] in flagged and not include_flagged):
            continue
        swap = v["left_run"] > v["right_run"]  # a: the lower run index
        a, b = (v["right_model"], v["left_model"]) if swap else (v["left_model"], v["right_model"])
        for q in QUESTIONS:
            side = v[q]
            winner = "tie" if side == "tie" else "a" if (side == "left") != swap else "b"
            rows.append(_row(v["prompt"], (v["prompt_index"], v["seed"]), a, b, winner, q, v["rater"]))
    return rows


def write_jsonl(rows: list[dict], out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(out)
    return out


def metric_column(run: ArenaRun, metric: str) -> str:
    """The per-sample column for ``metric``: the exact column, else the one metric id ``metric[...]``."""
    cols = [c for c in run.table.columns if c not in ("prompt_index", "seed", "prompt", "image", "category")]
    if metric in cols:
        return metric
    found = [c for c in cols if c.split("[", 1)[0] == metric]
    if len(found) != 1:
        what = f"matches {', '.join(found)}; give one" if found else f"is not a column; columns: {', '.join(cols) or 'none'}"
        raise AddbenchError(f"{run.path}/per_sample.parquet: --metric {metric!r} {what}")
    return found[0]


def _higher_is_better(run: ArenaRun, column: str) -> bool:
    return bool(((run.record.get("metrics") or {}).get(column) or {}).get("higher_is_better", True))


def auto_rows(runs: list[ArenaRun], metric: str, question: str | None = None) -> tuple[list[dict], int]:
    """(records, pairs skipped for a missing score): every model pair on every shared key, judged by ``metric``."""
    cols = [metric_column(r, metric) for r in runs]
    if len(set(cols)) > 1:
        raise AddbenchError(f"--metric {metric!r} names different ids in the runs: {', '.join(sorted(set(cols)))}")
    col = cols[0]
    sign = 1.0 if _higher_is_better(runs[0], col) else -1.0
    rater, question = f"auto:{col}", question or col
    rows, skipped = [], 0
    for key in shared_keys(runs):
        for ia, ib in combinations(range(len(runs)), 2):
            sa, sb = (float(runs[i].table.at[key, col]) for i in (ia, ib))
            if math.isnan(sa) or math.isnan(sb):
                skipped += 1
                continue
            d = sign * (sa - sb)
            winner = "a" if d > 0 else "b" if d < 0 else "tie"
            rows.append(_row(prompt_of(runs, key), key, runs[ia].model, runs[ib].model, winner, question, rater))
    return rows, skipped
