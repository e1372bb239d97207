import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import fakes
from addbench.errors import AddbenchError
from addbench.eval.records import read_record
from addbench.eval.runner import CRASH_ENV, evaluate, noise_seed
from addbench.eval.samples import read_png

HERE = Path(__file__).parent


def _run(suite, run_dir, **kw):
    return evaluate(fakes.FakeGenerator(), suite, run_dir=run_dir, batch_size=kw.pop("batch_size", 4),
                    progress=False, **kw)


def _frame(run_dir):
    return pd.read_parquet(Path(run_dir) / "per_sample.parquet")


def test_run_dir_layout_and_record(fake_suite, tmp_path):
    res = evaluate(fakes.FakeGenerator(), fake_suite, out_dir=tmp_path / "runs", batch_size=5, progress=False)
    rd = res.run_dir
    assert rd.parent == tmp_path / "runs" / "fake-suite" and rd.name.startswith("fake@test-nfe4-")
    assert sorted(p.name for p in rd.iterdir()) == ["config.json", "per_sample.parquet", "record.json", "samples"]
    assert len(list((rd / "samples").glob("*.png"))) == 7 * 3
    rec = read_record(rd)
    assert rec["complete"] is True
    assert set(rec["metrics"]) == {"fake_brightness[x100]", "fake_gap", "fake_diversity"}
    b = rec["metrics"]["fake_brightness[x100]"]
    lo, hi = b["ci95"]
    assert lo < b["value"] < hi and b["higher_is_better"] and b["per"] == "sample" and b["n"] == 21
    assert rec["metrics"]["fake_gap"]["higher_is_better"] is False and rec["metrics"]["fake_gap"]["ci95"] is None
    assert b["ci"] == {"method": "percentile", "draws": 1000, "level": 0.95, "unit": "prompt"}  # how ci95 was made
    assert rec["metrics"]["fake_gap"]["ci"] is None and rec["metrics"]["fake_diversity"]["ci"]["method"] == "percentile"
    assert rec["metrics"]["fake_diversity"]["per"] == "prompt"
    assert rec["suite"]["prompt_sha256"] and rec["suite"]["hash"] != rec["suite"]["config_sha256"]
    assert rec["model"]["model_hash"] == "f" * 64 and rec["model"]["nfe"] == 4
    assert {"torch", "diffusers", "transformers", "open_clip_torch", "clean-fid", "lpips"} <= set(rec["provenance"]["libraries"])
    df = _frame(rd)
    assert len(df) == 21 and list(df.columns[:4]) == ["prompt_index", "seed", "prompt", "image"]
    # the parquet mean is the metric value; images decode back with their provenance
    assert df["fake_brightness[x100]"].mean() == pytest.approx(b["value"], abs=1e-9)
    img, meta = read_png(rd / df["image"][4])
    assert img.shape == (3, 16, 16)
    assert meta["prompt"] == df["prompt"][4] and meta["seed"] == df["seed"][4]
    assert meta["noise_seed"] == noise_seed(int(df["prompt_index"][4]), int(df["seed"][4]))
    assert meta["model_hash"] == "f" * 64 and meta["sampler"]["steps"] == 4


def test_batch_size_does_not_change_results(fake_suite, tmp_path):
    a = _run(fake_suite, tmp_path / "a", batch_size=1)
    b = _run(fake_suite, tmp_path / "b", batch_size=7)
    pd.testing.assert_frame_equal(_frame(a.run_dir), _frame(b.run_dir))
    for k, v in a.record["metrics"].items():
        assert b.record["metrics"][k]["value"] == pytest.approx(v["value"], abs=1e-9)


@pytest.mark.parametrize("io_workers", [0, 3])  # PNGs written in turn (CPU default) / by background threads
def test_killed_run_resumes_to_identical_results(fake_suite, tmp_path, monkeypatch, io_workers):
    ref = _run(fake_suite, tmp_path / "ref")
    monkeypatch.setenv(CRASH_ENV, "8")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(fake_suite, tmp_path / "resumed", io_workers=io_workers)
    assert len(list((tmp_path / "resumed" / "samples").glob("*.png"))) == 8
    assert not (tmp_path / "resumed" / "per_sample.parquet").exists()
    assert not (tmp_path / "resumed" / "record.json").exists()  # the run never got to its record
    # a half-written tmp file left by the kill must not count as a sample
    (tmp_path / "resumed" / "samples" / ".000006_s2.png.tmp999").write_bytes(b"\x89PNG garbage")
    monkeypatch.delenv(CRASH_ENV)
    gen = fakes.FakeGenerator()
    res = evaluate(gen, fake_suite, run_dir=tmp_path / "resumed", batch_size=4, progress=False)
    assert gen.calls == 21 - 8  # only the missing samples were generated
    pd.testing.assert_frame_equal(_frame(ref.run_dir), _frame(res.run_dir))
    assert res.record["complete"] is True
    for k, v in ref.record["metrics"].items():
        assert res.record["metrics"][k]["value"] == pytest.approx(v["value"], abs=1e-12)
        assert res.record["metrics"][k]["ci95"] == v["ci95"]
    assert not list((tmp_path / "resumed" / "samples").glob(".*tmp*"))


