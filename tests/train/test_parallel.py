"""Golden loss trace: 2 processes (torchrun, gloo, FSDP2 fully_shard on CPU) vs 1 process, same global batch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from addbench.train.parallel import DistContext, blocks_of, parallelize

SCRIPT = Path(__file__).parent / "run_fake.py"


def _trace(run):
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_process_fsdp2_matches_single_process_loss_trace(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("".join(f"prompt {i}\n" for i in range(9)))
    args = [f"prompts={p}", "budget_images=40", "ckpt_every_images=20", "ema=0.5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "one"), *args], env=env,
                         capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", "29517", str(SCRIPT), str(tmp_path / "two"), *args], env=env,
                         capture_output=True, text=True, timeout=180)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _trace(tmp_path / "one"), _trace(tmp_path / "two")
    assert len(a) == len(b) == 10
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            if k not in ("time", "g/image_std"):  # a std averaged over ranks is not the global std
                assert rb[k] == pytest.approx(ra[k], rel=1e-4, abs=1e-6), (ra["step"], k)
    # the FSDP2 states were gathered to full tensors on rank 0: same keys and (nearly) the same values
    wa = load_file(str(tmp_path / "one" / "state" / "step_000000010" / "networks.safetensors"))
    wb = load_file(str(tmp_path / "two" / "state" / "step_000000010" / "networks.safetensors"))
    assert wa.keys() == wb.keys()
    meta = json.loads((tmp_path / "two" / "state" / "step_000000010" / "meta.json").read_text())
    assert meta["world_size"] == 2 and meta["fsdp2_sharded"] == ["d", "g"]
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-4
    sa = load_file(str(tmp_path / "one" / "checkpoint" / "network" / "model.safetensors"))
    sb = load_file(str(tmp_path / "two" / "checkpoint" / "network" / "model.safetensors"))
    assert sa.keys() == sb.keys() and max(float((sa[k] - sb[k]).abs().max()) for k in sa) < 1e-4


def test_parallelize_single_process_checkpointing_keeps_gradients():
    from train_fakes import TinyNet

    torch.manual_seed(0)
    a, b = TinyNet(), TinyNet()
    b.load_state_dict(a.state_dict())
    assert len(blocks_of(b)) == 2
    parallelize(b, DistContext(), activation_checkpointing=True)
    assert type(b.blocks[0]).__name__ == "CheckpointWrapper"
    assert b.state_dict().keys() == a.state_dict().keys()  # the wrapper keeps clean state-dict keys
    x, t, c = torch.randn(3, 3, 4, 4), torch.rand(3) * 999, torch.rand(3, 8)
    a(x, t, c).square().mean().backward()
    b(x, t, c).square().mean().backward()
    ga = [p.grad for p in a.parameters()]
    gb = [p.grad for p in b.parameters()]
    assert all(torch.allclose(u, v, atol=1e-6) for u, v in zip(ga, gb))


def test_layers_of_an_sdxl_unet_are_its_innermost_repeated_blocks(tmp_path):
    """``compile=layers`` units on the tiny SDXL UNet: every ResnetBlock2D and BasicTransformerBlock (the
    Transformer2DModel glue around them stays out), resamplers; each module at most once."""
    from addbench.bases.loading import load_base
    from addbench.bases.tiny import save_tiny_pipeline
    from addbench.train.parallel import layers_of

    unet = load_base(str(save_tiny_pipeline("sdxl", tmp_path / "pipe")), device="cpu").network
    units = layers_of(unet)
    kinds = {type(m).__name__ for m in units}
    assert {"ResnetBlock2D", "BasicTransformerBlock"} <= kinds
    assert "Transformer2DModel" not in kinds and not any(k.endswith(("DownBlock2D", "UpBlock2D")) for k in kinds)
    assert len({id(m) for m in units}) == len(units)
    every = [m for m in unet.modules() if type(m).__name__ in ("ResnetBlock2D", "BasicTransformerBlock")]
    assert set(map(id, every)) <= set(map(id, units))
