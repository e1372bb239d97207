"""DMDX plug-ins (ADP, ADM): smoke train ADP -> ADM -> export/load on a tiny toy pipeline; behaviour checks."""
from __future__ import annotations

import pytest
import torch

from addbench.bases.loading import load_base, load_generator
from addbench.bases.tiny import save_tiny_pipeline
from addbench.errors import AddbenchError
from addbench.schedules import FlowSchedule
from addbench.train.entry import resolve_config, train
from addbench.train.loop import read_logs

FAST = ["batch=2", "tensorboard=false", "+progress=false", "latent_taps=base", "head_width=64"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from addbench.train.data import load_prompts
    from addbench.train.odepairs import collect_ode_pairs

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("dmdx")
    pipe = str(save_tiny_pipeline("toy", root / "pipe"))
    pairs = collect_ode_pairs(load_base(pipe, device="cpu"), load_prompts("toy:4"), root / "pairs", n_pairs=4,
                              steps=2, guidance=1.0, shard_size=4, batch_size=4)
    return {"pipe": pipe, "adp": FAST + [f"ode_pairs={pairs}"], "adm": FAST + ["prompts=toy:8"], "root": root}


def _plugin(cls, world, overrides):
    cfg = resolve_config(cls, world["pipe"], overrides)
    plugin = cls(cfg)
    plugin.nets = plugin.setup(load_base(world["pipe"], device="cpu"), cfg)
    return plugin, cfg


def _batch(plugin, cfg, step=0, call=0):
    from addbench.train.data import TrainData

    return TrainData(cfg, plugin.data_needs).batch(step, call)


def test_adp_then_adm_train_export_load(world):
    adp = train("dmdx.adp", world["pipe"], world["root"] / "adp", world["adp"] + ["budget_images=2"], device="cpu")
    gen = load_generator(adp)
    assert isinstance(gen.base.schedule, FlowSchedule) and gen.sampler.timesteps == (999.0,)
    # the loaded 1-step student is x̂0 = z - v̂(z, T): the velocity reading of its output
    from addbench.bases.sampling import initial_noise, to_uint8

    z = initial_noise([3], (3, 32, 32))
    with torch.no_grad():
        cond = gen.base.encode_prompts(["a blue square"])
        manual = z - gen.base.predict(z, 999.0, cond)
    assert torch.equal(gen.generate(["a blue square"], [3]), to_uint8(manual))
    adm = train("dmdx.adm", world["pipe"], world["root"] / "adm", world["adm"] + ["budget_images=2", f"init={adp}"],
                device="cpu")
    gen2 = load_generator(adm)
    assert isinstance(gen2.base.schedule, FlowSchedule)
    a, b = gen.base.network.state_dict(), gen2.base.network.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a), "ADM did not change the ADP student"
    with pytest.raises(AddbenchError, match="readout"):
        _plugin(__import__("distillers.dmdx", fromlist=["ADM"]).ADM, world,
                world["adm"] + [f"init={adp}", "readout=base"])


def test_adp_inputs_are_linear_interpolations_with_cubic_timesteps(world):
    from distillers.dmdx import ADP

    plugin, cfg = _plugin(ADP, world, world["adp"] + ["batch=4"])
    seen = {}
    orig = plugin.base.predict

    def spy(x_t, t, cond, network=None):
        if network is plugin.nets["g"]:
            seen["x"], seen["t"] = x_t.clone(), t.clone()
        return orig(x_t, t, cond, network=network)

    plugin.base.predict = spy
    ts = []
    for step in range(8):
        batch = _batch(plugin, cfg, step)
        y, z, v, x0 = plugin.generate(batch, plugin.base.encode_prompts(batch["ode_prompts"]), grad=False)
        s = (seen["t"].double() / 999.0).reshape(-1, 1, 1, 1)
        assert torch.allclose(seen["x"], ((1 - s) * y + s * z).float(), atol=1e-5)
        assert torch.allclose(x0, seen["x"] - s.float() * v, atol=1e-5)  # x̂0 = x_t - (t/T) v̂
        ts.append(seen["t"])
    u = (1 - torch.cat(ts).double() / 999.0) ** (1 / 3)  # invert t = (1 - u³) T: u must look uniform
    assert 0.3 < float(u.mean()) < 0.7 and float((torch.cat(ts) > 500).float().mean()) > 0.75


