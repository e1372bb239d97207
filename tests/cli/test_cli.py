import json

import pandas as pd
from PIL import Image
from typer.testing import CliRunner

from addbench.cli import app
from cli_errors import one_line_error as _err  # tests/cli_errors.py

runner = CliRunner()


def _ok(args):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, (r.output, r.exception)
    return r


def test_ls_one_line_each():
    r = _ok(["ls", "suites"])
    names = [ln.split()[0] for ln in r.output.splitlines()]
    assert {"coco5k", "coco10k", "coco30k", "parti-diversity", "hpsv2-bench"} <= set(names)
    assert "v1:" in r.output
    assert "clip_score" in _ok(["ls", "metrics"]).output
    assert "dmdx.adm" in _ok(["ls", "distillers"]).output
    assert "sdxl" in _ok(["ls", "bases"]).output
    assert "error: addbench ls takes one of" in _err(["ls", "models"])


def test_eval_dry_run_prints_resolved_json(monkeypatch):
    monkeypatch.setenv("ADDBENCH_DATA", "/data")
    r = _ok(["eval", "--model", "sdxl", "--suite", "coco5k", "--steps", "1", "--dry-run",
             "--metric", "clip_score.pretrained=/w/clip.bin"])
    cfg = json.loads(r.output)
    assert cfg["model"] == "sdxl" and cfg["sampler_overrides"] == {"steps": 1}
    s = cfg["suite_resolved"]
    assert s["name"] == "coco5k" and len(s["config_sha256"]) == 64
    assert s["metrics"][0]["kwargs"]["reference"] == "/data/coco2017/val2017"
    assert s["metrics"][1]["kwargs"]["pretrained"] == "/w/clip.bin"


def test_user_errors_are_one_red_line(tmp_path):
    assert "unknown suite 'nope'" in _err(["eval", "--model", "toy", "--suite", "nope"])
    assert "expects METRIC.KEY=VALUE" in _err(["eval", "-m", "toy", "-s", "coco5k", "--metric", "fid=1", "--dry-run"])
    assert "unknown distiller 'gan'" in _err(["train", "gan", "--base", "toy"])
    assert "not built" in _err(["prompts", "show", "coco10k"])
    bad = tmp_path / "bad.json"
    bad.write_text("{\"annotations\": [")
    assert "maybe truncated" in _err(["prompts", "build", "coco5k", "--from", bad])
    assert "unknown published table" in _err(["leaderboard", "--published", "nope"])
    assert "exactly one of --model or --base" in _err(["latency"])


def test_prompts_build_then_show(tmp_path):
    anns = [{"image_id": i, "id": 10 * i + k, "caption": f"image {i} caption {k}"} for i in range(5) for k in range(2)]
    src = tmp_path / "captions.json"
    src.write_text(json.dumps({"annotations": anns}))
    suite = tmp_path / "mini.yaml"
    suite.write_text("version: 1\nprompts: {name: mini, format: coco_captions, expected: {images: 5},"
                     " selection: {rule: first_images, n: 3}}\nmetrics: [fid]\n")
    r = _ok(["prompts", "build", suite, "--from", src])
    assert "mini: 3 prompts, sha256" in r.output
    r = _ok(["prompts", "show", suite, "-n", "2"])
    assert r.output.splitlines()[1:] == ["0\timage 0 caption 0", "1\timage 1 caption 0"]


def test_eval_then_leaderboard(fake_suite, fake_model, tmp_path):
    r = _ok(["eval", "--model", "fake", "--suite", fake_suite, "--out", tmp_path / "runs", "--device", "cpu",
             "--no-progress", "-b", "4"])
    assert "fake_brightness[x100] ↑" in r.output and "run: " in r.output
    run_dir = r.output.split("run: ")[1].strip()
    df = pd.read_parquet(f"{run_dir}/per_sample.parquet")
    assert len(df) == 21
    _ok(["eval", "--model", "fake", "--suite", fake_suite, "--out", tmp_path / "runs", "--steps", "1", "--no-progress"])
    r = _ok(["leaderboard", tmp_path / "runs", "--format", "csv"])
    table = pd.read_csv(__import__("io").StringIO(r.output))  # numeric: value, ci_lo, ci_hi per metric
    assert list(table["nfe"]) == [1, 4] and set(table["source"]) == {"measured"}
    assert {"fake_gap", "fake_brightness", "fake_brightness_ci_lo", "fake_brightness_ci_hi"} <= set(table.columns)
    assert (table["fake_brightness_ci_lo"] <= table["fake_brightness"]).all() and table["fake_gap_ci_lo"].isna().all()
    _ok(["leaderboard", tmp_path / "runs", "--format", "parquet", "--out", tmp_path / "lb.parquet"])
    assert list(pd.read_parquet(tmp_path / "lb.parquet").columns) == list(table.columns)
    meta = json.loads((tmp_path / "lb.meta.json").read_text())["metrics"]
    assert meta["fake_gap"]["higher_is_better"] is False and meta["fake_brightness"]["id"] == "fake_brightness[x100]"
    assert "needs --out" in _err(["leaderboard", tmp_path / "runs", "--format", "parquet"])
    r = _ok(["leaderboard", f"{tmp_path}/runs/*/*", "--format", "md", "--published", "dmdx_table1", "--ci", "interval"])
    lines = r.output.splitlines()
    assert lines[0].startswith("| model | NFE | suite |") and lines[1].startswith("|---|")
    assert any("DMDX" in ln and "35.2557" in ln and "published: DMDX" in ln for ln in lines)
    measured = [ln for ln in lines if "| measured |" in ln]
    assert len(measured) == 2 and "[" in measured[0]
    out = tmp_path / "lb.tex"
    _ok(["leaderboard", tmp_path / "runs", "--format", "latex", "--out", out])
    tex = out.read_text()
    assert tex.startswith("\\begin{tabular}") and "fake\\_gap $\\downarrow$" in tex
    assert "$\\pm$" in tex or " [" in tex  # ± only where the interval is symmetric to the digits shown


