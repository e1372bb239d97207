"""Pairwise win-rates: from preference records (human studies) and from a preference model's scores.

Records file (CSV with a header row, or JSONL with one object a line)::

    model_a,model_b,winner,prompt[,criterion][,prompt_index][,seed][,rater]
    add-xl,sdxl,a,"a cat on a mat"

    {"prompt": "a cat on a mat", "prompt_index": 17, "seed": 0, "a": "add-xl", "b": "sdxl", "winner": "a",
     "question": "quality", "rater": "r03"}

``model_a``/``model_b`` may be written ``a``/``b``, ``criterion`` may be written ``question``; ``winner`` is ``a``,
``b`` or ``tie``; ``prompt_index`` and ``seed`` are integers. :func:`read_records` validates every line and names the
bad one. Win-rate intervals resample **prompts** (``prompt_index``, else the prompt text; a game with neither is its
own prompt): every game of a drawn prompt comes along, since games on one prompt (its seeds, raters, questions) are
not independent.

Automatic win-rate of model A against model B from per-prompt scores of one preference model
(PickScore, HPSv2, MPS, ...), aligned by key (prompt index, seed) or prompt:

* ``method="fraction"``: share of keys where A scores higher, ties count one half;
* ``method="sigmoid"``: mean of ``sigmoid(s_A - s_B)``. For scores that are logits
  (PickScore and MPS: ``logit_scale.exp() * cos``) this is the model's own preference probability,
  i.e. the softmax over the two images that PickScore's reference snippet computes.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from addbench.errors import AddbenchError
from addbench.metrics import intervals

WINNERS = ("a", "b", "tie")


@dataclass(frozen=True)
class Record:
    model_a: str
    model_b: str
    winner: str  # "a" | "b" | "tie"
    prompt: str = ""
    criterion: str = ""
    prompt_index: int | None = None
    seed: int | None = None
    rater: str = ""


ALIASES = {"model_a": "a", "model_b": "b", "criterion": "question"}


def _field(row: dict, name: str, where: str, required: bool = False):
    """``row[name]`` or its alias (both given: they must agree)."""
    alias = ALIASES.get(name)
    values = [row[k] for k in (name, alias) if k and row.get(k) not in (None, "")]
    if len(values) == 2 and values[0] != values[1]:
        raise AddbenchError(f"{where}: {name} {values[0]!r} and {alias} {values[1]!r} disagree")
    if required and not values:
        also = f" (or {alias!r})" if alias else ""
        raise AddbenchError(f"{where}: missing field {name!r}{also}; records need model_a, model_b, winner")
    return values[0] if values else None


def _int_field(row: dict, name: str, where: str) -> int | None:
    v = row.get(name)
    if v is None or v == "":
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    raise AddbenchError(f"{where}: {name} must be an integer; got {v!r}")


def _record(row: dict, where: str) -> Record:
    if not isinstance(row, dict):
        raise AddbenchError(f"{where}: expected a JSON object, got {type(row).__name__}")
    model_a, model_b = (str(_field(row, k, where, required=True)) for k in ("model_a", "model_b"))
    winner = str(_field(row, "winner", where, required=True)).strip().lower()
    if winner not in WINNERS:
        raise AddbenchError(f"{where}: winner must be one of a, b, tie; got {row['winner']!r}")
    if model_a == model_b:
        raise AddbenchError(f"{where}: model_a and model_b are both {model_a!r}")
    return Record(model_a, model_b, winner, str(row.get("prompt") or ""), str(_field(row, "criterion", where) or ""),
                  _int_field(row, "prompt_index", where), _int_field(row, "seed", where), str(row.get("rater") or ""))


def read_records(path: str | Path) -> list[Record]:
    """Read a CSV (header row) or JSONL file of pairwise preference records."""
    path = Path(path)
    if not path.is_file():
        raise AddbenchError(f"records file {path} not found; give a CSV or JSONL with model_a, model_b, winner")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise AddbenchError(f"{path}:{n}: not JSON ({exc.msg})") from None
                out.append(_record(row, f"{path}:{n}"))
        return out
    reader = csv.DictReader(text.splitlines())
    return [_record(row, f"{path}:{n}") for n, row in enumerate(reader, 2)]


@dataclass(frozen=True)
class WinRate:
    wins: int
    losses: int
    ties: int

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def rate(self) -> float:
        """(wins + ties/2) / games."""
        return (self.wins + 0.5 * self.ties) / self.n if self.n else float("nan")

    @property
    def rate_excluding_ties(self) -> float:
        decided = self.wins + self.losses
        return self.wins / decided if decided else float("nan")

    def to_dict(self) -> dict:
        return {"wins": self.wins, "losses": self.losses, "ties": self.ties, "n": self.n, "rate": self.rate,
                "rate_excluding_ties": self.rate_excluding_ties}


def winrate_from_records(records: list[Record], model: str, opponent: str) -> WinRate:
    """Win/loss/tie counts of ``model`` against ``opponent`` over the records (either side order)."""
    w = l = t = 0
    for r in records:
        if {r.model_a, r.model_b} != {model, opponent}:
            continue
        if r.winner == "tie":
            t += 1
        elif (r.winner == "a") == (r.model_a == model):
            w += 1
        else:
            l += 1
    return WinRate(w, l, t)


def winrate_matrix(records: list[Record]) -> dict[tuple[str, str], WinRate]:
    """``{(model, opponent): WinRate}`` for every ordered pair that met at least once."""
    pairs = {(r.model_a, r.model_b) for r in records} | {(r.model_b, r.model_a) for r in records}
    return {p: winrate_from_records(records, *p) for p in sorted(pairs)}


METHODS = ("fraction", "sigmoid")


def _pairwise_values(scores_a: dict, scores_b: dict, method: str) -> np.ndarray:
    if method not in METHODS:
        raise AddbenchError(f"unknown win-rate method {method!r}; use one of {', '.join(METHODS)}")
    keys = sorted(set(scores_a) & set(scores_b), key=repr)
    if not keys:
        raise AddbenchError("the two score sets share no keys (prompt index, seed); score both models on one suite")
    d = np.array([scores_a[k] - scores_b[k] for k in keys], dtype=np.float64)
    if method == "fraction":
        return (d > 0) + 0.5 * (d == 0)
    return 1.0 / (1.0 + np.exp(-d))


def pairwise_winrate(scores_a: dict, scores_b: dict, method: str = "fraction") -> float:
    """Automatic win-rate of A over B from one preference model's per-key scores (keys both have)."""
    return float(_pairwise_values(scores_a, scores_b, method).mean())


