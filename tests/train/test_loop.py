import json
import math
import statistics

import pytest
import torch
from safetensors.torch import load_file

from addbench.errors import AddbenchError
from addbench.train.callbacks import TrainingStopped, loss_curves
from addbench.train.entry import train
from train_fakes import FakeBase, FakeDistiller


@pytest.fixture()
def prompts(tmp_path):
    p = tmp_path / "prompts.txt"
    p.write_text("".join(f"a shape number {i}\n" for i in range(20)))
    return f"prompts={p}"


def _records(run):
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


def test_training_runs_turns_by_ratio_learns_and_exports(tmp_path, prompts, monkeypatch):
    calls = []
    orig = FakeDistiller.setup
    monkeypatch.setattr(FakeDistiller, "setup", lambda self, b, c: (calls.append(self), orig(self, b, c))[1])
    run = tmp_path / "run"
    ckpt = train(FakeDistiller, FakeBase(), run, [prompts, "budget_images=320", "lambda_adv=0", "lr_g=3e-3",
                                                   "ckpt_every_images=160", "ema=0.9"], device="cpu")
    plugin = calls[0]
    turns = [t for _, t, _ in plugin.calls]
    assert turns.count("d") == 2 * turns.count("g") == 2 * 80  # 320 images / batch 4 = 80 steps
    recs = _records(run)
    assert [r["images_seen"] for r in recs] == list(range(4, 324, 4))
    reg = [r["g/reg"] for r in recs]
    assert statistics.mean(reg[-20:]) < 0.7 * statistics.mean(reg[:20])  # the generator learned
    assert set(loss_curves(run)) >= {"g/loss", "d/loss", "g/grad_norm", "d/grad_norm", "g/image_std"}
    # states: every 160 images, atomically written, last 2 kept, no tmp dirs left
    states = sorted(p.name for p in (run / "state").iterdir())
    assert states == ["step_000000040", "step_000000080"]
    st = run / "state" / "step_000000080"
    assert json.loads((st / "meta.json").read_text())["images_seen"] == 320
    w = load_file(str(st / "networks.safetensors"))
    assert {k.split("/")[0] for k in w} == {"g", "d"} and (st / "ema.safetensors").exists()
    # the exported student: DESIGN.md checkpoint dir, EMA weights (export_ema) differ from raw weights
    meta = json.loads((ckpt / "addbench_checkpoint.json").read_text())
    assert meta["format"] == "addbench-checkpoint/1" and meta["distiller"] == "fake" and meta["sampler"]["steps"] == 1
    assert meta["config"]["budget_images"] == 320
    student = load_file(str(ckpt / "network" / "model.safetensors"))
    ema = load_file(str(st / "ema.safetensors"))
    assert all(torch.equal(student[k], ema[k]) for k in ema)
    assert not torch.equal(student["out.weight"], w["g/out.weight"])
    assert json.loads((run / "config.json").read_text())["lr_g"] == 3e-3
    # running the same command again is a no-op resume that re-exports the same student
    train(FakeDistiller, FakeBase(), run, [prompts, "budget_images=320", "lambda_adv=0", "lr_g=3e-3",
                                           "ckpt_every_images=160", "ema=0.9"], device="cpu")
    assert len(_records(run)) == 80 and len(calls[1].calls) == 0
    assert torch.equal(load_file(str(ckpt / "network" / "model.safetensors"))["out.weight"], student["out.weight"])


def test_dry_run_writes_nothing_and_config_mismatch_is_refused(tmp_path, prompts, capsys):
    run = tmp_path / "run"
    path = train(FakeDistiller, FakeBase(), run, [prompts, "batch=8"], dry_run=True)
    printed = json.loads(capsys.readouterr().out)
    assert printed["batch"] == 8 and printed["lr_d"] == 1e-2 and not run.exists() and path == run / "config.json"
    train(FakeDistiller, FakeBase(), run, [prompts, "budget_images=8"], device="cpu")
    with pytest.raises(AddbenchError, match="another config \\(lr_g: 0.01 -> 0.5"):
        train(FakeDistiller, FakeBase(), run, [prompts, "budget_images=8", "lr_g=0.5"], device="cpu")
    # a larger budget is allowed: training continues from the saved state
    train(FakeDistiller, FakeBase(), run, [prompts, "budget_images=16"], device="cpu")
    assert [r["images_seen"] for r in _records(run)] == [4, 8, 12, 16]


