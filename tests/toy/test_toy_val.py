"""toy-val, the toy world's validation split: distillers are tuned there and reported on toy-2k, so the two share
no caption, no sample seed and no FID reference draw; toy-2k's own prompt list stays what its records hold."""
from typer.testing import CliRunner

from addbench.cli import app
from addbench.eval.runner import noise_seed
from addbench.prompts import load_prompts
from addbench.suites import list_suites, load_suite
from addbench.toy import data

TOY_2K_PROMPT_SHA256 = "4fa9dbc9b0a769f5995e83e2bee247b23128ee3df92a89d515bb3610a5bb69a0"  # leaderboards/runs/toy-2k


def test_toy_val_is_disjoint_from_toy_2k():
    val, rep = load_suite("toy-val"), load_suite("toy-2k")
    pv, pr = load_prompts(val), load_prompts(rep)
    assert len(pv) == 250 and len(val.seeds) == 2 and len(pr) == 500  # 500 images
    assert pr.sha256 == TOY_2K_PROMPT_SHA256  # the reported suite's captions are unchanged, bit for bit
    assert not set(pv.prompts) & set(pr.prompts)  # no caption string shared
    assert not set(val.seeds) & set(rep.seeds)
    assert not {noise_seed(i, s) for i in range(len(pv)) for s in val.seeds} & \
        {noise_seed(i, s) for i in range(len(pr)) for s in rep.seeds}
    fid_val = next(m.kwargs for m in val.metrics if m.name == "toy_fid")
    fid_rep = next(m.kwargs for m in rep.metrics if m.name == "toy_fid")
    assert fid_val["ref_seed"] != fid_rep["ref_seed"] and fid_val["n_ref"] == 5000
    assert val.generation_dtype == rep.generation_dtype == "fp32"
    assert [m.name for m in val.metrics] == [m.name for m in rep.metrics]


def test_prompts_exclude_drops_other_sets_and_leaves_plain_draws_alone():
    assert data.prompts(500, 0) == data.prompts(500, 0, exclude=None)
    banned = set(data.prompts(500, 0))
    out = data.prompts(250, 1, exclude={"n": 500, "seed": 0})
    assert len(out) == 250 and not set(out) & banned
    assert out == data.prompts(250, 1, exclude=[{"n": 500, "seed": 0}])  # deterministic; a list works too
    kept = [c for c in data.prompts(250, 1) if c not in banned]
    assert out[:len(kept)] == kept  # the plain draw, minus collisions, then more draws from the same generator
    assert len(data.all_captions()) == 1500 and set(out) <= set(data.all_captions())


def test_toy_val_is_registered():
    assert "toy-val" in list_suites()
    r = CliRunner().invoke(app, ["ls", "suites"])
    assert r.exit_code == 0 and any(ln.split()[0] == "toy-val" for ln in r.output.splitlines())
