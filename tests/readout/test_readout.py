"""The shared readout (addbench/readout.py): parsing, conversions on every schedule, and that an exported
checkpoint samples exactly what the distiller trained."""
from __future__ import annotations

import pytest
import torch

from addbench.errors import AddbenchError
from addbench.readout import Readout, student_x0
from addbench.schedules import FlowSchedule, VPSchedule

SD = VPSchedule()  # SD1.5 / toy: scaled-linear, ε-prediction, α_T ≈ 0.068


@pytest.mark.parametrize("spec", ["base", "epsilon", "v_prediction", "sample", "flow", "v_prediction+ztsnr",
                                  "sample+ztsnr"])
def test_target_and_readout_invert_each_other(spec):
    """For every readout, the network output the student is trained towards reads back to x0 and ε."""
    sched = Readout.parse(spec).schedule_for(SD)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(6, 3, 4, 4, generator=g, dtype=torch.float64), torch.randn(6, 3, 4, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([0.0, 10.0, 250.0, 399.0, 700.0, 998.0], dtype=torch.float64)
    x_t = sched.add_noise(x0, eps, t)
    x0_hat, eps_hat = sched.to_x0_eps(sched.target(x0, eps, t), x_t, t)
    assert torch.allclose(x0_hat, x0, atol=1e-6) and torch.allclose(eps_hat[1:], eps[1:], atol=1e-6)


def test_ztsnr_top_is_pure_noise_and_v_reads_minus_x0():
    sched = Readout.parse("v_prediction+ztsnr").schedule_for(SD)
    a, s = sched.alpha_sigma(torch.tensor(999.0))
    assert float(a) == pytest.approx(0.0, abs=1e-12) and float(s) == pytest.approx(1.0)
    o = torch.randn(2, 3)
    assert torch.allclose(sched.to_x0(o, torch.randn(2, 3), 999.0), -o)
    # the teacher's schedule is untouched
    assert float(SD.alpha_sigma(torch.tensor(999.0))[0]) == pytest.approx(0.0683, abs=1e-3)


def test_epsilon_readout_gain_at_T_vs_conditioning_timestep():
    """Finding 1 of the audit: through an ε-readout x̂0 moves σ_t/α_t as much as the output: 14.6x at t = 999,
    1.16x at DMD2's conditioning timestep 399."""
    for t, gain in ((999.0, 14.6), (399.0, 1.16)):
        a, s = SD.alpha_sigma(torch.tensor(t))
        assert float(s / a) == pytest.approx(gain, abs=0.05)


def test_flow_readout_is_the_straight_path():
    sched = Readout.parse("flow").schedule_for(SD)
    assert isinstance(sched, FlowSchedule) and sched.T == 999.0 and Readout.parse("flow").solver == "euler"


@pytest.mark.parametrize("bad", ["eps", "epsilon+ztsnr", "flow+ztsnr", "v"])
def test_bad_specs_are_one_line_errors(bad):
    with pytest.raises(AddbenchError, match="readout="):
        Readout.parse(bad)


def test_legacy_checkpoints_keep_their_readout():
    assert Readout.from_checkpoint({"config": {"student_schedule": "flow"}}).spec == "flow"
    assert Readout.from_checkpoint({"config": {}}).spec == "base"
    assert Readout.from_checkpoint({"config": {"readout": "v_prediction+ztsnr"}}).spec == "v_prediction+ztsnr"


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    from addbench.bases.tiny import save_tiny_pipeline

    torch.set_num_threads(2)
    return str(save_tiny_pipeline("toy", tmp_path_factory.mktemp("toy") / "pipe"))


@pytest.mark.parametrize("distiller,overrides", [
    ("dmd", ["gen_t=399", "readout=base", "lambda_reg=0"]),
    ("dmd2", ["gen_t=399", "readout=sample"]),
    ("add", ["readout=v_prediction+ztsnr"]),
])
def test_exported_checkpoint_samples_what_was_trained(pipe, tmp_path, distiller, overrides):
    """The loaded checkpoint's 1-step sample equals the distiller's own generator on the same noise: same
    conditioning timestep, same readout (a wrong gen_t or schedule would differ by far more than rounding)."""
    from addbench.bases.loading import load_generator
    from addbench.bases.sampling import initial_noise
    from addbench.registry import DISTILLERS
    from addbench.train.entry import resolve_config, train

    fast = ["batch=2", "budget_images=2", "tensorboard=false", "+progress=false", "real_images=toy:16",
            "prompts=toy:16"] + {"add": ["head_width=8"], "dmd2": ["head_width=64"], "dmd": []}[distiller]
    ckpt = train(distiller, pipe, tmp_path / "run", fast + overrides, device="cpu")
    gen = load_generator(ckpt)
    prompts = ["a red circle at the center on a dark background"]
    img = gen.generate(prompts, [7])

    cls = DISTILLERS.get(distiller)
    cfg = resolve_config(cls, pipe, fast + overrides)
    plugin = cls(cfg)
    from addbench.bases.loading import load_base

    base = load_base(pipe, device="cpu")
    plugin.nets = plugin.setup(base, cfg)
    plugin.nets["g"] = gen.base.network  # the trained weights
    z = initial_noise([7], tuple(base.latent_shape(32, 32)))
    t = gen.sampler.timesteps[0]
    x0 = student_x0(base, plugin.student_schedule, plugin.nets["g"], z, t, base.encode_prompts(prompts))
    want = ((x0.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    assert (img.int() - want.int()).abs().max() <= 1
    assert t == (399.0 if distiller != "add" else 999.0)