def test_nan_loss_stops_with_a_clear_message(tmp_path, prompts, monkeypatch):
    monkeypatch.setenv("FAKE_NAN_AT_STEP", "3")
    with pytest.raises(TrainingStopped, match="step 3: turn 'd' loss is nan"):
        train(FakeDistiller, FakeBase(), tmp_path / "run", [prompts], device="cpu")


def test_collapse_detector_stops_on_low_image_std(tmp_path, prompts, monkeypatch):
    monkeypatch.setenv("FAKE_COLLAPSE_SCALE", "1e-9")
    with pytest.raises(TrainingStopped, match="step 1: g/image_std = .* collapsed"):
        train(FakeDistiller, FakeBase(), tmp_path / "run", [prompts], device="cpu")


def test_sample_grid(tmp_path, prompts):
    run = tmp_path / "run"
    train(FakeDistiller, FakeBase(), run, [prompts, "sample_every_images=8", "budget_images=16",
                                           "sample_prompts=6"], device="cpu")
    grids = sorted(p.name for p in (run / "samples").iterdir())
    assert grids == ["grid_0000000008.png", "grid_0000000016.png"]
    from PIL import Image

    assert Image.open(run / "samples" / grids[0]).size == (12, 8)  # 6 images of 4x4 in 3 columns, 2 rows


def test_grad_norm_clips_each_network_and_reports_the_norm_before_clipping():
    from addbench.train.loop import _grad_norm

    p = torch.nn.Parameter(torch.zeros(4))
    p.grad = torch.tensor([3.0, 4.0, 0.0, 0.0])
    assert float(_grad_norm([p], 1.0)) == pytest.approx(5.0)
    assert float(p.grad.norm()) == pytest.approx(1.0, rel=1e-5)
    p.grad = torch.tensor([3.0, 4.0, 0.0, 0.0])
    assert float(_grad_norm([p], 0.0)) == pytest.approx(5.0) and float(p.grad.norm()) == pytest.approx(5.0)  # 0 = off


def test_read_logs_reads_floats_and_tensors_in_order():
    from addbench.train.loop import read_logs

    logs = {"g/loss": torch.tensor(1.5), "g/real_cfg": 4.0, "g/grad_norm": torch.tensor([2.25]).reshape(()),
            "d/hinge": torch.tensor(float("nan"), dtype=torch.bfloat16)}
    out = read_logs(logs)
    assert list(out) == list(logs) and all(type(v) is float for v in out.values())
    assert out["g/loss"] == 1.5 and out["g/real_cfg"] == 4.0 and out["g/grad_norm"] == 2.25
    assert math.isnan(out["d/hinge"])


def test_export_of_a_diffusers_student_is_an_addbench_checkpoint(tmp_path):
    from diffusers import UNet2DModel

    from addbench.bases.checkpoint import read_checkpoint_meta
    from addbench.bases.interface import Sampler
    from addbench.train.checkpoint import export_student

    net = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 8), layers_per_block=1,
                      down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                      norm_num_groups=4)
    out = export_student(tmp_path / "ckpt", network=net, sampler=Sampler(steps=2, timesteps=(999.0, 499.0)),
                         base="toy", distiller="fake", config={"lr": 1.0})
    meta = read_checkpoint_meta(out)
    assert meta["base"] == "toy" and meta["sampler"]["timesteps"] == [999.0, 499.0] and meta["config"] == {"lr": 1.0}
    back = UNet2DModel.from_pretrained(str(out / "network"))
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), back.state_dict().values()))
    assert not (tmp_path / "ckpt.tmp").exists()


