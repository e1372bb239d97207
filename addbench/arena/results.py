"""The results page's numbers: ELO with intervals (addbench.metrics.elo) and win-rate matrices with intervals by
prompt (addbench.metrics.winrate), per question, from the preference records of raters in good standing."""
from __future__ import annotations

from addbench.arena.controls import rater_stats
from addbench.arena.export import human_rows
from addbench.arena.study import QUESTIONS
from addbench.metrics.elo import elo_intervals
from addbench.metrics.winrate import Record, winrate_matrix_ci


def to_records(rows: list[dict]) -> list[Record]:
    return [Record(r["a"], r["b"], r["winner"], r["prompt"], r["question"], r["prompt_index"], r["seed"], r["rater"])
            for r in rows]


def report(votes: list[dict], max_fail: float, draws: int = 1000, seed: int = 0) -> dict:
    """``{"questions": {q: {"elo": {model: interval}, "winrate": [cells]}}, "mean": {...}, "raters", counts}``."""
    records = to_records(human_rows(votes, max_fail))
    by_q = elo_intervals(records, n_draws=draws, seed=seed) if records else {}
    questions = {}
    for q in [q for q in QUESTIONS if q in by_q]:  # the study's order: quality, then alignment
        elo = by_q[q]
        rates = winrate_matrix_ci([r for r in records if r.criterion == q], n_boot=draws, seed=seed)
        questions[q] = {"elo": _ranked(elo), "winrate": [{"model": m, "opponent": o, **w.to_dict()}
                                                          for (m, o), w in rates.items()]}
    stats = rater_stats(votes, max_fail)
    return {"questions": questions, "mean": _ranked(by_q["mean"]) if "mean" in by_q else None,
            "raters": stats, "votes": len(votes), "games": len(records), "draws": draws, "max_fail": max_fail,
            "excluded_raters": sorted(r for r, s in stats.items() if s["flagged"]),
            "controls": sum(bool(v["control"]) for v in votes)}


def _ranked(elo: dict) -> dict:
    return {m: e.to_dict() for m, e in sorted(elo.items(), key=lambda kv: -kv[1].rating)}


def leaderboard_csv(rep: dict, out, source: str) -> Path:
    """The study's ELO per model and question as a table ``addbench leaderboard ... --published FILE`` reads: columns
    ``model, source, elo[human,quality] ↑, elo[human,alignment] ↑`` (intervals stay in ``addbench elo`` / the page)."""
    from pathlib import Path

    import pandas as pd

    questions = rep["questions"]
    models = sorted({m for q in questions.values() for m in q["elo"]})
    rows = [{"model": m, "source": source,
             **{f"elo[human,{q}] ↑": round(questions[q]["elo"][m]["rating"], 1) for q in questions
                if m in questions[q]["elo"]}} for m in models]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out, index=False)
    return out
