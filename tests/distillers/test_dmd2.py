"""DMD2 plug-in: CPU smoke train + export/load on a tiny random toy pipeline, and behaviour checks."""
from __future__ import annotations

import pytest
import torch

from addbench.bases.loading import load_base, load_generator
from addbench.bases.tiny import save_tiny_pipeline
from addbench.train.entry import resolve_config, train
from addbench.train.loop import read_logs

FAST = ["batch=2", "head_width=64", "prompts=toy:8", "real_images=toy:8", "tensorboard=false", "+progress=false"]


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    torch.set_num_threads(2)
    return str(save_tiny_pipeline("toy", tmp_path_factory.mktemp("toy") / "pipe"))


def _plugin(pipe, overrides=()):
    from distillers.dmd2 import DMD2

    cfg = resolve_config(DMD2, pipe, FAST + list(overrides))
    plugin = DMD2(cfg)
    plugin.nets = plugin.setup(load_base(pipe, device="cpu"), cfg)
    return plugin, cfg


def _batch(cfg, step=0, call=0):
    from addbench.train.data import TrainData

    return TrainData(cfg, {"prompts", "images"}).batch(step, call)


def test_smoke_train_export_load_and_ttur(pipe, tmp_path):
    from distillers.dmd2 import DMD2

    calls = []

    class Counting(DMD2):
        def loss(self, turn, batch, step):
            calls.append((step, turn))
            return super().loss(turn, batch, step)

    ckpt = train(Counting, pipe, tmp_path / "run", FAST + ["budget_images=4"], device="cpu")
    # preset TTUR: 5 fake-score (+ classifier) updates per generator update, 2 generator steps = 4 images
    assert calls == [(s, t) for s in (0, 1) for t in ["g"] + ["fake"] * 5]
    gen = load_generator(ckpt)
    assert gen.sampler.timesteps == (399.0,) and gen.sampler.guidance == 1.0  # the toy preset's gen_t
    assert gen.generate(["a red circle"], [0]).shape == (1, 3, 32, 32)
    teacher = load_base(pipe, device="cpu").network.state_dict()
    student = gen.base.network.state_dict()
    assert any(not torch.equal(teacher[k], student[k]) for k in teacher), "the student did not change"


def test_classifier_head_sits_on_the_fake_bottleneck_and_learns(pipe):
    plugin, cfg = _plugin(pipe, ["gan_t_max=0.1"])  # nearly clean inputs: real vs grey is separable
    assert plugin.taps.names == ["mid_block"] and plugin.taps.network is plugin.nets["fake"]
    batch = _batch(cfg)
    real = batch["images"]
    fake = torch.zeros_like(real)  # a collapsed generator: flat grey images
    cond = plugin.base.encode_prompts(batch["captions"])
    from addbench.losses import softplus_d

    opt = torch.optim.Adam(plugin.nets["disc"].parameters(), lr=1e-3)
    losses = []
    for i in range(8):
        g = torch.Generator().manual_seed(0)  # same t' and noise every step
        opt.zero_grad()
        loss = softplus_d(plugin.logits(real, cond, g), plugin.logits(fake, cond, g)).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.2, losses


def test_gan_weight_enters_the_generator_loss(pipe):
    plugin, cfg = _plugin(pipe, ["lambda_gan_g=0.5"])
    loss, logs = plugin.loss("g", _batch(cfg), 0)
    logs = read_logs(logs)
    assert float(loss) == pytest.approx(logs["g/dm"] + 0.5 * logs["g/gan"], rel=1e-5)
    plugin0, _ = _plugin(pipe, ["lambda_gan_g=0"])
    loss0, logs0 = plugin0.loss("g", _batch(cfg), 0)
    logs0 = read_logs(logs0)
    assert "g/gan" not in logs0 and float(loss0) == pytest.approx(logs0["g/dm"], rel=1e-5)
    loss.backward()
    assert plugin.nets["g"].conv_out.weight.grad is not None


def test_fake_turn_trains_fake_score_and_head(pipe):
    plugin, cfg = _plugin(pipe, ["lambda_gan_d=2.0"])
    loss, logs = plugin.loss("fake", _batch(cfg), 0)
    logs = read_logs(logs)
    assert float(loss) == pytest.approx(logs["fake/denoise"] + 2.0 * logs["disc/cls"], rel=1e-5)
    loss.backward()
    assert plugin.nets["disc"].proj.out.weight.grad.abs().sum() > 0
    assert plugin.nets["fake"].conv_out.weight.grad.abs().sum() > 0  # denoising loss
    assert plugin.nets["fake"].mid_block.resnets[0].conv1.weight.grad.abs().sum() > 0


def test_backward_simulation_runs_the_student_then_one_grad_step(pipe):
    plugin, cfg = _plugin(pipe, ["gen_steps=4"])
    assert plugin.gen_ts == [999.0, 749.0, 499.0, 249.0]
    seen = []
    orig = plugin.g_x0

    def spy(x_t, t, cond):
        seen.append((t, torch.is_grad_enabled()))
        return orig(x_t, t, cond)

    plugin.g_x0 = spy
    z = torch.randn(2, 3, 32, 32)
    cond = plugin.base.encode_prompts(["a", "b"])
    ns = set()
    for s in range(12):
        seen.clear()
        x = plugin.generate(z, cond, grad=True, generator=torch.Generator().manual_seed(s))
        n = len(seen) - 1
        ns.add(n)
        assert [t for t, _ in seen] == plugin.gen_ts[: n + 1]
        assert [g for _, g in seen] == [False] * n + [True] and x.requires_grad
    assert ns == {0, 1, 2, 3}