def test_adp_losses_weight_latent_and_pixel_discriminators(world):
    from distillers.dmdx import ADP

    plugin, cfg = _plugin(ADP, world, world["adp"] + ["lambda_velocity=0"])  # the paper's GAN-only objective
    assert len(plugin.nets["d"]["latent"]) == len(plugin.base.feature_taps) and len(plugin.nets["d"]["pixel"]) == 3
    loss, logs = plugin.loss("d", _batch(plugin, cfg), 0)
    logs = read_logs(logs)
    assert float(loss) == pytest.approx(0.85 * logs["d/latent"] + 0.15 * logs["d/pixel"], rel=1e-5)
    loss, logs = plugin.loss("g", _batch(plugin, cfg), 0)
    logs = read_logs(logs)
    assert float(loss) == pytest.approx(0.85 * logs["g/latent"] + 0.15 * logs["g/pixel"], rel=1e-5)
    loss.backward()
    assert plugin.nets["g"].conv_out.weight.grad.abs().sum() > 0


def test_adp_latent_discriminator_learns_real_vs_grey(world):
    from addbench.losses import hinge_d
    from distillers.dmdx import ADP

    plugin, cfg = _plugin(ADP, world, world["adp"] + ["lambda_pixel=0"])
    heads = plugin.nets["d"]["latent"]
    batch = _batch(plugin, cfg)
    y = batch["ode_target"].float()
    cond = plugin.base.encode_prompts(batch["ode_prompts"])
    t = torch.full((len(y),), 20.0)
    opt = torch.optim.Adam(heads.parameters(), lr=2e-3, betas=(0.0, 0.99))
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = hinge_d(plugin.latent_logits(heads, y, t, cond),
                       plugin.latent_logits(heads, torch.zeros_like(y), t, cond)).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.3, losses


def test_adm_algorithm_order_and_discriminator_reuses_generator_pairs(world):
    from distillers.dmdx import ADM

    plugin, cfg = _plugin(ADM, world, world["adm"] + ["readout=base"])
    assert [t.name for t in plugin.turns] == ["fake", "g", "d"] and all(t.every == 1 for t in plugin.turns)
    calls = []
    orig = plugin.pairs
    plugin.pairs = lambda *a: calls.append(1) or orig(*a)
    loss_g, _ = plugin.loss("g", _batch(plugin, cfg, 0, 1), 0)
    x_real, x_fake, t_next, _ = plugin._pairs[(0, 0)]
    assert torch.all(t_next >= 0) and torch.all(t_next <= 999.0 - 999.0 / 64 + 1e-6)
    loss_d, logs = plugin.loss("d", _batch(plugin, cfg, 0, 2), 0)
    assert len(calls) == 1 and plugin._pairs == {}  # Algorithm 1 line 26: the same pairs, no new solve
    loss_d.backward()
    assert all(p.grad is not None for p in plugin.nets["d"].parameters())
    loss_f, logs_f = plugin.loss("fake", _batch(plugin, cfg, 1, 0), 1)
    loss_f.backward()
    assert plugin.nets["fake"].conv_out.weight.grad.abs().sum() > 0


def test_adm_multistep_student_solves_without_grad_then_one_grad_step(world):
    from distillers.dmdx import ADM

    plugin, cfg = _plugin(ADM, world, world["adm"] + ["readout=base", "gen_steps=4"])
    assert plugin.gen_ts == [999.0, 749.0, 499.0, 249.0]
    seen = []
    orig = plugin.student_x0
    plugin.student_x0 = lambda x, t, c, **kw: seen.append((float(t), torch.is_grad_enabled())) or orig(x, t, c, **kw)
    z, cond = torch.randn(2, 3, 32, 32), plugin.base.encode_prompts(["a", "b"])
    ns = set()
    for s in range(12):
        seen.clear()
        x = plugin.generate(z, cond, grad=True, generator=torch.Generator().manual_seed(s))
        ns.add(len(seen) - 1)
        assert [g for _, g in seen] == [False] * (len(seen) - 1) + [True] and x.requires_grad
    assert ns == {0, 1, 2, 3}
    seen.clear()
    plugin.generate(z, cond, grad=True, full=True)
    assert [t for t, _ in seen] == plugin.gen_ts and not any(g for _, g in seen)