def test_complete_run_is_not_redone_and_foreign_run_dir_refused(fake_suite, tmp_path):
    first = _run(fake_suite, tmp_path / "r")
    gen = fakes.FakeGenerator()
    again = evaluate(gen, fake_suite, run_dir=tmp_path / "r", progress=False)
    assert gen.calls == 0 and again.record["run_key"] == first.record["run_key"]
    with pytest.raises(AddbenchError, match="another model/sampler/suite"):
        _run(fake_suite, tmp_path / "r", sampler_overrides={"steps": 2})


def test_sampler_overrides_change_the_run(fake_suite, tmp_path):
    a = evaluate(fakes.FakeGenerator(), fake_suite, out_dir=tmp_path, sampler_overrides={"steps": 1}, progress=False)
    assert a.record["model"]["sampler"]["steps"] == 1 and a.record["model"]["nfe"] == 1
    assert "nfe1" in a.run_dir.name
    with pytest.raises(AddbenchError, match="unknown sampler field"):
        evaluate(fakes.FakeGenerator(), fake_suite, out_dir=tmp_path, sampler_overrides={"stepz": 1}, progress=False)


def test_limit_evaluates_first_prompts(fake_suite, tmp_path):
    res = evaluate(fakes.FakeGenerator(), fake_suite, out_dir=tmp_path, limit=2, progress=False)
    assert res.record["suite"]["n_prompts"] == 2 and res.record["suite"]["limit"] == 2
    assert sorted(_frame(res.run_dir)["prompt_index"].unique()) == [0, 1]


def test_torchrun_two_ranks_equal_single_process(fake_suite, tmp_path):
    single = _run(fake_suite, tmp_path / "single")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(HERE / "dist_eval_script.py"), str(fake_suite), str(tmp_path / "sharded")],
        env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sharded = read_record(tmp_path / "sharded")
    assert sharded["provenance"]["world_size"] == 2 and sharded["complete"]
    pd.testing.assert_frame_equal(_frame(single.run_dir), _frame(tmp_path / "sharded"))
    for k, v in single.record["metrics"].items():
        assert sharded["metrics"][k]["value"] == pytest.approx(v["value"], abs=1e-6)
        if v["ci95"] is not None:
            assert sharded["metrics"][k]["ci95"] == pytest.approx(v["ci95"], abs=1e-6)
    assert sharded["suite"]["hash"] == single.record["suite"]["hash"]


# ---- the pipelined loop: scoring from memory = from disk, shared views, background writes, kills -------------
def test_rescore_from_disk_equals_scoring_from_memory(fake_suite, tmp_path):
    first = _run(fake_suite, tmp_path / "r")  # every sample scored from memory as it was generated
    gen = fakes.FakeGenerator()
    again = evaluate(gen, fake_suite, run_dir=tmp_path / "r", rescore=True, progress=False)  # every one from its PNG
    assert gen.calls == 0
    pd.testing.assert_frame_equal(_frame(tmp_path / "r"), _frame(first.run_dir))
    for k, v in first.record["metrics"].items():
        assert again.record["metrics"][k]["value"] == v["value"] and again.record["metrics"][k]["ci95"] == v["ci95"]
    t = again.record["provenance"]["timing_s"]
    assert t["generated"] == 0 and t["read"] == 21 and set(t["score"]) == set(first.record["metrics"])
    assert first.timing["generated"] == 21 and first.timing["total"] >= first.timing["loop"] > 0


