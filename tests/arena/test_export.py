import json

import pytest
from typer.testing import CliRunner

from addbench.arena.export import FIELDS, auto_rows, human_rows
from addbench.arena.runs import load_runs
from addbench.arena.store import Store
from addbench.arena.study import Study
from addbench.cli import app
from addbench.errors import AddbenchError
from addbench.metrics.winrate import read_records

runner = CliRunner()


def vote(rater, left_run, right_run, quality, alignment, control=None, ok=None):
    models = ["good", "mid", "bad"]
    return {"rater": rater, "prompt": "p", "prompt_index": 4, "seed": 1, "left_run": left_run, "right_run": right_run,
            "left_model": models[left_run], "right_model": models[right_run], "quality": quality,
            "alignment": alignment, "control": control, "passed": ok}


def test_each_real_vote_becomes_two_records_with_a_the_lower_run_whatever_its_side():
    rows = human_rows([vote("r1", 0, 1, "left", "right"), vote("r1", 2, 0, "left", "tie"),
                       vote("r1", 1, 1, "left", "left", control="blur", ok=1)], max_fail=0.25)
    assert [tuple(r) for r in rows] == [FIELDS] * 4
    assert rows[:2] == [
        {"prompt": "p", "prompt_index": 4, "seed": 1, "a": "good", "b": "mid", "winner": "a", "question": "quality",
         "rater": "r1"},
        {"prompt": "p", "prompt_index": 4, "seed": 1, "a": "good", "b": "mid", "winner": "b",
         "question": "alignment", "rater": "r1"}]
    assert [(r["a"], r["b"], r["winner"]) for r in rows[2:]] == [("good", "bad", "b"), ("good", "bad", "tie")]


def test_flagged_raters_are_left_out_unless_asked():
    votes = [vote("ok", 0, 1, "left", "left"), vote("sloppy", 0, 1, "right", "right"),
             vote("sloppy", 1, 1, "left", "left", control="noise", ok=0)]
    assert {r["rater"] for r in human_rows(votes, 0.25)} == {"ok"}
    assert {r["rater"] for r in human_rows(votes, 0.25, include_flagged=True)} == {"ok", "sloppy"}


def test_cli_export_writes_jsonl_that_addbench_elo_reads(run_dirs, tmp_path):
    db = tmp_path / "study.sqlite"
    study = Study(load_runs(run_dirs), Store(db), pairs=6, controls_every=4)
    for it in study.schedule("r1"):
        good = "right" if it.control_side == "left" else "left"
        study.vote("r1", it, {"quality": good, "alignment": good if it.control else "tie"})
    out, table = tmp_path / "prefs.jsonl", tmp_path / "elo.csv"
    res = runner.invoke(app, ["arena", "export", "--db", str(db), "--out", str(out), "--table", str(table)])
    assert res.exit_code == 0, res.output
    from addbench.eval.tables import leaderboard_rows

    rows, _ = leaderboard_rows([], [str(table)])  # the leaderboard's elo[human,*] columns
    assert len(rows) == len(run_dirs) and all({"elo[human,quality]", "elo[human,alignment]"} <= r["metrics"].keys() for r in rows)
    assert all(r["metrics"]["elo[human,quality]"]["higher_is_better"] is True for r in rows)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 12 and all(tuple(r) == FIELDS for r in lines)
    assert {r["question"] for r in lines} == {"quality", "alignment"}
    records = read_records(out)
    assert len(records) == 12 and records[0].rater == "r1" and records[0].criterion == "quality"
    elo = runner.invoke(app, ["elo", str(out), "--draws", "20", "--format", "json"])
    assert elo.exit_code == 0, elo.output
    assert set(json.loads(elo.output)["elo"]) == {"quality", "alignment", "mean"}
    missing = runner.invoke(app, ["arena", "export", "--db", str(tmp_path / "none.sqlite"), "--out", str(out)])
    assert missing.exit_code == 2 and "no such study" in missing.output


def test_the_automatic_arena_judges_every_pair_by_the_score(run_dirs, tmp_path):
    runs = load_runs(run_dirs)
    rows, skipped = auto_rows(runs, "pickscore")
    assert skipped == 0 and len(rows) == 3 * 6  # 3 model pairs x 6 (prompt, seed)
    assert {(r["a"], r["b"], r["winner"]) for r in rows} == {("good", "mid", "a"), ("good", "bad", "a"),
                                                             ("mid", "bad", "a")}
    assert {r["question"] for r in rows} == {"pickscore[fake]"} and rows[0]["rater"] == "auto:pickscore[fake]"
    assert {r["winner"] for r in auto_rows(runs[:2], "hpsv2", "quality")[0]} == {"a"}
    with pytest.raises(AddbenchError, match="not a column"):
        auto_rows(runs, "mps")
    out = tmp_path / "auto.jsonl"
    res = runner.invoke(app, ["arena", "auto", *map(str, run_dirs), "--metric", "pickscore", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(read_records(out)) == 18


def test_ties_and_lower_is_better_scores(tmp_path, new_run):
    runs = load_runs([new_run(tmp_path, "x", 1, higher_is_better=False),
                      new_run(tmp_path, "y", 1, 0.5, higher_is_better=False)])
    assert {r["winner"] for r in auto_rows(runs, "pickscore[fake]")[0]} == {"a"}  # lower wins
    assert {r["winner"] for r in auto_rows(runs, "hpsv2")[0]} == {"tie"}
