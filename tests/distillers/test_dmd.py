"""DMD (v1) plug-in: CPU smoke train + export/load on a tiny random toy pipeline, and behaviour checks."""
from __future__ import annotations

import pytest
import torch

from addbench.bases.loading import load_base, load_generator
from addbench.bases.tiny import save_tiny_pipeline
from addbench.train.entry import resolve_config, train
from addbench.train.loop import read_logs
from addbench.train.odepairs import collect_ode_pairs

FAST = ["batch=2", "prompts=toy:16", "tensorboard=false", "+progress=false"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("dmd")
    pipe = str(save_tiny_pipeline("toy", root / "pipe"))
    pairs = collect_ode_pairs(load_base(pipe, device="cpu"), ["a red circle at the center on a dark background"],
                              root / "pairs", n_pairs=4, steps=2, guidance=1.0, shard_size=4, batch_size=4)
    return pipe, str(pairs)


def _plugin(world, overrides=()):
    from distillers.dmd import DMD

    pipe, pairs = world
    cfg = resolve_config(DMD, pipe, FAST + [f"ode_pairs={pairs}"] + list(overrides))
    plugin = DMD(cfg)
    base = load_base(pipe, device="cpu")
    plugin.nets = plugin.setup(base, cfg)
    return plugin, base, cfg


def _batch(plugin, cfg, step=0):
    from addbench.train.data import TrainData

    return TrainData(cfg, plugin.data_needs).batch(step)


def test_smoke_train_export_load(world, tmp_path):
    pipe, pairs = world
    ckpt = train("dmd", pipe, tmp_path / "run", FAST + [f"ode_pairs={pairs}", "budget_images=4"], device="cpu")
    gen = load_generator(ckpt)
    assert gen.sampler.timesteps == (399.0,) and gen.sampler.guidance == 1.0  # the toy preset's gen_t
    img = gen.generate(["a blue square at the top left on a light background"], [3])
    assert img.shape == (1, 3, 32, 32) and img.dtype == torch.uint8
    teacher = load_base(pipe, device="cpu").network.state_dict()
    student = gen.base.network.state_dict()
    assert any(not torch.equal(teacher[k], student[k]) for k in teacher), "the generator did not change"
    from safetensors.torch import load_file

    state = sorted((tmp_path / "run" / "state").glob("step_*"))[-1]  # the fake score is trained and checkpointed
    w = load_file(str(state / "networks.safetensors"))
    fake = {k[len("fake/"):]: v for k, v in w.items() if k.startswith("fake/")}
    assert fake and any(not torch.equal(teacher[k], fake[k]) for k in teacher if k in fake)


def test_turns_and_data_needs_follow_the_config(world):
    from distillers.dmd import DMD

    pipe, pairs = world
    d = DMD(resolve_config(DMD, pipe, FAST + ["fake_per_g=5", "lambda_reg=0"]))
    assert [(t.name, t.networks, t.every, t.repeats) for t in d.turns] == [("g", ("g",), 1, 1), ("fake", ("fake",), 1, 5)]
    assert d.data_needs == frozenset({"prompts"})  # no ODE pairs needed without the regression loss
    d = DMD(resolve_config(DMD, pipe, FAST + [f"ode_pairs={pairs}"]))
    assert "ode_pairs" in d.data_needs and d.cfg["lambda_reg"] == 0.25


def test_generator_loss_is_dm_plus_weighted_regression(world):
    plugin, _, cfg = _plugin(world, ["lambda_reg=2.0"])
    loss, logs = plugin.loss("g", _batch(plugin, cfg), 0)
    logs = read_logs(logs)
    assert float(loss) == pytest.approx(logs["g/dm"] + 2.0 * logs["g/reg"], rel=1e-5)
    loss.backward()
    g = plugin.nets["g"]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())
    assert all(p.grad is None for p in plugin.nets["fake"].parameters())  # the fake score gets no G gradient


def test_regression_pulls_the_generator_to_the_ode_endpoints(world):
    # gen_t = T (DMD's own): the random tiny teacher's ODE endpoints are ~100x the data scale, which only the
    # ε-readout's 1/α_T gain reaches in 6 steps (the toy preset's gen_t 399 trains real teachers, tests/gmm)
    plugin, _, cfg = _plugin(world, ["lambda_dm=0", "lambda_reg=1.0", "gen_t=999"])
    opt = torch.optim.Adam(plugin.nets["g"].parameters(), lr=1e-5)  # x0 = (x - σε̂)/α_T amplifies ~150x at t = T
    batch = _batch(plugin, cfg)
    regs = []
    torch.manual_seed(0)
    for _ in range(6):
        opt.zero_grad()
        loss, logs = plugin.loss("g", batch, 0)
        logs = read_logs(logs)
        loss.backward()
        opt.step()
        regs.append(logs["g/reg"])
    assert min(regs[-2:]) < 0.9 * regs[0], regs


def test_fake_score_learns_the_generator_distribution(world):
    """The fake turn trains only the fake network, with the denoising loss on generator samples."""
    plugin, _, cfg = _plugin(world)
    fake = plugin.nets["fake"]
    before = {k: v.clone() for k, v in fake.state_dict().items()}
    g_before = {k: v.clone() for k, v in plugin.nets["g"].state_dict().items()}
    opt = torch.optim.Adam(fake.parameters(), lr=1e-3)
    batch = _batch(plugin, cfg)
    opt.zero_grad()
    loss, logs = plugin.loss("fake", batch, 0)
    logs = read_logs(logs)
    loss.backward()
    opt.step()
    assert logs["fake/denoise"] > 0
    assert any(not torch.equal(before[k], v) for k, v in fake.state_dict().items())
    assert all(torch.equal(g_before[k], v) for k, v in plugin.nets["g"].state_dict().items())


def test_lpips_without_weights_is_a_clear_error(world, tmp_path, monkeypatch):
    from addbench.errors import AddbenchError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache
    with pytest.raises(AddbenchError, match="LPIPS"):
        _plugin(world, ["lpips_net=vgg"])
