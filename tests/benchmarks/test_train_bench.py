"""benchmarks/train_sdxl.py on the tiny SDXL pipeline (CPU): the engine path runs, the JSON has times,
FLOPs and the per-turn split; failures are reported per method and the next method still runs."""
from __future__ import annotations

import json

import pytest
import torch


@pytest.fixture(scope="module")
def bench(load_benchmark):
    torch.set_num_threads(1)
    return load_benchmark("train_sdxl")


def test_tiny_run_writes_times_memory_and_flops(bench, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = bench.main(["--tiny", "--iters", "2", "--methods", "dmd2,dmdx.adp", "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["res"] == 64 and res["device"] == "cpu" and res["warmup"] == 1
    recs = {r["method"]: r for r in res["records"]}
    assert set(recs) == {"dmd2", "dmdx.adp"}
    for r in recs.values():
        assert r["status"] == "ok", r.get("error")
        assert r["steps_run"] == 2 and r["step_ms"] > 0 and r["images_per_s"] > 0
        assert r["steps"][0]["flop_counted"] and not r["steps"][1]["flop_counted"]
        fl = r["flops_per_step"]
        assert fl["forward"] > 0 and fl["backward"] > 0 and fl["recompute"] > 0  # grad checkpointing is on
        assert r["model_tflop_per_step"] == pytest.approx((fl["forward"] + fl["backward"]) / 1e12, rel=1e-3)
        # step time is the sum of its turn calls; the timed step is the second one
        assert r["step_ms"] == pytest.approx(sum(ms for _, ms in r["steps"][1]["calls"]), abs=0.05)
        assert "grad_checkpointing=true" in r["overrides"] and "batch=1" in r["overrides"]
        assert r["trainable_params"]["g"] > 0 and r["total_s"] > 0
    # TTUR is what the engine runs: DMD2's sdxl preset = 1 generator + 5 fake-score calls per step
    assert recs["dmd2"]["turn_ms"]["fake"]["calls_per_step"] == 5 and recs["dmd2"]["turn_ms"]["g"]["calls_per_step"] == 1
    assert set(recs["dmdx.adp"]["turn_ms"]) == {"g", "d"}
    assert set(recs["dmd2"]["flops_per_step"]["by_turn"]) == {"g", "fake"}
    text = capsys.readouterr().out
    assert "| dmd2 | 1 | 64 | ok |" in text and "| method | micro-batch |" in text  # Markdown rows


def test_failures_are_reported_and_the_next_method_runs(bench, tmp_path, monkeypatch):
    real = bench.run_method

    def fake(name, *a, **k):
        if name == "dmd2":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(name, *a, **k)

    monkeypatch.setattr(bench, "run_method", fake)
    out = tmp_path / "r.json"
    rc = bench.main(["--tiny", "--iters", "2", "--no-flops", "--warmup", "1", "--methods", "dmd2,unet",
                     "--set", "dmd2:batch=1", "--out", str(out)])
    recs = {r["method"]: r for r in json.loads(out.read_text())["records"]}
    assert recs["dmd2"]["status"] == "oom" and "out of memory" in recs["dmd2"]["error"]
    assert recs["unet"]["status"] == "ok" and recs["unet"]["step_ms"] > 0 and "flops_per_step" not in recs["unet"]
    assert rc == 0  # an OOM is a result, not a failure of the script


def test_bad_override_is_an_error_row(bench, tmp_path):
    out = tmp_path / "r.json"
    rc = bench.main(["--tiny", "--iters", "2", "--methods", "dmdx.adm", "--set", "dmdx.adm:no_such_key=1",
                     "--out", str(out)])
    rec = json.loads(out.read_text())["records"][0]
    assert rc == 1 and rec["status"] == "error" and "no_such_key" in rec["error"]


def test_a_new_key_must_name_its_method(bench):
    sets = bench.split_sets(["dmd:+master_weights_fake=cpu", "checkpoint_skip=g"], ["dmd", "add"])
    assert sets == {"dmd": [(True, "+master_weights_fake=cpu"), (False, "checkpoint_skip=g")],
                    "add": [(False, "checkpoint_skip=g")]}
    with pytest.raises(SystemExit, match="a \\+key adds a key, so name the method: --set dmd:\\+master_weights_fake=cpu"):
        bench.split_sets(["+master_weights_fake=cpu"], ["dmd", "add"])


def test_profile_adds_one_untimed_step_with_kernel_time_by_kind(bench, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = bench.main(["--tiny", "--iters", "2", "--methods", "unet,dmdx.adm", "--profile", "--set", "channels_last=true",
                     "--out", str(out)])
    assert rc == 0
    recs = {r["method"]: r for r in json.loads(out.read_text())["records"]}
    for r in recs.values():
        assert r["status"] == "ok", r.get("error")
        p = r["profile"]
        assert r["steps_run"] == 2 and [s["step"] for s in r["steps"]] == [1, 2]  # the profiled 3rd step is not timed
        assert p["step_ms"] > 0 and p["busy_ms"] > 0 and p["kernels"] >= len(p["top"]) > 0
        assert p["by_kind"]["conv"] > 0 and sum(p["by_kind"].values()) == pytest.approx(p["busy_ms"])
        assert [t for t, _ in p["calls"]] == r["turns_per_step"]
    assert "channels_last=true" in recs["dmdx.adm"]["overrides"]
    assert "profiled step:" in capsys.readouterr().out
    assert bench.anchor_channels_last([(False, "channels_last=true")]) and not bench.anchor_channels_last([])


def test_a_run_killed_mid_method_keeps_its_finished_steps(bench, tmp_path, monkeypatch):
    """The JSON is rewritten after every step: a method killed (here after its 2nd step; on the GPU a time limit
    during a long compile) leaves its finished steps, marked "running"."""
    real = bench.TurnTimer.on_step

    def on_step(self, state, logs):
        real(self, state, logs)
        if len(self.steps) == 2:
            raise KeyboardInterrupt  # stands in for the timeout's signal

    monkeypatch.setattr(bench.TurnTimer, "on_step", on_step)
    out = tmp_path / "r.json"
    with pytest.raises(KeyboardInterrupt):
        bench.main(["--tiny", "--iters", "4", "--no-flops", "--methods", "dmdx.adm", "--out", str(out)])
    rec = json.loads(out.read_text())["records"][0]
    assert rec["status"] == "running" and rec["steps_run"] == 2 and rec["step_ms"] > 0
    assert [s["step"] for s in rec["steps"]] == [1, 2]
