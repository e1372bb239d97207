"""ELO ratings from pairwise preference records, as in ADD (Sauer et al. 2023), appendix B.2.

Every model starts at ``R_init = 1000``. Games are played in order; before a game between players with
ratings R1 and R2 the expected outcomes are ``E1 = 1 / (1 + 10^((R2 - R1) / 400))`` and ``E2 = 1 - E1``;
afterwards ``R_i' = R_i + K (S_i - E_i)`` with ``K = 1`` and ``S_i`` = 1 (win), 0 (loss), 0.5 (tie).
Because the result depends on the order of the games, the reported rating is bootstrapped over shuffled
game orders: the mean over ``n_rounds`` random permutations, with a percentile interval. (The paper does
not state the number of rounds in a readable form; we default to 1000 and record it.)

ADD reports the mean of the ratings for two criteria (prompt following, image quality); records may carry
an optional ``criterion`` field and :func:`elo_mean_over_criteria` does that averaging.

The spread over orders says how much the rating depends on the order of the games, not how much it would change
with other games. :func:`elo_intervals` reports both: the orders-only interval above, and a bootstrap over games
**and** orders, each draw ``n`` games drawn with replacement and played in random order -- i.e. ``n`` game indices
drawn uniformly and independently, since a resample in shuffled order is exactly that. Only the second interval
includes the sampling uncertainty of the games (who won which comparison).

Records (:mod:`addbench.metrics.winrate` reads them): ``model_a, model_b, winner`` (``a``, ``b`` or
``tie``), optional ``prompt`` and ``criterion``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from addbench.metrics.winrate import Record, prompt_unit, winrate_matrix_ci

R_INIT = 1000.0
K_FACTOR = 1.0


def expected_score(r1: float, r2: float) -> float:
    """Expected outcome for the player rated ``r1`` against the player rated ``r2``."""
    return 1.0 / (1.0 + 10.0 ** ((r2 - r1) / 400.0))


def _outcome(winner: str) -> float:
    return {"a": 1.0, "b": 0.0, "tie": 0.5}[winner]


def elo_ratings(records: list[Record], k: float = K_FACTOR, r_init: float = R_INIT,
                order: list[int] | np.ndarray | None = None) -> dict[str, float]:
    """Play the games once, in ``order`` (indices into ``records``; default: as given)."""
    ratings: dict[str, float] = {}
    for r in records:
        ratings.setdefault(r.model_a, r_init)
        ratings.setdefault(r.model_b, r_init)
    for i in (range(len(records)) if order is None else order):
        rec = records[int(i)]
        ra, rb = ratings[rec.model_a], ratings[rec.model_b]
        ea = expected_score(ra, rb)
        sa = _outcome(rec.winner)
        ratings[rec.model_a] = ra + k * (sa - ea)
        ratings[rec.model_b] = rb + k * ((1.0 - sa) - (1.0 - ea))
    return ratings


@dataclass(frozen=True)
class EloResult:
    mean: float
    lo: float  # percentile interval over shuffled orders
    hi: float
    std: float
    n_rounds: int

    def to_dict(self) -> dict:
        return {"mean": self.mean, "lo": self.lo, "hi": self.hi, "std": self.std, "n_rounds": self.n_rounds}


def bootstrap_elo(records: list[Record], n_rounds: int = 1000, seed: int = 0, k: float = K_FACTOR,
                  r_init: float = R_INIT, alpha: float = 0.05) -> dict[str, EloResult]:
    """ELO over ``n_rounds`` random game orders: mean, (alpha/2, 1-alpha/2) percentiles and std per model."""
    if not records:
        return {}
    rng = np.random.default_rng(seed)
    models, table = elo_table(records, np.stack([rng.permutation(len(records)) for _ in range(n_rounds)]), k, r_init)
    lo, hi = np.quantile(table, [alpha / 2, 1 - alpha / 2], axis=0)
    return {m: EloResult(float(table[:, j].mean()), float(lo[j]), float(hi[j]), float(table[:, j].std()), n_rounds)
            for j, m in enumerate(models)}


def elo_table(records: list[Record], orders: np.ndarray, k: float = K_FACTOR,
              r_init: float = R_INIT) -> tuple[list[str], np.ndarray]:
    """(sorted models, ratings (draws, models)): draw ``i`` plays the games ``orders[i]`` (indices into
    ``records``, repeats allowed) in that order, every draw at once."""
    models = sorted({r.model_a for r in records} | {r.model_b for r in records})
    col = {m: j for j, m in enumerate(models)}
    a = np.array([col[r.model_a] for r in records])
    b = np.array([col[r.model_b] for r in records])
    s = np.array([_outcome(r.winner) for r in records])
    table = np.full((len(orders), len(models)), float(r_init))
    rows = np.arange(len(orders))
    for game in np.asarray(orders).T:  # step t of every draw
        ia, ib = a[game], b[game]
        ra, rb = table[rows, ia], table[rows, ib]
        ea = 1.0 / (1.0 + 10.0 ** ((rb - ra) / 400.0))
        sa = s[game]
        table[rows, ia] = ra + k * (sa - ea)
        table[rows, ib] = rb + k * ((1.0 - sa) - (1.0 - ea))
    return models, table


@dataclass(frozen=True)
class EloInterval:
    rating: float  # mean over shuffled orders of all games (ADD's number)
    orders_lo: float  # percentile interval over orders only
    orders_hi: float
    lo: float  # percentile interval over games (resampled with replacement) and orders
    hi: float
    draws: int

    def to_dict(self) -> dict:
        return {"rating": self.rating, "orders_ci95": [self.orders_lo, self.orders_hi], "ci95": [self.lo, self.hi],
                "draws": self.draws}


def elo_draws(records: list[Record], n_draws: int = 1000, seed: int = 0, k: float = K_FACTOR,
              r_init: float = R_INIT) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(models, orders-only table, games+orders table), each (n_draws, models)."""
    n = len(records)
    rng = np.random.default_rng(seed)
    orders = np.stack([rng.permutation(n) for _ in range(n_draws)])
    models, by_order = elo_table(records, orders, k, r_init)
    games = np.random.default_rng([seed, 1]).integers(0, n, (n_draws, n))  # resampled games, in random order
    return models, by_order, elo_table(records, games, k, r_init)[1]