def test_metrics_share_one_view_per_image(fake_suite, tmp_path, monkeypatch):
    from addbench.metrics.views import PilResize

    suite = tmp_path / "views.yaml"
    suite.write_text(fakes.SUITE_YAML.replace("name: fake-suite", "name: views").replace(
        "  - fake_gap\n", "  - name: fake_view_mean\n  - name: fake_view_mean\n    kwargs: {scale: 2}\n"))
    calls = []
    real = PilResize.one
    monkeypatch.setattr(PilResize, "one", lambda self, im: calls.append(1) or real(self, im))
    res = _run(suite, tmp_path / "v", score_batch=6, io_workers=3)  # groups of 2 prompts x 3 seeds
    assert len(calls) == 21  # one resize per image for both metrics
    df = _frame(res.run_dir)
    assert (df["fake_view_mean[x2]"] == 2 * df["fake_view_mean[x1]"]).all()
    expected = [float(real(PilResize(8), read_png(res.run_dir / f)[0]).float().mean()) for f in df["image"]]
    assert df["fake_view_mean[x1]"].tolist() == pytest.approx(expected, abs=1e-6)


def test_score_groups_do_not_depend_on_generation_batch_or_workers(fake_suite, tmp_path):
    a = _run(fake_suite, tmp_path / "a", batch_size=2, score_batch=9, io_workers=1)
    b = _run(fake_suite, tmp_path / "b", batch_size=5, score_batch=9, io_workers=4)
    pd.testing.assert_frame_equal(_frame(a.run_dir), _frame(b.run_dir))


def test_failed_png_write_stops_the_run(fake_suite, tmp_path, monkeypatch):
    import addbench.eval.samples as samples

    real = samples.write_png

    def flaky(path, *a, **k):
        if path.name == "000003_s1.png":
            raise OSError(28, "No space left on device")
        return real(path, *a, **k)

    monkeypatch.setattr(samples, "write_png", flaky)
    with pytest.raises(OSError, match="No space left"):
        _run(fake_suite, tmp_path / "r", io_workers=2)
    assert not (tmp_path / "r" / "record.json").exists()
    monkeypatch.setattr(samples, "write_png", real)
    res = _run(fake_suite, tmp_path / "r")  # resumes: only what is missing
    assert res.record["complete"] and len(list((tmp_path / "r" / "samples").glob("*.png"))) == 21


KILL_SCRIPT = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import fakes
from addbench.eval.runner import evaluate

class Slow(fakes.FakeGenerator):
    def generate(self, prompts, seeds, sampler=None):
        time.sleep(0.15)
        return super().generate(prompts, seeds, sampler)

