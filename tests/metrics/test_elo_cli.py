"""addbench elo: ELO with intervals over orders and over games + orders, win-rates by prompt, the preference file."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from addbench.cli import app
from addbench.errors import AddbenchError
from addbench.metrics.elo import elo_intervals
from addbench.metrics.winrate import Record, pairwise_winrate_ci, read_records, winrate_matrix_ci

runner = CliRunner()
P_WIN = 0.7


def games(n_prompts=100, seeds=4, questions=("quality",), seed=0) -> list[dict]:
    """X beats Y with probability 0.7; sides shuffled; one game per (prompt, seed, question)."""
    rng = np.random.default_rng(seed)
    out = []
    for p in range(n_prompts):
        for s in range(seeds):
            for q in questions:
                x_first, x_wins = rng.random() < 0.5, rng.random() < P_WIN
                out.append({"prompt": f"prompt {p}", "prompt_index": p, "seed": s, "question": q,
                            "a": "X" if x_first else "Y", "b": "Y" if x_first else "X",
                            "winner": "a" if x_wins == x_first else "b", "rater": f"r{s}"})
    return out


def write_jsonl(path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def test_elo_interval_over_games_excludes_equality_and_is_wider_than_orders_only():
    recs = [Record(g["a"], g["b"], g["winner"], g["prompt"], g["question"], g["prompt_index"], g["seed"])
            for g in games()]
    res = elo_intervals(recs, n_draws=400, seed=0)["quality"]
    x, y = res["X"], res["Y"]
    assert x.lo > 1000 > y.hi  # two players: their ratings sum to 2,000, equality is 1,000 each
    assert x.rating + y.rating == pytest.approx(2000)
    assert (x.hi - x.lo) > 1.5 * (x.orders_hi - x.orders_lo)


def test_winrate_ci_by_prompt_covers_the_true_rate():
    recs = [Record(g["a"], g["b"], g["winner"], g["prompt"], "", g["prompt_index"], g["seed"]) for g in games()]
    w = winrate_matrix_ci(recs, n_boot=1000, seed=0)
    assert w[("X", "Y")].lo < P_WIN < w[("X", "Y")].hi and w[("X", "Y")].prompts == 100
    assert w[("Y", "X")].rate == pytest.approx(1 - w[("X", "Y")].rate)
    assert w[("Y", "X")].lo == pytest.approx(1 - w[("X", "Y")].hi)


def test_pairwise_winrate_ci_resamples_prompts_not_keys():
    """Seeds that repeat their prompt's value add no information: the interval equals the one-seed interval."""
    rng = np.random.default_rng(0)
    a1 = {(p, 0): float(v) for p, v in enumerate(rng.standard_normal(40))}
    b1 = {(p, 0): 0.0 for p in range(40)}
    a4 = {(p, s): v for (p, _), v in a1.items() for s in range(4)}
    b4 = {(p, s): 0.0 for p in range(40) for s in range(4)}
    assert pairwise_winrate_ci(a4, b4, n_boot=500) == pytest.approx(pairwise_winrate_ci(a1, b1, n_boot=500))


def test_cli_markdown_and_json(tmp_path):
    f = write_jsonl(tmp_path / "prefs.jsonl", games(n_prompts=30, seeds=2, questions=("quality", "alignment")))
    r = runner.invoke(app, ["elo", f, "--draws", "200"])
    assert r.exit_code == 0, r.output
    assert "ELO, question quality" in r.output and "ELO, mean over questions" in r.output
    assert "| X | – | 0." in r.output  # win-rate row X: no diagonal, X over Y
    r = runner.invoke(app, ["elo", f, "--draws", "200", "--format", "json", "--k", "2", "--init", "1500"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["games"] == 120 and out["prompts"] == 30 and set(out["elo"]) == {"alignment", "quality", "mean"}
    assert sum(e["rating"] for e in out["elo"]["mean"].values()) == pytest.approx(3000)
    assert {(w["model"], w["opponent"]) for w in out["winrate"]} == {("X", "Y"), ("Y", "X")}


def test_legacy_fields_still_read(tmp_path):
    f = write_jsonl(tmp_path / "old.jsonl", [{"model_a": "X", "model_b": "Y", "winner": "tie", "criterion": "q"}])
    assert read_records(f) == [Record("X", "Y", "tie", "", "q")]


@pytest.mark.parametrize("line, message", [
    ("{not json", "prefs.jsonl:3: not JSON"),
    ('{"a": "X", "b": "Y", "winner": "c"}', "prefs.jsonl:3: winner must be one of a, b, tie"),
    ('{"a": "X", "winner": "a"}', "prefs.jsonl:3: missing field 'model_b' (or 'b')"),
    ('{"a": "X", "b": "Y", "winner": "a", "prompt_index": "two"}', "prefs.jsonl:3: prompt_index must be an integer"),
    ('{"a": "X", "model_a": "Z", "b": "Y", "winner": "a"}', "prefs.jsonl:3: model_a 'Z' and a 'X' disagree"),
    ('["X", "Y", "a"]', "prefs.jsonl:3: expected a JSON object, got list"),
])
def test_malformed_line_is_one_error_line_with_its_number(tmp_path, line, message):
    f = write_jsonl(tmp_path / "prefs.jsonl", games(n_prompts=1, seeds=2) + [line])
    r = runner.invoke(app, ["elo", f])
    assert r.exit_code == 2, (r.output, r.exception)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.output
    assert "Traceback" not in r.output


def test_empty_file_is_refused(tmp_path):
    with pytest.raises(AddbenchError, match="not found"):
        read_records(tmp_path / "none.jsonl")
    r = runner.invoke(app, ["elo", write_jsonl(tmp_path / "e.jsonl", [])])
    assert r.exit_code == 2 and "holds no games" in r.output
