"""The Python API: `from addbench import evaluate, train, leaderboard, load_generator`, the README's example."""
import pytest
import torch


def test_notebook_example_on_the_toy_world(tmp_path):
    import addbench
    from addbench import evaluate, leaderboard, load_generator

    res = evaluate("toy", "toy-smoke", out=str(tmp_path / "runs"), limit=2, sampler_overrides={"steps": 1},
                   progress=False)
    assert res.record["complete"] and (res.run_dir / "record.json").is_file()
    text = leaderboard([res.run_dir])
    assert "toy@1step" in text and "toy_fid" in text
    df = leaderboard(tmp_path / "runs", frame=True)
    assert len(df) == 1 and df["caption_accuracy"].between(0, 1).all()
    again = addbench.evaluate("toy", "toy-smoke", out=str(tmp_path / "runs"), limit=2, sampler_overrides={"steps": 1},
                              progress=False)  # resumes: the finished run is read back, not redone
    assert again.run_dir == res.run_dir and again.record["metrics"] == res.record["metrics"]
    gen = load_generator("toy", device="cpu", steps=1)
    images = gen.generate(["a red circle"], [0])
    assert images.shape == (1, 3, 32, 32) and images.dtype == torch.uint8


def test_train_is_callable_from_the_package_and_dry_runs(tmp_path, capsys):
    import json

    import addbench.train.entry  # noqa: F401  (binds the subpackage as addbench.train)
    from addbench import train

    path = train("dmd2", "toy", tmp_path / "run", ["lr_g=2e-5"], dry_run=True)
    assert json.loads(capsys.readouterr().out)["lr_g"] == 2e-5 and path == tmp_path / "run" / "config.json"


def test_api_options_are_validated_like_the_cli(tmp_path):
    from addbench import EvalConfig, evaluate
    from addbench.errors import AddbenchError

    with pytest.raises(AddbenchError, match="--steps"):
        evaluate("toy", "toy-smoke", out=str(tmp_path), sampler_overrides={"steps": 0})
    with pytest.raises(TypeError):
        evaluate("toy", "toy-smoke", no_such_option=1)
    assert {"repair", "fast", "score_batch", "metric_precision"} <= set(EvalConfig.__dataclass_fields__)