def test_samples_grid(fake_model, tmp_path):
    grid = tmp_path / "g.png"
    r = _ok(["samples", "--model", "fake", "-p", "a cat", "-p", "a dog", "--seeds", "0,1,2", "--steps", "1,4",
             "--grid", grid, "--device", "cpu", "--no-labels"])
    assert "2 row(s) x 6 column(s)" in r.output
    im = Image.open(grid)
    assert im.size == (6 * 18 + 2, 2 * 18 + 2)
    assert "comma-separated integers" in _err(["samples", "--model", "fake", "-p", "x", "--seeds", "a,b", "--grid", grid])


def test_train_wires_entry(monkeypatch, tmp_path):
    import addbench.train.entry as entry
    calls = []
    monkeypatch.setattr(entry, "train", lambda *a, **k: calls.append((a, k)) or tmp_path / "ckpt")
    r = _ok(["train", "dmd2", "--base", "toy", "--out", tmp_path / "o", "--set", "lr=1e-5", "--set", "batch=4"])
    assert calls == [(("dmd2", "toy", tmp_path / "o", ["lr=1e-5", "batch=4"], False), {})]
    assert "checkpoint:" in r.output
    assert "expects KEY=VALUE" in _err(["train", "dmd2", "--base", "toy", "--set", "lr"])


def test_latency_wires_options(monkeypatch, tmp_path):
    import sys
    import types
    calls = []
    mod = types.ModuleType("addbench.eval.latency")
    mod.measure_latency = lambda **kw: calls.append(kw) or {"median_ms": {"1": 12.5}}
    monkeypatch.setitem(sys.modules, "addbench.eval.latency", mod)
    r = _ok(["latency", "--base", "sdxl", "--random-weights", "--res", "1024", "--nfe", "1,2,4", "--batch", "2",
             "--runs", "5", "--compile", "--device", "cpu", "--out", tmp_path / "new" / "lat.json"])
    on_record = calls[0].pop("on_record")
    assert calls == [{"model": None, "base": "sdxl", "random_weights": True, "res": 1024, "nfe": [1, 2, 4], "batch": 2,
                      "runs": 5, "compile": True, "device": "cpu", "dtype": None, "guidance": 1.0,
                      "fast_options": None, "profile": False, "compile_cache": None, "modes": ("eager", "fast")}]
    assert json.loads(r.output) == {"median_ms": {"1": 12.5}} == json.loads((tmp_path / "new" / "lat.json").read_text())
    on_record({"records": [{"nfe": 1}], "complete": False})  # what a killed run leaves: the records so far
    assert json.loads((tmp_path / "new" / "lat.json").read_text()) == {"records": [{"nfe": 1}], "complete": False}
    on_record({"records": [{"nfe": 1}, {"nfe": 2}], "complete": False})
    assert len(json.loads((tmp_path / "new" / "lat.json").read_text())["records"]) == 2
    from addbench.bases.fast import FastOptions

    calls.clear()
    _ok(["latency", "--base", "sdxl", "--random-weights", "--fast", "graph,graph+compile+text+streams", "--inductor",
         "freezing=true", "--compile-mode", "max-autotune-no-cudagraphs", "--profile", "--device", "cpu"])
    assert calls[0]["fast_options"] == [FastOptions(text_streams=False), FastOptions(
        compile="max-autotune-no-cudagraphs", compile_text=True, text_streams=True, inductor=(("freezing", True),))]
    assert calls[0]["profile"] is True and calls[0]["compile"] is False and calls[0]["guidance"] == 1.0
    assert calls[0]["on_record"] is None  # no --out: nothing to write
    calls.clear()
    _ok(["latency", "--base", "sdxl", "--random-weights", "--nfe", "2,50", "--guidance", "7.5", "--device", "cpu"])
    assert calls[0]["guidance"] == 7.5 and calls[0]["nfe"] == [2, 50]
    calls.clear()
    _ok(["latency", "--base", "sdxl", "--random-weights", "--compile", "--no-eager", "--compile-cache", "off",
         "--device", "cpu"])
    assert calls[0]["modes"] == ("fast",) and calls[0]["compile_cache"] is False
    calls.clear()
    _ok(["latency", "--base", "sdxl", "--random-weights", "--compile", "--compile-cache", tmp_path / "cc", "--device", "cpu"])
    assert calls[0]["compile_cache"] == str(tmp_path / "cc")
    calls.clear()
    _ok(["latency", "--base", "sdxl", "--random-weights", "--compile", "--inductor", "freezing=true", "--device", "cpu"])
    assert calls[0]["fast_options"] == [FastOptions(compile="default", inductor=(("freezing", True),))]
    calls.clear()
    assert "give one of them" in _err(["latency", "--base", "sdxl", "--compile", "--fast", "graph"])
    assert "need a compiled variant" in _err(["latency", "--base", "sdxl", "--inductor", "freezing=true"])
    assert "unknown fast variant 'turbo'" in _err(["latency", "--base", "sdxl", "--fast", "turbo"])
    assert calls == []
