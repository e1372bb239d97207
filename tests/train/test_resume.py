"""Kill a training process mid-run (SIGKILL), run the same command again, compare with an uninterrupted run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SCRIPT = Path(__file__).parent / "run_fake.py"


def _run(out, args, env_extra=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FAKE_GLOBAL_RNG": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, str(SCRIPT), str(out), *args], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_killed_run_resumes_to_bitwise_identical_weights(tmp_path, dtype):
    """bf16: the trained copy is bf16, so it trains through fp32 master weights, which must resume unrounded."""
    p = tmp_path / "p.txt"
    p.write_text("".join(f"prompt {i}\n" for i in range(9)))
    args = [f"prompts={p}", "budget_images=64", "ckpt_every_images=20", "ema=0.8"]
    if dtype == "bf16":
        args += ["base_dtype=bf16", "precision=bf16", "lr_g=1e-5"]
    ref = _run(tmp_path / "ref", args)
    assert ref.returncode == 0, ref.stderr[-2000:]
    killed = _run(tmp_path / "run", args, {"FAKE_KILL_AT_STEP": "11"})
    assert killed.returncode == -9  # died by SIGKILL at step 11 (44 images), last state at 40 images = step 10
    states = sorted(p.name for p in (tmp_path / "run" / "state").iterdir())
    assert states == ["step_000000005", "step_000000010"] and not (tmp_path / "run" / "checkpoint").exists()
    again = _run(tmp_path / "run", args)
    assert again.returncode == 0, again.stderr[-2000:]
    for name in ("networks", "ema"):
        a = load_file(str(tmp_path / "ref" / "state" / "step_000000016" / f"{name}.safetensors"))
        b = load_file(str(tmp_path / "run" / "state" / "step_000000016" / f"{name}.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    a = torch.load(tmp_path / "ref" / "state" / "step_000000016" / "optim.pt")
    b = torch.load(tmp_path / "run" / "state" / "step_000000016" / "optim.pt")
    if dtype == "bf16":
        masters_a, masters_b = a["g"]["masters"], b["g"]["masters"]
        assert masters_a and all(torch.equal(masters_a[i], masters_b[i]) for i in masters_a)
        a, b = a["g"]["adamw"], b["g"]["adamw"]
    else:
        a, b = a["g"], b["g"]
    assert torch.equal(a["state"][0]["exp_avg_sq"], b["state"][0]["exp_avg_sq"])
    s1 = load_file(str(tmp_path / "ref" / "checkpoint" / "network" / "model.safetensors"))
    s2 = load_file(str(tmp_path / "run" / "checkpoint" / "network" / "model.safetensors"))
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    # the log was trimmed back to the resumed step and continued: one line per step, no duplicates
    def log(run):
        return [{k: v for k, v in json.loads(ln).items() if k != "time"}
                for ln in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]

    assert len(log("run")) == 16 and log("run") == log("ref")
