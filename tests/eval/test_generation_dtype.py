"""The generation dtype is a suite property (``generation_dtype``), part of the run key and of record.json, and an
explicit ``--dtype`` off the suite's runs under its own run key and is labelled in leaderboards (like
``--metric-precision``)."""
import json

import pytest
import torch
from typer.testing import CliRunner

import fakes
from addbench.cli import app
from addbench.errors import AddbenchError
from addbench.eval.records import read_record
from addbench.eval.runner import evaluate, run_key
from addbench.eval.samples import read_png
from addbench.eval.tables import leaderboard_frame, measured_rows
from addbench.prompts import load_prompts
from addbench.suites import canonical_dtype, load_suite

runner = CliRunner()


class DtypeGenerator(fakes.FakeGenerator):
    """The fake generator, saying which dtype it runs in (as DiffusionGenerator.describe does)."""

    def __init__(self, dtype: str = "float32"):
        super().__init__()
        self.dtype = dtype

    def describe(self) -> dict:
        return {**super().describe(), "dtype": self.dtype}


def _with_dtype(fake_suite, dtype: str):
    path = fake_suite.parent / f"fake-suite-{dtype}.yaml"
    path.write_text(fake_suite.read_text() + f"generation_dtype: {dtype}\n")
    return path


def test_generation_dtype_is_a_suite_property(tmp_path):
    for name in ("toy", "toy-2k", "toy-smoke", "toy-val"):
        s = load_suite(name)
        assert s.generation_dtype == "fp32" and s.resolved["generation_dtype"] == "fp32", name
    coco = load_suite("coco10k")
    assert coco.generation_dtype is None  # the model's default (bf16 on a GPU)
    toy = load_suite("toy-2k")
    assert toy.with_generation_dtype(None) is toy and toy.with_generation_dtype("float32") is toy
    bf16 = toy.with_generation_dtype("bf16")
    assert bf16.generation_dtype == "bf16" and bf16.config_sha256 != toy.config_sha256  # own run key
    assert bf16.with_generation_dtype(torch.float32).config_sha256 == toy.config_sha256
    assert coco.with_generation_dtype("fp32").config_sha256 != coco.config_sha256
    assert canonical_dtype(torch.bfloat16) == "bf16" and canonical_dtype("float16") == "fp16"
    with pytest.raises(AddbenchError, match="unknown dtype 'fp8'"):
        toy.with_generation_dtype("fp8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(open(load_suite("toy-smoke").path).read().replace("generation_dtype: fp32", "generation_dtype: float32"))
    with pytest.raises(AddbenchError, match="generation_dtype must be fp32, bf16, fp16 or unset"):
        load_suite(bad)


def test_run_key_differs_between_dtypes(fake_suite):
    suite = load_suite(fake_suite)
    pset = load_prompts(suite)
    keys = {dt: run_key(g := DtypeGenerator(dt), g.sampler, suite, pset, None) for dt in ("float32", "bfloat16")}
    assert keys["float32"] != keys["bfloat16"]
    # a generator that does not say: the suite's dtype decides
    plain = fakes.FakeGenerator()
    assert run_key(plain, plain.sampler, suite, pset, None) != run_key(
        plain, plain.sampler, suite.with_generation_dtype("fp32"), pset, None)


def test_dtype_off_the_suites_runs_under_its_own_key_and_is_labelled(fake_suite, tmp_path):
    suite = _with_dtype(fake_suite, "fp32")
    own = evaluate(DtypeGenerator("float32"), suite, out_dir=tmp_path / "runs", batch_size=4, progress=False)
    assert own.record["suite"]["generation_dtype"] == "fp32" and own.record["model"]["dtype"] == "float32"
    # a generator loaded in another dtype than the suite fixes is refused, unless that dtype is asked for
    with pytest.raises(AddbenchError, match="generates in bf16 but suite fake-suite generates in fp32"):
        evaluate(DtypeGenerator("bfloat16"), suite, out_dir=tmp_path / "runs", batch_size=4, progress=False)
    off = evaluate(DtypeGenerator("bfloat16"), suite, out_dir=tmp_path / "runs", batch_size=4, progress=False,
                   dtype="bf16")
    assert off.run_dir != own.run_dir and off.record["run_key"] != own.record["run_key"]
    assert off.record["suite"]["generation_dtype"] == "bf16" and off.record["model"]["dtype"] == "bfloat16"
    assert off.record["suite"]["config_sha256"] != own.record["suite"]["config_sha256"]
    assert json.loads((off.run_dir / "config.json").read_text())["generation_dtype"] == "bf16"


def test_leaderboard_labels_the_dtype_and_reads_old_records(tmp_path):
    def record(name, suite, model_dtype=None, **suite_fields):
        d = tmp_path / name
        d.mkdir()
        rec = {"format": "addbench-record/1", "complete": True,
               "model": {"name": name, "nfe": 1, **({"dtype": model_dtype} if model_dtype else {})},
               "suite": {"name": suite, "limit": None, **suite_fields},
               "metrics": {"m": {"value": 1.0, "ci95": None, "higher_is_better": True}}}
        (d / "record.json").write_text(json.dumps(rec))
        return d / "record.json"

    rows, _ = measured_rows([
        record("fp32", "toy-2k", "float32", generation_dtype="fp32"),
        record("bf16", "toy-2k", "bfloat16", generation_dtype="bf16"),
        record("old-gpu", "toy-2k", "bfloat16"),  # written before the field: its model dtype, as recorded
        record("old-cpu", "toy-2k", "float32"),
        record("older", "toy-2k"),  # no dtype at all: unknown, no label, no crash
        record("coco-default", "coco10k", "bfloat16", generation_dtype=None),
        record("coco-fp32", "coco10k", "float32", generation_dtype="fp32"),
        record("user-suite", "not-registered", "bfloat16", generation_dtype="bf16"),
    ])
    assert [r["suite"] for r in rows] == [
        "toy-2k", "toy-2k (bf16 generation)", "toy-2k (bf16 generation)", "toy-2k", "toy-2k",
        "coco10k", "coco10k (fp32 generation)", "not-registered"]
    assert list(leaderboard_frame(rows[1:3])["suite"]) == ["toy-2k (bf16 generation)"] * 2  # never hidden
    assert "suite" not in leaderboard_frame(rows[:1]).columns


def _eval(args):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, (r.output, r.exception)
    return r


def _records(runs):
    return {(rec := read_record(p))["suite"]["generation_dtype"]: (p.parent, rec) for p in runs.glob("*/record.json")}


def test_toy_eval_records_the_suites_fp32_and_bf16_is_its_own_labelled_run(tmp_path, monkeypatch):
    """A toy pipeline (tiny, random weights: bf16 convolutions are slow on a CPU; the shipped teacher's records are
    checked in tests/toy/test_toy_end_to_end.py) on toy-smoke, on the CPU. By default the suite's fp32 reaches the
    loader explicitly (not left to the device default, bf16 on a GPU) and is recorded; --dtype bf16 really generates
    in bf16, under its own run key, and the leaderboard labels it; the default run then resumes untouched."""
    import functools

    import addbench.bases.loading as loading
    import addbench.eval.runner as runner_mod
    from addbench.bases.tiny import save_tiny_pipeline

    monkeypatch.setattr(runner_mod, "evaluate", functools.partial(evaluate, n_boot=20))  # FID's 1000 draws: 30 s
    asked = []
    real = loading.load_generator
    monkeypatch.setattr(loading, "load_generator", lambda *a, **kw: asked.append(kw["dtype"]) or real(*a, **kw))
    model = save_tiny_pipeline("toy", tmp_path / "tiny-toy")
    args = ["eval", "--model", model, "--suite", "toy-smoke", "--device", "cpu", "--steps", "1", "--limit", "2",
            "--out", tmp_path / "runs", "--no-progress"]
    _eval(args)
    assert asked == [torch.float32]
    (_, fp32), = _records(tmp_path / "runs" / "toy-smoke").values()
    assert fp32["suite"]["generation_dtype"] == "fp32" and fp32["model"]["dtype"] == "float32"
    _eval(args + ["--dtype", "bf16"])
    assert asked[-1] == torch.bfloat16
    recs = _records(tmp_path / "runs" / "toy-smoke")
    assert set(recs) == {"fp32", "bf16"}
    (d32, fp32), (d16, bf16) = recs["fp32"], recs["bf16"]
    assert fp32["model"]["dtype"] == "float32" and bf16["model"]["dtype"] == "bfloat16"
    assert d32 != d16 and fp32["run_key"] != bf16["run_key"]
    assert fp32["model"]["model_hash"] == bf16["model"]["model_hash"]  # same weights and sampler: the dtype keys it
    assert {p.name for p in (d32 / "samples").iterdir()} == {p.name for p in (d16 / "samples").iterdir()}
    assert any(not torch.equal(read_png(d32 / "samples" / n.name)[0], read_png(n)[0])  # bf16 pixels differ
               for n in (d16 / "samples").iterdir())
    assert read_png(next((d16 / "samples").iterdir()))[1]["dtype"] == "bf16"  # in each sample's provenance too
    out = _eval(["leaderboard", tmp_path / "runs" / "toy-smoke"]).output
    assert "toy-smoke (first 2) (bf16 generation)" in out and "toy-smoke (first 2) |" in out
    assert f"run: {d32}" in " ".join(_eval(args).output.split())  # the same command again: the finished fp32 run
