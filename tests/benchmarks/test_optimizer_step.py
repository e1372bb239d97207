"""benchmarks/optimizer_step.py: AdamW implementations timed on a base's network, against fp32 training."""
from __future__ import annotations

import json

import pytest
import torch


def test_times_each_adamw_implementation_from_the_same_start(load_benchmark, tmp_path):
    bench = load_benchmark("optimizer_step")
    out = tmp_path / "opt.json"
    assert bench.main(["--steps", "2", "--threads", "1", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["base"] == "toy" and res["tensors"] > 100 and res["params_m"] > 1
    rows = {r["impl"]: r for r in res["rows"]}
    assert list(rows) == ["for-loop", "foreach", "fused"] and all(r["step_ms"] > 0 for r in rows.values())
    assert rows["for-loop"]["max_abs_diff_vs_fp32_loop"] == 0 and rows["fused"]["moved_fraction"] == 1.0
    # same gradients, same update up to rounding: two steps of lr 1e-4 move a weight by about 2e-4
    assert rows["fused"]["max_abs_diff_vs_fp32_loop"] < 1e-6


def test_bf16_weights_lose_small_steps_unless_the_engine_keeps_masters(load_benchmark, tmp_path):
    bench = load_benchmark("optimizer_step")
    out = tmp_path / "opt.json"
    assert bench.main(["--steps", "3", "--threads", "1", "--dtype", "bf16", "--lr", "1e-5", "--out", str(out)]) == 0
    rows = {r["impl"]: r for r in json.loads(out.read_text())["rows"]}
    assert list(rows) == ["for-loop", "foreach", "fused", "engine", "engine-host"]
    assert rows["fused"]["moved_fraction"] < 0.5 and rows["fused"]["max_abs_diff_vs_fp32_loop"] > 1e-5
    assert rows["engine"]["max_abs_diff_vs_fp32_loop"] < 1e-7  # its fp32 masters follow fp32 training
    assert rows["engine"]["moved_fraction"] > rows["fused"]["moved_fraction"]
    # masters in host memory: the same update (here the network is on the host too)
    assert rows["engine-host"]["max_abs_diff_vs_fp32_loop"] == rows["engine"]["max_abs_diff_vs_fp32_loop"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the network on the GPU, masters on the host")
def test_engine_host_on_a_gpu_network_steps_like_the_engine(load_benchmark, tmp_path):
    bench = load_benchmark("optimizer_step")
    out = tmp_path / "opt.json"
    assert bench.main(["--steps", "3", "--device", "cuda", "--dtype", "bf16", "--lr", "1e-5", "--out", str(out)]) == 0
    rows = {r["impl"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["engine-host"]["max_abs_diff_vs_fp32_loop"] < 1e-6 and rows["engine"]["max_abs_diff_vs_fp32_loop"] < 1e-6
