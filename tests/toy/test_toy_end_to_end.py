"""The toy world end to end, as README's main job runs it: train a 1-step student (a few steps), evaluate the
shipped teacher at 1 and 4 steps and the student on toy-smoke, write the grid, print the leaderboard."""
import json

from PIL import Image

from addbench.demo import run_demo


def test_train_eval_leaderboard_on_the_shipped_toy_world(tmp_path):
    text = run_demo(tmp_path, [1, 4], device="cpu", suite="toy-smoke", distiller="add",
                    train_overrides=["budget_images=8", "batch=4", "progress=false"], progress=False,
                    log=lambda *a: None)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "measured" in line]
    assert [r.split("|")[1].strip() for r in rows] == ["add@1step", "toy@1step-cfg3", "toy@4step-cfg3"]

    records = {json.loads(p.read_text())["model"]["name"]: json.loads(p.read_text())
               for p in (tmp_path / "eval" / "toy-smoke").glob("*/record.json")}
    assert all(r["complete"] for r in records.values())
    # toy-smoke fixes fp32 generation (a 1-step readout amplifies bf16 rounding): in the record and the run key
    assert all(r["suite"]["generation_dtype"] == "fp32" and r["model"]["dtype"] == "float32" for r in records.values())

    def metric(name, prefix):
        return next(m["value"] for k, m in records[name]["metrics"].items() if k.startswith(prefix))

    # the teacher's gap that distillation must close is visible even on 16 samples
    assert metric("toy@4step-cfg3", "toy_fid") < 0.8 * metric("toy@1step-cfg3", "toy_fid")  # 16 samples: FID is mostly bias
    assert metric("toy@4step-cfg3", "caption_accuracy") > metric("toy@1step-cfg3", "caption_accuracy") + 0.3
    assert records["add@1step"]["model"]["nfe"] == 1

    grid = Image.open(tmp_path / "samples.png")
    assert grid.size[1] > grid.size[0] / 3  # two rows (1 and 4 steps) of 6 samples