@pytest.mark.parametrize("skip", [False, True])
def test_teacher_checkpointing_follows_grad_checkpointing_and_checkpoint_skip(world, monkeypatch, skip):
    import addbench.train.parallel as parallel

    from distillers.dmdx import ADM

    wrapped = []
    monkeypatch.setattr(parallel, "enable_activation_checkpointing", lambda m: wrapped.append(m) or "spy")
    plugin, _ = _plugin(ADM, world, world["adm"] + ["grad_checkpointing=true"]
                        + (["checkpoint_skip=teacher"] if skip else []))
    assert (plugin.teacher in wrapped) is not skip


def test_channels_last_converts_every_conv_weight_and_trains_the_same(world):
    """``channels_last=true`` (engine): the plug-in's networks and the teacher (and a latent base's VAE) get NHWC
    conv weights; the losses match the default layout (same math, another conv algorithm); it may change on
    resume."""
    import json

    from addbench.train import loop
    from addbench.train.parallel import init_distributed
    from distillers.dmdx import ADM

    cfg = resolve_config(ADM, world["pipe"], world["adm"] + ["channels_last=true"])
    base = load_base(world["pipe"], device="cpu")
    state = loop.setup(ADM(cfg), base, cfg, init_distributed("cpu"), world["root"] / "cl-setup")
    convs = [m.weight for n in [*state.nets.values(), base.network] for m in n.modules()
             if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in convs
                         if w.shape[-1] > 1 or w.shape[-2] > 1)

    def losses(run):
        rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
        return [[r[k] for k in ("fake/loss", "g/loss", "d/loss")] for r in rows]

    runs = {cl: world["root"] / f"cl-{cl}" for cl in ("false", "true")}
    for cl, run in runs.items():
        train("dmdx.adm", world["pipe"], run, world["adm"] + ["budget_images=4", f"channels_last={cl}"], device="cpu")
    a, b = losses(runs["false"]), losses(runs["true"])
    assert len(a) == len(b) == 2
    torch.testing.assert_close(torch.tensor(b), torch.tensor(a), rtol=1e-3, atol=1e-5)
    train("dmdx.adm", world["pipe"], runs["true"], world["adm"] + ["budget_images=6", "channels_last=false"], device="cpu")
    assert len(losses(runs["true"])) == 3


def test_bf16_pure_runs_the_base_networks_without_autocast(world):
    """``precision=bf16-pure``: under the loss's bf16 autocast the teacher and the trained copies run with autocast
    off inside them (on a GPU, autocast would run their norms in fp32: the casts this mode removes; the CPU's autocast
    keeps norms in bf16, so the test watches the autocast state itself), the discriminator heads with it on; ADM
    trains (its bf16 copies through fp32 master weights); fp32 networks are refused in one line."""
    import json

    from addbench.train import loop
    from addbench.train.parallel import init_distributed
    from distillers.dmdx import ADM

    def autocast_inside(prec):
        cfg = resolve_config(ADM, world["pipe"], world["adm"] + [f"precision={prec}", "base_dtype=bf16"])
        base = load_base(world["pipe"], device="cpu", dtype="bf16")
        state = loop.setup(ADM(cfg), base, cfg, init_distributed("cpu"), world["root"] / f"pure-{prec}")
        seen = []
        for net in (base.network, state.nets["g"], state.nets["fake"]):
            norm = next(m for m in net.modules() if isinstance(m, torch.nn.GroupNorm))
            h = norm.register_forward_hook(lambda m, a, out: seen.append(torch.is_autocast_enabled("cpu")))
            x = torch.randn((1, *base.latent_shape(32, 32)))
            with loop.autocast(cfg, torch.device("cpu")), torch.no_grad():
                base.predict(x, 500.0, base.encode_prompts(["a red cube"]), network=net)
            h.remove()
        head = state.nets["d"][0]
        h = head.register_forward_hook(lambda m, a, out: seen.append(torch.is_autocast_enabled("cpu")))
        with loop.autocast(cfg, torch.device("cpu")), torch.no_grad():
            head(torch.randn((1, next(m for m in head.modules() if isinstance(m, torch.nn.Conv2d)).in_channels, 16, 16)))
        h.remove()
        return seen

    assert autocast_inside("bf16") == [True] * 4
    assert autocast_inside("bf16-pure") == [False, False, False, True]
    run = world["root"] / "pure-train"
    train("dmdx.adm", world["pipe"], run, world["adm"] + ["budget_images=2", "precision=bf16-pure", "base_dtype=bf16"],
          device="cpu")
    rec = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert all(torch.isfinite(torch.tensor(rec[k])) for k in ("fake/loss", "g/loss", "d/loss"))
    optim = torch.load(sorted((run / "state").glob("step_*"))[-1] / "optim.pt", weights_only=False)
    for name in ("g", "fake"):  # bf16 copies train through fp32 master weights, saved with the optimizer state
        assert optim[name]["masters"] and all(m.dtype == torch.float32 for m in optim[name]["masters"].values())
    with pytest.raises(AddbenchError, match="precision=bf16-pure .* float32 weights: add base_dtype=bf16"):
        train("dmdx.adm", world["pipe"], world["root"] / "pure-fp32", world["adm"] + ["precision=bf16-pure"],
              device="cpu")
    with pytest.raises(AddbenchError, match="precision='fp16'; use one of auto, bf16, bf16-pure, fp32"):
        train("dmdx.adm", world["pipe"], world["root"] / "pure-bad", world["adm"] + ["precision=fp16"], device="cpu")


