"""ADD plug-in: CPU smoke train + export/load on a tiny random toy pipeline, and behaviour checks."""
from __future__ import annotations

import torch
import pytest

from addbench.bases.loading import load_base, load_generator
from addbench.bases.tiny import save_tiny_pipeline
from addbench.train.entry import resolve_config, train
from addbench.train.loop import read_logs

FAST = ["batch=2", "real_images=toy:16", "tensorboard=false", "+progress=false", "head_width=8"]


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    torch.set_num_threads(2)
    return str(save_tiny_pipeline("toy", tmp_path_factory.mktemp("toy") / "pipe"))


def _plugin(pipe, overrides=()):
    from distillers.add import ADD

    cfg = resolve_config(ADD, pipe, FAST + list(overrides))
    base = load_base(pipe, device="cpu")
    plugin = ADD(cfg)
    plugin.nets = plugin.setup(base, cfg)
    return plugin, base, cfg


def _batch(cfg, step=0):
    from addbench.train.data import TrainData

    return TrainData(cfg, {"images"}).batch(step)


def test_smoke_train_export_load(pipe, tmp_path):
    ckpt = train("add", pipe, tmp_path / "run", FAST + ["budget_images=4"], device="cpu")
    gen = load_generator(ckpt)
    assert gen.sampler.timesteps == (999.0,) and gen.sampler.guidance == 1.0
    img = gen.generate(["a red circle at the center on a dark background"], [0])
    assert img.shape == (1, 3, 32, 32) and img.dtype == torch.uint8
    teacher = load_base(pipe, device="cpu").network.state_dict()
    student = gen.base.network.state_dict()
    assert any(not torch.equal(teacher[k], student[k]) for k in teacher), "the student did not change"


@pytest.mark.parametrize("readout", ["v_prediction+ztsnr", "base"])
def test_top_student_input_is_pure_noise(pipe, readout):
    """τ_n = T: the student sees pure noise, as at inference (zero terminal SNR makes it so; with α_T > 0 the
    leaked x0 is replaced), and its output is read on the readout's schedule."""
    plugin, base, cfg = _plugin(pipe, ["student_steps=1", f"readout={readout}"])  # τ set = {T}
    seen = {}
    orig = base.predict_cfg

    def spy(x_t, t, cond, guidance=1.0, network=None, null=None):
        seen["x"], seen["t"], seen["out"] = x_t, t, orig(x_t, t, cond, guidance, network, null)
        return seen["out"]

    base.predict_cfg = spy
    batch = _batch(cfg)
    _, x_hat = plugin.student_x0(batch, base.encode_prompts(batch["prompts"]), grad=False)
    from addbench.train.plugin import per_sample_randn

    eps = per_sample_randn(batch["sample_seeds"], (3, 32, 32))
    assert torch.allclose(seen["x"], eps) and float(seen["t"].max()) == 999.0
    a, s = base.schedule.alpha_sigma(torch.tensor(999.0))
    if readout == "base":  # ε-readout with the teacher's α_T = 0.068
        want = (eps - float(s) * seen["out"]) / float(a)
    else:  # v-prediction at α_T = 0: x̂0 = -v̂
        want = -seen["out"]
    assert torch.allclose(x_hat, want.float(), atol=1e-4)


def test_student_timesteps_are_the_uniform_set(pipe):
    plugin, _, _ = _plugin(pipe)
    assert plugin.student_ts == [999.0, 749.0, 499.0, 249.0]


def test_init_random_ablation_discards_teacher_weights(pipe):
    plugin, base, _ = _plugin(pipe, ["init=random"])
    t, s = base.network.state_dict(), plugin.nets["g"].state_dict()
    changed = [k for k in t if t[k].is_floating_point() and not torch.equal(t[k], s[k])]
    assert len(changed) > len(t) // 2
    same, _, _ = _plugin(pipe)
    assert all(torch.equal(t[k], same.nets["g"].state_dict()[k]) for k in t)


def test_lambda_adv_zero_removes_adversarial_gradient(pipe):
    plugin, _, cfg = _plugin(pipe, ["lambda_adv=0"])
    loss, logs = plugin.loss("g", _batch(cfg), 0)
    logs = read_logs(logs)
    plugin2, _, _ = _plugin(pipe)
    loss2, logs2 = plugin2.loss("g", _batch(cfg), 0)
    logs2 = read_logs(logs2)
    # same distillation term (same student, batch and noise), only the weighted adversarial term differs
    assert logs["g/distill"] == pytest.approx(logs2["g/distill"], rel=1e-5)
    assert float(loss) == pytest.approx(2.5 * logs["g/distill"], rel=1e-5)
    assert float(loss2) == pytest.approx(2.5 * logs2["g/distill"] + logs2["g/adv"], rel=1e-5)


def test_discriminator_learns_to_separate_real_from_a_bad_student(pipe):
    """Random-init student -> garbage samples: a few head updates must lower the hinge loss."""
    # the paper's γ = 1e-5 (the toy preset's 0.1 makes the tiny heads learn more slowly than 5 steps show)
    plugin, _, cfg = _plugin(pipe, ["init=random", "batch=2", "r1_gamma=1e-5"])
    heads = plugin.nets["d"]
    opt = torch.optim.Adam(heads.parameters(), lr=5e-3, betas=(0.0, 0.99))
    batch = _batch(cfg)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss, logs = plugin.loss("d", batch, 0)
        logs = read_logs(logs)
        loss.backward()
        opt.step()
        losses.append(logs["d/hinge"])
    assert losses[-1] < losses[0] - 0.3, losses
    assert logs["d/r1"] > 0


def test_r1_on_head_inputs_enters_the_d_loss(pipe):
    plugin, _, cfg = _plugin(pipe, ["r1_gamma=10.0"])
    loss, logs = plugin.loss("d", _batch(cfg), 0)
    logs = read_logs(logs)
    assert float(loss) == pytest.approx(logs["d/hinge"] + 10.0 * logs["d/r1"], rel=1e-4)


@pytest.mark.parametrize("weighting", ["sds", "nfsd"])
def test_other_weightings_run(pipe, weighting):
    plugin, _, cfg = _plugin(pipe, [f"weighting={weighting}", "teacher_guidance=2.0"])
    loss, logs = plugin.loss("g", _batch(cfg), 0)
    logs = read_logs(logs)
    loss.backward()
    assert torch.isfinite(loss) and logs["g/distill"] >= 0
