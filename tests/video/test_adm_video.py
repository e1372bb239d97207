"""DMDX ADM on tiny CogVideoX pipelines (CPU): the cogvideox preset with video-sized overrides trains a few steps
(losses finite, the student moves), exports a checkpoint that load_generator turns into uint8 (N, F, 3, H, W)
clips; 3D heads on every 3rd block; the "w/ CFG" student runs CFG at the real scale minus 2."""
import json
import math

import pytest
import torch

from addbench.bases.loading import load_base, load_generator
from addbench.train.entry import resolve_config, train

TINY = ["batch=2", "resolution=32,32", "frames=9", "prompts=toy:8", "head_width=64", "tensorboard=false",
        "+progress=false"]


def test_adm_trains_exports_and_loads_a_video_student(cog_dir, tmp_path):
    pipe = str(cog_dir("2b"))
    ckpt = train("dmdx.adm", pipe, tmp_path / "run", TINY + ["budget_images=4", "student_cfg=true"], device="cpu")
    logs = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(logs) == 2
    for rec in logs:
        for key in ("fake/loss", "g/loss", "d/loss", "g/hinge", "d/hinge", "fake/denoise"):
            assert math.isfinite(rec[key]), (key, rec)
        assert 5.0 <= rec["g/real_cfg"] <= 7.0
    gen = load_generator(str(ckpt), device="cpu")
    s = gen.sampler
    assert (s.steps, s.guidance, s.solver, s.frames, s.height, s.width) == (8, 4.0, "ddim", 9, 32, 32)
    assert s.timesteps == (999.0, 874.0, 749.0, 624.0, 499.0, 374.0, 249.0, 124.0)
    teacher = load_base(pipe, device="cpu").network.state_dict()
    student = gen.base.network.state_dict()
    assert any(not torch.equal(teacher[k], student[k]) for k in teacher), "ADM did not change the student"
    clips = gen.generate(["a red circle"], [0])
    assert clips.dtype == torch.uint8 and clips.shape == (1, 9, 3, 32, 32)


def _plugin(pipe, overrides):
    from distillers.dmdx import ADM

    cfg = resolve_config(ADM, pipe, TINY + overrides)
    plugin = ADM(cfg)
    plugin.nets = plugin.setup(load_base(pipe, device="cpu"), cfg)
    return plugin, cfg


def _batch(plugin, cfg, step=0, call=0):
    from addbench.train.data import TrainData

    return TrainData(cfg, plugin.data_needs).batch(step, call)


def test_3d_heads_on_every_third_block_and_the_student_cfg_offset(cog_dir):
    from addbench.discriminators import Video3DHead

    plugin, cfg = _plugin(str(cog_dir("5b")), ["student_cfg=true", "grad_checkpointing=false"])
    assert cfg["gen_steps"] == 8 and cfg["real_guidance"] == [5.0, 7.0] and cfg["lr_g"] == 1e-7
    heads = plugin.nets["d"]
    assert len(heads) == len(plugin.base.feature_taps) == 2 and all(isinstance(h, Video3DHead) for h in heads)
    assert plugin.shape == (3, 4, 4, 4)
    calls = []
    orig = plugin.base.predict

    def spy(x_t, t, cond, network=None):
        calls.append((network, x_t.shape[0]))
        return orig(x_t, t, cond, network=network)

    plugin.base.predict = spy
    loss_g, logs = plugin.loss("g", _batch(plugin, cfg, 0, 1), 0)
    assert torch.isfinite(loss_g) and 5.0 <= logs["g/real_cfg"] <= 7.0
    assert plugin.student_guidance(logs["g/real_cfg"]) == pytest.approx(logs["g/real_cfg"] - 2.0)
    student = [n for net, n in calls if net is plugin.nets["g"]]
    assert student and all(n == 4 for n in student)  # 2 samples, CFG batched on [null, cond]
    real = [n for net, n in calls if net is plugin.teacher]
    assert 4 in real  # the real score with CFG; the discriminator's teacher pass has 2
    loss_g.backward()
    assert plugin.nets["g"].proj_out.weight.grad.abs().sum() > 0
    feats = plugin.latent_taps(torch.zeros(2, *plugin.shape), 500.0, plugin.base.encode_prompts(["a", "b"]))
    assert [f.ndim for f in feats] == [5, 5]
    loss_d, _ = plugin.loss("d", _batch(plugin, cfg, 0, 2), 0)
    loss_d.backward()
    assert torch.isfinite(loss_d) and all(p.grad is not None for p in heads.parameters())
    plugin.cfg = {**cfg, "student_cfg": False}
    assert plugin.student_guidance(6.0) == 1.0 and plugin.inference_guidance() == 1.0