def test_compile_layers_compiles_the_innermost_blocks_of_every_copy_and_the_teacher(world, monkeypatch):
    """``compile=layers``: each ResnetBlock2D / BasicTransformerBlock / resampler of the trained copies and of the
    frozen teacher is compiled (not the UNet nor its down/up blocks); ``compile=true`` the outermost blocks."""
    from addbench.train import loop
    from addbench.train.parallel import init_distributed
    from distillers.dmdx import ADM

    modes = []

    def compiled(how, mode="default"):
        seen = []
        monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: (seen.append(self), modes.append(kw)))
        cfg = resolve_config(ADM, world["pipe"], world["adm"] + [f"compile={how}", f"compile_mode={mode}"])
        base = load_base(world["pipe"], device="cpu")
        state = loop.setup(ADM(cfg), base, cfg, init_distributed("cpu"), world["root"] / f"compile-{how}")
        owners = {}
        for name, net in [("teacher", base.network), ("g", state.nets["g"]), ("fake", state.nets["fake"])]:
            ids = {id(m) for m in net.modules()}
            owners[name] = sorted({type(m).__name__ for m in seen if id(m) in ids})
        return owners, len(seen)

    owners, n = compiled("layers")
    assert owners["g"] == owners["fake"] == owners["teacher"]
    assert {"ResnetBlock2D", "Downsample2D", "Upsample2D"} <= set(owners["g"])  # the toy UNet has no attention
    assert not any(k.endswith(("UNet2DConditionModel", "DownBlock2D", "UpBlock2D", "Transformer2DModel"))
                   for k in owners["g"])
    blocks, nb = compiled("true")
    assert all(k.endswith(("DownBlock2D", "UpBlock2D", "MidBlock2DCrossAttn")) for k in blocks["g"]) and nb < n
    assert compiled("false") == ({"teacher": [], "g": [], "fake": []}, 0)
    only, n_only = compiled("layers:ResnetBlock2D")
    assert only == {"teacher": ["ResnetBlock2D"], "g": ["ResnetBlock2D"], "fake": ["ResnetBlock2D"]} and n_only < n
    with pytest.raises(AddbenchError, match="compile='fastest'; use none, blocks .* layers or layers:<Class>"):
        compiled("fastest")
    with pytest.raises(AddbenchError, match="compile='blocks:ResnetBlock2D'"):
        compiled("blocks:ResnetBlock2D")
    assert modes and all(kw == {} for kw in modes)  # compile_mode=default: torch.compile's own default
    modes.clear()
    assert compiled("layers:ResnetBlock2D", "reduce-overhead") == (only, n_only)
    assert modes == [{"mode": "reduce-overhead"}] * n_only  # every unit, the teacher's too, gets the mode
    with pytest.raises(AddbenchError, match="compile_mode='graphs'; use one of default, reduce-overhead"):
        compiled("layers", "graphs")
    with pytest.raises(AddbenchError, match="compile_mode=reduce-overhead compiles nothing with compile=none; add"):
        compiled("none", "reduce-overhead")
