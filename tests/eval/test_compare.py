"""addbench compare: paired bootstrap over prompts between two synthetic runs, and its comparability checks."""
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from addbench.cli import app
from addbench.errors import AddbenchError
from addbench.eval.compare import NO_PAIRED_SET, compare_runs
from addbench.metrics.intervals import paired_bootstrap
from cli_errors import one_line_error as _err  # tests/cli_errors.py

CLIP = "clip_score[ViT-B-32,x100]"
FID = "fid[inception,clean]"
PROMPTS, SEEDS, SHIFT = 60, (0, 1), 0.5
runner = CliRunner()


def write_run(path, values: np.ndarray, *, suite_hash="s1", dtype="float32", metric_id=CLIP, fid=20.0,
              complete=True, reference=None):
    """A run dir: record.json + per_sample.parquet, ``values[prompt, seed]`` the per-sample metric."""
    path.mkdir(parents=True)
    rows = [{"prompt_index": p, "seed": s, "prompt": f"prompt {p}", "image": f"samples/{p}-{s}.png",
             metric_id: float(values[p, j])} for p in range(PROMPTS) for j, s in enumerate(SEEDS)]
    pd.DataFrame(rows).to_parquet(path / "per_sample.parquet", index=False)
    ref = {"weights": [], "reference": {"source": "refs.npz", "sha256": reference * 32}} if reference else None
    fid_entry = {"name": "fid", "value": fid, "ci95": [fid - 1, fid + 2], "higher_is_better": False,
                 "kwargs": {}, "per": "set", **({"provenance": ref} if ref else {})}
    record = {"format": "addbench-record/1", "complete": complete, "run_key": "0" * 64,
              "model": {"name": path.name, "model_hash": path.name, "nfe": 1, "dtype": dtype},
              "suite": {"name": "toy", "version": 1, "hash": suite_hash, "config_sha256": "c1", "prompt_sha256": "p1",
                        "n_prompts": PROMPTS, "seeds": list(SEEDS), "limit": None, "generation_dtype": "fp32"},
              "metrics": {metric_id: {"name": metric_id.split("[")[0], "value": float(values.mean()),
                                      "ci95": None, "higher_is_better": True, "kwargs": {}, "per": "sample"},
                          FID: fid_entry},
              "provenance": {"libraries": {}, "python": "3.11", "device": "cpu", "world_size": 1,
                             "git_commit": None, "timestamp": "2026-12-03T00:00:00"}}
    (path / "record.json").write_text(json.dumps(record))
    return path


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    base = 30 + 3 * rng.standard_normal((PROMPTS, 1)) + rng.standard_normal((PROMPTS, len(SEEDS)))
    return base, base + SHIFT + 0.3 * rng.standard_normal((PROMPTS, len(SEEDS)))


def test_a_known_shift_is_found(tmp_path, scores):
    a = write_run(tmp_path / "a", scores[0])
    b = write_run(tmp_path / "b", scores[1], fid=18.0)
    res = compare_runs(a, b, n_boot=2000)
    clip, fid = {m["id"]: m for m in res["metrics"]}[CLIP], {m["id"]: m for m in res["metrics"]}[FID]
    lo, hi = clip["ci95"]
    assert lo < SHIFT < hi and lo > 0
    assert clip["diff"] == pytest.approx(scores[1].mean() - scores[0].mean())
    assert clip["p"] < 0.01 and clip["n_prompts"] == PROMPTS and clip["note"] == "B better"
    assert fid["diff"] == pytest.approx(-2.0) and fid["ci95"] is None and fid["note"] == NO_PAIRED_SET


def test_identical_runs_differ_by_zero_with_p_one(tmp_path, scores):
    a = write_run(tmp_path / "a", scores[0])
    b = write_run(tmp_path / "b", scores[0])
    clip = {m["id"]: m for m in compare_runs(a, b, n_boot=500)["metrics"]}[CLIP]
    assert clip["diff"] == 0 and clip["ci95"] == (0, 0) and clip["p"] == 1
    assert clip["note"] == "no difference at 95%"


def test_cli_markdown_and_json(tmp_path, scores):
    a = write_run(tmp_path / "a", scores[0])
    b = write_run(tmp_path / "b", scores[1])
    r = runner.invoke(app, ["compare", str(a), str(b), "--draws", "300"])
    assert r.exit_code == 0, r.output
    assert "| clip_score[ViT-B-32,x100] ↑ |" in r.output and "no paired interval: set-level metric" in r.output
    r = runner.invoke(app, ["compare", str(a), str(b), "--draws", "300", "--format", "json", "--metrics", "clip_score"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert [m["id"] for m in out["metrics"]] == [CLIP] and out["draws"] == 300 and out["forced"] == []


@pytest.mark.parametrize("change, message", [
    (dict(suite_hash="s2"), "different suite hash (s1 vs s2)"),
    (dict(metric_id="clip_score[ViT-L-14,x100]"), "metric ids differ (only in one run: clip_score[ViT-B-32,x100], "
                                                  "clip_score[ViT-L-14,x100])"),
    (dict(dtype="bfloat16"), "different generation dtype (fp32 vs bf16)"),
    (dict(reference="b2"), "fid[inception,clean]: different reference statistics (a1a1"),
])
def test_non_comparable_runs_are_refused_in_one_line(tmp_path, scores, change, message):
    a = write_run(tmp_path / "a", scores[0], reference="a1")
    b = write_run(tmp_path / "b", scores[1], **{"reference": "a1", **change})
    line = _err(["compare", a, b])
    assert message in line and "--force" in line
    forced = compare_runs(a, b, n_boot=100, force=True)
    assert any(message in p for p in forced["forced"])


def test_incomplete_runs_are_refused_even_forced(tmp_path, scores):
    a = write_run(tmp_path / "a", scores[0], complete=False)
    b = write_run(tmp_path / "b", scores[1])
    assert "incomplete run" in _err(["compare", a, b, "--force"])
    with pytest.raises(AddbenchError, match="no metric matches --metrics nope"):
        compare_runs(b, b, ["nope"])


def test_paired_interval_covers_the_true_shift():
    """200 replications, 50 prompts with skewed prompt effects: the 95% interval covers the mean shift >= 90%."""
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(200):
        diffs = SHIFT + rng.gamma(2.0, 0.5, 50) - 1.0  # mean shift exactly SHIFT
        _, lo, hi, _ = paired_bootstrap(diffs, n_boot=400, seed=int(rng.integers(1 << 30)))
        hits += lo <= SHIFT <= hi
    assert hits / 200 >= 0.90
