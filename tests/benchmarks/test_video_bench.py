"""benchmarks/video_cogvideox.py --tiny (CPU): the sampling pass is addbench's own loop (same latents as
``denoise``), the ADM iterations run through the engine, and the JSON holds the measured numbers."""
from __future__ import annotations

import json

import pytest
import torch


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("video_cogvideox")


def test_tiny_run_times_sampling_and_adm(bench, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert bench.main(["--tiny", "--arch", "cogvideox-5b", "--runs", "1", "--iters", "2", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["complete"] and res["device"] == "cpu" and res["arch"] == "cogvideox-5b (tiny)"
    s = res["sampling"]
    assert s["status"] == "ok" and s["finite"] and s["clip_shape"] == [1, 9, 3, 32, 32] and s["nfe"] == 16
    assert len(s["per_step_ms_last_run"]) == 8 and s["step_ms"] > 0 and s["vae_decode_ms"] > 0 and s["text_ms"] > 0
    adm = res["adm"]
    assert adm["status"] == "ok" and adm["steps_run"] == 2 and adm["step_ms"] > 0
    assert set(adm["turn_ms"]) == {"fake", "g", "d"} and adm["heads"] == 2 and adm["config"]["gen_steps"] == 8
    assert adm["flops_per_step"]["forward"] > 0 and adm["flops_per_step"]["recompute"] > 0
    text = capsys.readouterr().out
    assert "VAE decode" in text and "ADM iteration" in text
    # the timed loop is addbench's sampling loop: same latents as denoise() on the same tiny pipeline
    from addbench.bases.interface import Sampler
    from addbench.bases.loading import load_base
    from addbench.bases.sampling import denoise, initial_noise
    from addbench.bases.tiny import save_tiny_pipeline

    base = load_base(str(save_tiny_pipeline("cogvideox", tmp_path / "pipe", rotary=True)), device="cpu")
    with torch.no_grad():
        ref = denoise(base, initial_noise([0], (3, 4, 4, 4)), base.encode_prompts([bench.PROMPT]),
                      Sampler(steps=8, guidance=6.0, height=32, width=32, frames=9))
    assert torch.allclose(bench.main.last_result["sampling"]["_latents"], ref, atol=1e-6)


def test_bad_override_is_an_error_and_skip_works(bench, tmp_path):
    out = tmp_path / "r.json"
    rc = bench.main(["--tiny", "--skip", "sampling", "--iters", "2", "--no-flops", "--set", "no_such_key=1",
                     "--out", str(out)])
    res = json.loads(out.read_text())
    assert rc == 1 and "sampling" not in res and res["adm"]["status"] == "error" and "no_such_key" in res["adm"]["error"]
