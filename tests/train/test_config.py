import json

import pytest

from addbench.errors import AddbenchError
from addbench.train.config import apply_overrides, config_diff, deep_merge, freeze, parse_value
from addbench.train.entry import resolve_config
from train_fakes import FakeDistiller


def test_overrides_are_typed_from_the_value_they_replace():
    cfg = {"batch": 4, "lr": 1e-5, "ema": 0.0, "wandb": False, "betas": [0.0, 0.99], "name": "x",
           "opt": {"g": {"lr": 1.0}}}
    out = apply_overrides(cfg, ["batch=1e3", "lr=3e-4", "ema=1", "wandb=yes", "betas=0.5,0.9", "name=7",
                                "opt.g.lr=2", "+extra=[1, 2]", "+new.key=abc"])
    assert out["batch"] == 1000 and isinstance(out["batch"], int)
    assert out["lr"] == 3e-4 and out["ema"] == 1.0 and isinstance(out["ema"], float)
    assert out["wandb"] is True and out["betas"] == [0.5, 0.9] and out["name"] == "7"
    assert out["opt"]["g"]["lr"] == 2.0 and out["extra"] == [1, 2] and out["new"] == {"key": "abc"}
    assert cfg["batch"] == 4  # input untouched


@pytest.mark.parametrize("item, msg", [("batc=3", "did you mean batch"), ("batch=2.5", "not an integer"),
                                       ("wandb=maybe", "not a boolean"), ("opt=1", "is a group"),
                                       ("nokey", "not key=value")])
def test_bad_overrides_give_one_line_errors(item, msg):
    cfg = {"batch": 4, "wandb": False, "opt": {"g": {"lr": 1.0}}}
    with pytest.raises(AddbenchError, match=msg):
        apply_overrides(cfg, [item])


def test_frozen_config_refuses_mutation_and_serialises():
    cfg = freeze(deep_merge({"a": 1, "b": {"c": 2}}, {"b": {"d": 3}}))
    with pytest.raises(TypeError):
        cfg["a"] = 2
    with pytest.raises(TypeError):
        cfg["b"]["c"] = 5
    assert json.loads(json.dumps(cfg)) == {"a": 1, "b": {"c": 2, "d": 3}}


def test_resolved_config_layers_defaults_preset_overrides():
    cfg = resolve_config(FakeDistiller, "fake", ["lr_g=0.5"])
    assert cfg["lr_g"] == 0.5 and cfg["lr_d"] == 1e-2  # override > preset
    assert cfg["grad_clip"] == 10.0 and cfg["betas"] == [0.0, 0.99]  # engine defaults
    assert cfg["batch"] == 4 and cfg["distiller"] == "fake" and cfg["base"] == "fake"
    with pytest.raises(AddbenchError, match="no preset for base 'sdxl'"):
        resolve_config(FakeDistiller, "sdxl")


def test_config_diff_ignores_resumable_keys():
    a = {"budget_images": 10, "lr": 1.0, "x": {"y": 1}}
    assert config_diff(a, {"budget_images": 20, "lr": 1.0, "x": {"y": 1}}) == []
    assert config_diff(a, {"budget_images": 10, "lr": 2.0, "x": {"y": 2}}) == ["lr: 1.0 -> 2.0", "x.y: 1 -> 2"]
    assert config_diff({**a, "progress": True}, {**a, "progress": False}) == []  # display only: never blocks a resume
    assert parse_value("none", None) is None


def test_dry_run_says_where_each_value_comes_from(capsys, tmp_path):
    from addbench.train.entry import config_origins, train

    origins = config_origins("dmd2", "toy", ["lr_g=2e-5", "+micro_batch=4"])
    assert origins["lr_g"] == "override" and origins["micro_batch"] == "override"
    assert origins["gen_t"] == "preset toy" and origins["keep_ckpts"] == "default"
    train("dmd2", "toy", tmp_path / "run", ["lr_g=2e-5"], dry_run=True)
    out, err = capsys.readouterr()
    assert json.loads(out)["lr_g"] == 2e-5 and not (tmp_path / "run").exists()
    *keys, plan = err.splitlines()
    lines = {ln.split()[0]: ln for ln in keys}
    assert lines["lr_g"].endswith("(override)") and lines["gen_t"].endswith("(preset toy)")
    assert lines["ema"].endswith("(default)") and len(lines) == len(json.loads(out))
    assert plan == "step = batch 128 = 1 process(es) x 1 accumulation round(s) x 128 images per forward/backward"


def test_wandb_run_id_is_made_once_and_kept(tmp_path):
    from addbench.train.callbacks import wandb_run_id

    first = wandb_run_id(tmp_path / "dmd2@sdxl run")
    assert first == wandb_run_id(tmp_path / "dmd2@sdxl run") and first.startswith("dmd2-sdxl-run-")
    assert wandb_run_id(tmp_path / "other") != first
