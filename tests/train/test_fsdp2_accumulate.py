"""Gradient accumulation with FSDP2-sharded networks (2 processes, gloo, CPU): micro-batches update like one batch.

DMD2's turns freeze a network that the next turn trains (the fake score runs frozen in the g turn, g frozen in the
fake turn): FSDP2 keeps a root module unsharded after such a forward, and a requires_grad toggle must still reach
its sharded parameters, or every micro-batch round after the first loses the root's gradients
(benchmarks/fsdp2_accumulation_repro.py)."""
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

SCRIPT = Path(__file__).parent / "run_gmm.py"
# as tests/train/test_accumulate.py: eps 1e-3 keeps AdamW's first steps from turning float rounding into signs
# ckpt_every_images=32: no state saved between the two steps (its state_dict() reshards every root, which would hide
# the bug in the second step)
QUIET = ["tensorboard=false", "+progress=false", "batch=16", "budget_images=32", "ckpt_every_images=32",
         "warmup_images=0", "ema=0", "eps=1e-3"]


def _state(run) -> dict[str, torch.Tensor]:
    return load_file(sorted((run / "state").glob("step_*"))[-1] / "networks.safetensors")


def test_two_process_fsdp2_micro_batches_update_like_one_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = {}
    for port, micro in ((29521, 0), (29522, 4)):  # 8 per process at once, then 2 rounds of 4
        procs[micro] = subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
             str(SCRIPT), "dmd2", str(tmp_path / f"m{micro}"), *QUIET, f"micro_batch={micro}"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for micro, proc in procs.items():
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
    whole, accumulated = _state(tmp_path / "m0"), _state(tmp_path / "m4")
    assert whole.keys() == accumulated.keys() and {k.split("/")[0] for k in whole} >= {"g", "fake", "disc"}, whole.keys()
    for k in whole:
        torch.testing.assert_close(accumulated[k], whole[k], rtol=1e-4, atol=1e-6, msg=lambda m: f"{k}: {m}")