def summarize_elo(models: list[str], by_order: np.ndarray, by_games: np.ndarray,
                  alpha: float = 0.05) -> dict[str, EloInterval]:
    q = [alpha / 2, 1 - alpha / 2]
    (olo, ohi), (glo, ghi) = np.quantile(by_order, q, axis=0), np.quantile(by_games, q, axis=0)
    return {m: EloInterval(float(by_order[:, j].mean()), float(olo[j]), float(ohi[j]), float(glo[j]), float(ghi[j]),
                           len(by_order)) for j, m in enumerate(models)}


def elo_intervals(records: list[Record], n_draws: int = 1000, seed: int = 0, k: float = K_FACTOR,
                  r_init: float = R_INIT, alpha: float = 0.05) -> dict[str, dict[str, EloInterval]]:
    """``{question: {model: EloInterval}}``, one block per ``criterion`` (``""`` when the records name none) and,
    with several, ``"mean"``: the mean over questions of each draw (ADD's reported number, with its intervals)."""
    by_q: dict[str, list[Record]] = {}
    for r in records:
        by_q.setdefault(r.criterion, []).append(r)
    tables = {q: elo_draws(recs, n_draws, seed, k, r_init) for q, recs in sorted(by_q.items())}
    out = {q: summarize_elo(*t, alpha) for q, t in tables.items()}
    if len(tables) > 1:
        out["mean"] = summarize_elo(*_mean_over_questions(list(tables.values())), alpha)
    return out


def _mean_over_questions(tables: list) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per draw, each model's mean rating over the questions it was rated in."""
    models = sorted({m for t in tables for m in t[0]})

    def mean(which: int) -> np.ndarray:
        cols = [[t[which][:, t[0].index(m)] for t in tables if m in t[0]] for m in models]
        return np.stack([np.mean(c, axis=0) for c in cols], axis=1)
    return models, mean(1), mean(2)


def elo_mean_over_criteria(records: list[Record], **kwargs) -> dict[str, float]:
    """ADD's reported number: bootstrapped ELO per ``criterion``, then the mean over criteria per model."""
    by_crit: dict[str, list[Record]] = {}
    for r in records:
        by_crit.setdefault(r.criterion or "", []).append(r)
    per = [bootstrap_elo(recs, **kwargs) for recs in by_crit.values()]
    models = sorted({m for p in per for m in p})
    return {m: float(np.mean([p[m].mean for p in per if m in p])) for m in models}


# The `addbench elo` report.
def elo_report(records: list[Record], n_draws: int = 1000, seed: int = 0, k: float = K_FACTOR,
               r_init: float = R_INIT, alpha: float = 0.05) -> dict:
    """ELO per question (and their mean) with both intervals, and the win-rate matrix with by-prompt intervals."""
    units = {prompt_unit(r, i) for i, r in enumerate(records)}
    by_q = elo_intervals(records, n_draws, seed, k, r_init, alpha)
    rates = winrate_matrix_ci(records, n_draws, seed, alpha)
    return {"games": len(records), "prompts": len(units), "draws": n_draws, "seed": seed, "k": k, "r_init": r_init,
            "games_without_prompt": sum(u[0] == "game" for u in units),
            "elo": {q: {m: e.to_dict() for m, e in sorted(res.items(), key=lambda kv: -kv[1].rating)}
                    for q, res in by_q.items()},
            "winrate": [{"model": m, "opponent": o, **w.to_dict()} for (m, o), w in rates.items()]}


def format_markdown(report: dict) -> str:
    lines = [f"{report['games']} games, {report['prompts']} prompts; K {report['k']:g}, R_init {report['r_init']:g}, "
             f"{report['draws']} draws, seed {report['seed']}"]
    if report["games_without_prompt"]:
        lines.append(f"{report['games_without_prompt']} games carry no prompt: each is its own prompt in the bootstrap")
    for q, res in report["elo"].items():
        title = {"": "ELO", "mean": "ELO, mean over questions"}.get(q, f"ELO, question {q}")
        lines += ["", f"{title} (rating: mean over orders; 95% CI over orders only, and over games + orders)", "",
                  "| model | ELO | CI orders | CI games + orders |", "|---|---|---|---|"]
        lines += [f"| {m} | {e['rating']:.1f} | [{e['orders_ci95'][0]:.1f}, {e['orders_ci95'][1]:.1f}] "
                  f"| [{e['ci95'][0]:.1f}, {e['ci95'][1]:.1f}] |" for m, e in res.items()]
    models = sorted({w["model"] for w in report["winrate"]})
    cell = {(w["model"], w["opponent"]): w for w in report["winrate"]}
    lines += ["", "win-rate of row over column ((wins + ties/2) / games, 95% CI by prompt; all questions)", "",
              "| | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    for m in models:
        cells = [f"{c['rate']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}]" if (c := cell.get((m, o))) else "–"
                 for o in models]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