def pairwise_winrate_ci(scores_a: dict, scores_b: dict, method: str = "fraction", n_boot: int = 1000,
                        seed: int = 0, alpha: float = 0.05) -> tuple[float, float, float]:
    """(rate, lo, hi): percentile interval of a bootstrap over **prompts** (a key ``(prompt_index, seed)`` belongs
    to its prompt, any other key is a prompt of its own; all keys of a drawn prompt come along)."""
    v = _pairwise_values(scores_a, scores_b, method)
    keys = sorted(set(scores_a) & set(scores_b), key=repr)  # the order of _pairwise_values
    unit = _unit_index([k[0] if isinstance(k, tuple) else k for k in keys])
    lo, hi = _ratio_interval(np.bincount(unit, v), np.bincount(unit), n_boot, seed, alpha)
    return float(v.mean()), lo, hi


# Bootstrap by prompt.
def _unit_index(units: list) -> np.ndarray:
    """Each item's index into the sorted distinct units."""
    order = {u: i for i, u in enumerate(sorted(set(units), key=repr))}
    return np.array([order[u] for u in units], dtype=np.int64)


def _ratio_interval(wins: np.ndarray, games: np.ndarray, n_boot: int, seed: int,
                    alpha: float) -> tuple[float, float]:
    """Percentile interval of ``sum(wins) / sum(games)`` over draws of units (``intervals.prompt_count_chunks``);
    draws without a game are skipped."""
    draws = np.empty(n_boot)
    for first, counts in intervals.prompt_count_chunks(len(games), n_boot, seed):
        with np.errstate(invalid="ignore", divide="ignore"):
            draws[first:first + len(counts)] = (counts @ wins) / (counts @ games)
    point = float(wins.sum() / games.sum())
    return intervals.percentile_interval(draws[np.isfinite(draws)], point, alpha)


def prompt_unit(rec: Record, i: int) -> tuple:
    """The unit a game is resampled with: its prompt index, else its prompt text, else the game ``i`` itself."""
    if rec.prompt_index is not None:
        return ("index", rec.prompt_index)
    return ("prompt", rec.prompt) if rec.prompt else ("game", i)


@dataclass(frozen=True)
class WinRateCI:
    rate: float  # (wins + ties/2) / games of the model against the opponent
    lo: float
    hi: float
    games: int
    prompts: int

    def to_dict(self) -> dict:
        return {"rate": self.rate, "lo": self.lo, "hi": self.hi, "games": self.games, "prompts": self.prompts}


def winrate_matrix_ci(records: list[Record], n_boot: int = 1000, seed: int = 0,
                      alpha: float = 0.05) -> dict[tuple[str, str], WinRateCI]:
    """``{(model, opponent): WinRateCI}`` for every ordered pair that met, intervals from a bootstrap by prompt
    (:func:`prompt_unit`)."""
    out = {}
    for pair in sorted({tuple(sorted((r.model_a, r.model_b))) for r in records}):
        games = [(i, r) for i, r in enumerate(records) if {r.model_a, r.model_b} == set(pair)]
        score = np.array([0.5 if r.winner == "tie" else float((r.winner == "a") == (r.model_a == pair[0]))
                          for _, r in games])
        unit = _unit_index([prompt_unit(r, i) for i, r in games])
        wins, n = np.bincount(unit, score), np.bincount(unit).astype(np.float64)
        lo, hi = _ratio_interval(wins, n, n_boot, seed, alpha)
        rate = float(score.mean())
        out[pair] = WinRateCI(rate, lo, hi, len(games), int(unit.max()) + 1)
        out[pair[::-1]] = WinRateCI(1 - rate, 1 - hi, 1 - lo, len(games), int(unit.max()) + 1)
    return dict(sorted(out.items()))