fakes.register()
evaluate(Slow(), sys.argv[2], run_dir=sys.argv[3], batch_size=1, score_batch=6, progress=False, io_workers=2)
"""


def test_sigkill_mid_run_then_resume_equals_uninterrupted(fake_suite, tmp_path):
    import signal
    import time

    ref = _run(fake_suite, tmp_path / "ref")
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(HERE), str(fake_suite), str(run_dir)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and len(list((run_dir / "samples").glob("*.png"))) < 7 and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    done = len(list((run_dir / "samples").glob("*.png")))
    assert 7 <= done < 21 and not (run_dir / "record.json").exists()
    gen = fakes.FakeGenerator()
    res = evaluate(gen, fake_suite, run_dir=run_dir, batch_size=4, progress=False)
    assert gen.calls == 21 - done
    pd.testing.assert_frame_equal(_frame(ref.run_dir), _frame(res.run_dir))
    for k, v in ref.record["metrics"].items():
        assert res.record["metrics"][k]["value"] == pytest.approx(v["value"], abs=1e-12)
    assert not list((run_dir / "samples").glob(".*tmp*"))


def _slow_suite(tmp_path, **kwargs):
    suite = tmp_path / "slow.yaml"
    kw = ", ".join(f"{k}: {v}" for k, v in kwargs.items())
    suite.write_text(fakes.SUITE_YAML.replace("name: fake-suite", "name: slow").replace(
        "  - fake_gap\n", f"  - name: fake_slow_load\n    kwargs: {{{kw}}}\n"))
    return suite


def test_generation_starts_while_metrics_load(fake_suite, tmp_path):
    import time

    class Clocked(fakes.FakeGenerator):
        first = None

        def generate(self, *a, **k):
            Clocked.first = Clocked.first or time.perf_counter()
            return super().generate(*a, **k)

    fakes.FakeSlowLoad.loaded_at.clear()
    res = evaluate(Clocked(), _slow_suite(tmp_path, seconds=1.0), run_dir=tmp_path / "r", batch_size=4,
                   score_batch=6, progress=False, background_load=True)
    assert Clocked.first < fakes.FakeSlowLoad.loaded_at[0]  # generated before the metric had loaded
    t = res.record["provenance"]["timing_s"]
    assert t["metrics_load"] >= 1.0 and res.record["complete"]
    ref = _run(fake_suite, tmp_path / "ref", score_batch=6)
    df, ref_df = _frame(res.run_dir), _frame(ref.run_dir)
    assert (df["fake_slow_load[x1]"] * 100).tolist() == pytest.approx(ref_df["fake_brightness[x100]"].tolist())


def test_failed_metric_load_stops_the_run_and_keeps_samples(fake_suite, tmp_path):
    suite = _slow_suite(tmp_path, seconds=0.3, fail="true")
    with pytest.raises(AddbenchError, match="weights file /nope/weights.bin not found"):
        evaluate(fakes.FakeGenerator(), suite, run_dir=tmp_path / "r", batch_size=1, progress=False,
                 background_load=True)
    assert not (tmp_path / "r" / "record.json").exists()
    kept = len(list((tmp_path / "r" / "samples").glob("*.png")))
    gen = fakes.FakeGenerator()
    res = evaluate(gen, suite, run_dir=tmp_path / "r", batch_size=1, progress=False,
                   metric_overrides={"fake_slow_load": {"fail": False}})
    assert gen.calls == 21 - kept and res.record["complete"]


def test_overlapped_scoring_gives_the_same_results_and_raises_failures(fake_suite, tmp_path, monkeypatch):
    ref = _run(fake_suite, tmp_path / "ref", score_batch=6)
    res = _run(fake_suite, tmp_path / "ov", score_batch=6, io_workers=2, overlap_scoring=True)
    pd.testing.assert_frame_equal(_frame(ref.run_dir), _frame(res.run_dir))
    for k, v in ref.record["metrics"].items():
        assert res.record["metrics"][k]["value"] == v["value"] and res.record["metrics"][k]["ci95"] == v["ci95"]
    calls = []

    def broken(self, images, prompts, keys):
        calls.append(len(keys))
        if len(calls) == 2:
            raise ValueError("metric exploded")
        self._record(keys, images.float().mean(dim=(1, 2, 3)))

    monkeypatch.setattr(fakes.FakeBrightness, "update", broken)
    with pytest.raises(ValueError, match="metric exploded"):
        _run(fake_suite, tmp_path / "bad", score_batch=6, io_workers=2, overlap_scoring=True)
    assert not (tmp_path / "bad" / "record.json").exists()


def test_metric_precision_tf32_scores_under_tf32_with_its_own_ids_and_run(fake_suite, tmp_path, monkeypatch):
    import torch

    seen = []
    orig = fakes.FakeBrightness.update

    def spy(self, images, prompts, keys):
        seen.append(torch.backends.cuda.matmul.allow_tf32)
        return orig(self, images, prompts, keys)

    monkeypatch.setattr(fakes.FakeBrightness, "update", spy)
    before = torch.backends.cuda.matmul.allow_tf32
    ref = evaluate(fakes.FakeGenerator(), fake_suite, out_dir=tmp_path / "runs", batch_size=4, progress=False)
    assert seen and not any(seen)
    seen.clear()
    res = evaluate(fakes.FakeGenerator(), fake_suite, out_dir=tmp_path / "runs", batch_size=4, progress=False,
                   metric_precision="tf32")
    assert seen and all(seen) and torch.backends.cuda.matmul.allow_tf32 == before  # set while scoring, restored
    assert res.run_dir != ref.run_dir and res.record["suite"]["metric_precision"] == "tf32"
    assert res.record["suite"]["config_sha256"] != ref.record["suite"]["config_sha256"]
    assert set(res.record["metrics"]) == set(ref.record["metrics"])  # ids stay comparable with published tables
    # on the CPU TF32 does not exist: the same numbers
    assert res.record["metrics"]["fake_brightness[x100]"]["value"] == ref.record["metrics"]["fake_brightness[x100]"]["value"]
    with pytest.raises(AddbenchError, match="overlap-scoring needs metric precision fp32"):
        _run(fake_suite, tmp_path / "ov", metric_precision="tf32", overlap_scoring=True)
    with pytest.raises(AddbenchError, match="--metric-precision is for image suites"):
        _run("vbench", tmp_path / "video", metric_precision="tf32")
