"""Validation during training: the harness scores the current student every val_every_images, logged as val/*."""
import json

import torch
from safetensors.torch import load_file

QUIET = ["tensorboard=false", "+progress=false", "batch=4", "budget_images=8", "warmup_images=0",
         "prompts=toy:16", "real_images=toy:16"]


def test_validation_scores_the_student_and_changes_nothing_else(tmp_path):
    from addbench.train.entry import train

    val = ["val_every_images=4", "val_suite=toy-smoke", "val_limit=2"]
    train("dmd", "toy", tmp_path / "with", QUIET + val + ["lambda_reg=0"], device="cpu")
    train("dmd", "toy", tmp_path / "without", QUIET + ["lambda_reg=0"], device="cpu")
    rows = [json.loads(ln) for ln in (tmp_path / "with" / "metrics.jsonl").read_text().splitlines()]
    scored = [r for r in rows if any(k.startswith("val/") for k in r)]
    assert [r["images_seen"] for r in scored] == [4, 8]
    assert {"val/toy_fid", "val/toy_clip_score", "val/caption_accuracy"} <= scored[0].keys()
    assert all(v == v for r in scored for k, v in r.items() if k.startswith("val/"))  # finite numbers, not NaN
    records = sorted((tmp_path / "with" / "val" / "eval").rglob("record.json"))
    assert len(records) == 2 and all(json.loads(p.read_text())["suite"]["limit"] == 2 for p in records)
    # the training itself is untouched: same weights with and without validation
    a = load_file(next((tmp_path / "with" / "checkpoint").rglob("*.safetensors")))
    b = load_file(next((tmp_path / "without" / "checkpoint").rglob("*.safetensors")))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