def test_warmup_ramps_the_learning_rate_linearly_and_resumes_on_the_ramp():
    from addbench.train.loop import warmup_

    net = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    lrs = []
    for seen in range(0, 48, 4):  # batch 4, warm-up over 16 images = 4 steps
        warmup_(opt, seen, 16)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[:4] == pytest.approx([1e-3 * (s + 1) / 16 for s in (0, 4, 8, 12)])
    assert lrs[4:] == pytest.approx([1e-3] * 8)
    # a resumed optimiser (state dict saved mid-ramp) keeps the configured lr, not the ramped one
    opt2 = torch.optim.AdamW(net.parameters(), lr=123.0)
    warmup_(opt, 4, 16)
    opt2.load_state_dict(opt.state_dict())
    warmup_(opt2, 12, 16)
    assert opt2.param_groups[0]["lr"] == pytest.approx(1e-3 * 13 / 16)
    warmup_(opt2, 100, 0)  # off
    assert opt2.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_grad_checkpointing_also_checkpoints_the_frozen_vae_decoder(tmp_path, prompts):
    """ADD / DMDX ADP backpropagate through the VAE decoder: with grad_checkpointing the engine checkpoints it
    too (same gradient, decoder blocks recomputed); without, it is left alone."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)

    def tiny_vae():
        return AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                             up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4,
                             layers_per_block=1).requires_grad_(False)

    vae = tiny_vae()
    z = torch.randn(1, 4, 8, 8, requires_grad=True)
    ref = torch.autograd.grad(vae.decode(z).sample.square().sum(), z)[0]
    base = FakeBase()
    base.vae = vae
    train(FakeDistiller, base, tmp_path / "on", [prompts, "budget_images=4", "grad_checkpointing=true"], device="cpu")
    assert vae.decoder.gradient_checkpointing
    calls = []
    inner = vae.decoder._gradient_checkpointing_func
    vae.decoder._gradient_checkpointing_func = lambda *a, **k: (calls.append(1), inner(*a, **k))[1]
    got = torch.autograd.grad(vae.decode(z).sample.square().sum(), z)[0]
    assert len(calls) >= 3  # mid block + each up block went through the checkpoint function
    torch.testing.assert_close(got, ref)
    base2 = FakeBase()
    base2.vae = tiny_vae()
    train(FakeDistiller, base2, tmp_path / "off", [prompts, "budget_images=4"], device="cpu")
    assert not base2.vae.decoder.gradient_checkpointing
    # checkpoint_skip leaves the named parts alone; it and grad_checkpointing may change on resume (same math)
    train(FakeDistiller, base2, tmp_path / "off", [prompts, "budget_images=8", "grad_checkpointing=true",
                                                    "checkpoint_skip=vae"], device="cpu")
    assert not base2.vae.decoder.gradient_checkpointing
    assert [r["images_seen"] for r in _records(tmp_path / "off")] == [4, 8]
    with pytest.raises(AddbenchError, match="checkpoint_skip names unet; use d, g, teacher or vae"):
        train(FakeDistiller, FakeBase(), tmp_path / "bad", [prompts, "budget_images=4", "grad_checkpointing=true",
                                                             "checkpoint_skip=unet"], device="cpu")


def test_a_bf16_network_trains_through_fp32_masters_and_fsdp2_refuses_it(tmp_path, prompts, monkeypatch):
    from addbench.train import loop

    def bf16_base():
        base = FakeBase()
        base.network.to(torch.bfloat16)
        return base

    run = tmp_path / "bf16"
    train(FakeDistiller, bf16_base(), run, [prompts, "budget_images=8", "lambda_adv=0", "lr_g=1e-5", "precision=bf16"],
          device="cpu")
    optim = torch.load(sorted((run / "state").glob("step_*"))[-1] / "optim.pt", weights_only=False)
    masters = optim["g"]["masters"]
    assert masters and all(m.dtype == torch.float32 for m in masters.values())
    start = [p.detach().float() for p in bf16_base().network.parameters()]
    # two lr=1e-5 steps moved every master by about 2e-5: mostly below a bf16 weight's spacing, kept in fp32
    assert all(0 < (m - s).abs().max() < 1e-4 for m, s in zip(masters.values(), start))

    plain = tmp_path / "bf16-plain"  # master_weights=off: AdamW on the bf16 weights themselves (old behaviour)
    train(FakeDistiller, bf16_base(), plain, [prompts, "budget_images=8", "lambda_adv=0", "lr_g=1e-5",
                                              "precision=bf16", "master_weights=off"], device="cpu")
    optim = torch.load(sorted((plain / "state").glob("step_*"))[-1] / "optim.pt", weights_only=False)
    assert "masters" not in optim["g"] and optim["g"]["state"][0]["exp_avg"].dtype == torch.bfloat16

    host = tmp_path / "bf16-host"  # master_weights=cpu: the same masters, kept in host memory (the CPU here)
    train(FakeDistiller, bf16_base(), host, [prompts, "budget_images=8", "lambda_adv=0", "lr_g=1e-5",
                                             "precision=bf16", "master_weights=cpu"], device="cpu")
    assert [r["g/loss"] for r in _records(host)] == [r["g/loss"] for r in _records(run)]
    with pytest.raises(AddbenchError, match="master_weights='gpu'; use on .*, cpu .* or off"):
        train(FakeDistiller, bf16_base(), tmp_path / "bad", [prompts, "budget_images=8", "master_weights=gpu"],
              device="cpu")
    # that run saved no state, so the corrected command may use the same folder
    train(FakeDistiller, bf16_base(), tmp_path / "bad", [prompts, "budget_images=8", "master_weights=cpu",
                                                         "precision=bf16"], device="cpu")
    assert json.loads((tmp_path / "bad" / "config.json").read_text())["master_weights"] == "cpu"

    per_net = tmp_path / "bf16-per-net"  # master_weights_<name> overrides the engine-wide key for one network
    train(FakeDistiller, bf16_base(), per_net, [prompts, "budget_images=8", "lambda_adv=0", "lr_g=1e-5",
                                                "precision=bf16", "+master_weights_g=off"], device="cpu")
    optim = torch.load(sorted((per_net / "state").glob("step_*"))[-1] / "optim.pt", weights_only=False)
    assert "masters" not in optim["g"] and optim["g"]["state"][0]["exp_avg"].dtype == torch.bfloat16
    with pytest.raises(AddbenchError, match="master_weights_fake names no trained network; .* with d, g"):
        train(FakeDistiller, bf16_base(), tmp_path / "bad-net", [prompts, "budget_images=8", "+master_weights_fake=cpu"],
              device="cpu")

    # where the masters live may change on resume (the same update and state), e.g. after an out-of-memory error;
    # turning them off may not
    moved = tmp_path / "moved"
    train(FakeDistiller, bf16_base(), moved, [prompts, "budget_images=8", "lambda_adv=0", "lr_g=1e-5", "precision=bf16"],
          device="cpu")
    train(FakeDistiller, bf16_base(), moved, [prompts, "budget_images=16", "lambda_adv=0", "lr_g=1e-5",
                                              "precision=bf16", "+master_weights_g=cpu"], device="cpu")
    whole = tmp_path / "whole"
    train(FakeDistiller, bf16_base(), whole, [prompts, "budget_images=16", "lambda_adv=0", "lr_g=1e-5", "precision=bf16"],
          device="cpu")
    assert [r["g/loss"] for r in _records(moved)] == [r["g/loss"] for r in _records(whole)] and len(_records(whole)) == 4
    with pytest.raises(AddbenchError, match="another config \\(master_weights: 'on' -> 'off'"):
        train(FakeDistiller, bf16_base(), moved, [prompts, "budget_images=24", "lambda_adv=0", "lr_g=1e-5",
                                                  "precision=bf16", "master_weights=off"], device="cpu")

    monkeypatch.setattr(loop, "is_sharded", lambda net: True)
    with pytest.raises(AddbenchError, match="g is sharded with bf16/fp16 weights.*base_dtype=fp32.*master_weights="):
        train(FakeDistiller, bf16_base(), tmp_path / "sharded", [prompts, "budget_images=8", "precision=bf16"],
              device="cpu")
