"""The gmm base behind the Base interface: conditioning, shapes, save/load, checkpoints, data, ODE pairs."""
import numpy as np
import pytest
import torch

from addbench.bases.cond import Cond
from addbench.errors import AddbenchError
from addbench.gmm import GMM_BUDGET, UNCOND, parse_caption, prompts
from addbench.gmm.base import GMMBase
from addbench.gmm.network import GMMDenoiser


def test_load_base_gives_an_exact_fp32_teacher(base):
    assert isinstance(base, GMMBase) and base.name == "gmm" and base.dtype == torch.float32
    assert base.schedule.prediction_type == "epsilon" and abs(float(base.schedule.alpha_sigma(999.0)[0]) - 0.068) < 1e-3
    assert base.latent_shape(32, 32) == (2,) and base.latent_shape(512, 77) == (2,)
    assert base.feature_taps == ["blocks.0", "blocks.1", "blocks.2"]
    assert all(not p.requires_grad for p in base.network.parameters())
    x = torch.randn(5, 2)
    assert torch.equal(base.decode(x), x) and torch.equal(base.encode(x), x)
    with pytest.raises(AddbenchError, match="frames"):
        base.latent_shape(1, 1, frames=4)


def test_captions_conditioning_and_cfg_shapes(base):
    assert parse_caption("class 3") == 3 and parse_caption("  Class  0 ") == 0 and parse_caption("") == UNCOND
    with pytest.raises(AddbenchError, match="class <k>"):
        base.encode_prompts(["a red circle"])
    with pytest.raises(AddbenchError, match="0 <= k < 4"):
        base.encode_prompts(["class 4"])
    cond = base.encode_prompts(["class 0", "class 3", ""])
    assert isinstance(cond, Cond) and cond.hidden.shape == (3, 1, 5) and cond.pooled.shape == (3, 5)
    assert cond.hidden[:, 0].argmax(1).tolist() == [0, 3, 4]
    null = base.null_cond(3)
    assert torch.equal(null.hidden, base.encode_prompts([""] * 3).hidden)
    both = Cond.cat([cond, null])
    assert len(both) == 6 and len(both[1:3]) == 2 and len(cond.repeat(2)) == 6
    x = torch.randn(3, 2)
    assert base.predict(x, 500.0, cond).shape == (3, 2)
    assert base.predict_cfg(x, torch.full((3,), 500.0), cond, guidance=3.0).shape == (3, 2)
    assert base.x0(x, 999.0, cond, guidance=2.0, null=null).shape == (3, 2)
    p = prompts(1000, seed=0)
    assert p == prompts(1000, seed=0) and set(p) == {f"class {k}" for k in range(4)}


def test_copies_train_through_the_mlp_only(base):
    net = base.copy_network().requires_grad_(True)
    names = {n for n, p in net.named_parameters()}
    assert not any(n.startswith("exact_") for n in names) and "out.weight" in names
    assert all(b.dtype == torch.int64 for n, b in net.named_buffers())
    x, t, c = torch.randn(4, 2, requires_grad=True), torch.full((4,), 300.0), base.encode_prompts(["class 1"] * 4)
    base.predict(x, t, c, network=net).sum().backward()
    assert x.grad is not None and net.out.weight.grad.abs().sum() > 0


def test_save_pretrained_round_trip_is_identical(base, tmp_path):
    net = base.copy_network()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    net.save_pretrained(tmp_path / "net", safe_serialization=True)
    loaded = GMMDenoiser.from_pretrained(str(tmp_path / "net"))
    x, t, c = torch.randn(16, 2), torch.rand(16) * 999, base.encode_prompts(["class 2"] * 8 + [""] * 8)
    assert torch.equal(net(x, t, c.hidden[:, 0]), loaded(x, t, c.hidden[:, 0]))
    bf16 = GMMDenoiser.from_pretrained(str(tmp_path / "net"), torch_dtype=torch.bfloat16)
    assert torch.equal(bf16.modes().means, net.modes().means)  # the mixture is never rounded
    assert torch.equal(GMMBase(tmp_path / "net", device="cpu").network.modes().eigvecs, net.modes().eigvecs)


def test_checkpoint_on_gmm_loads_back_and_generators_are_refused(base, tmp_path):
    from addbench.bases.checkpoint import load_checkpoint, save_checkpoint
    from addbench.bases.interface import Sampler
    from addbench.bases.loading import load_generator

    net = base.copy_network()
    with torch.no_grad():
        net.out.bias.fill_(0.25)
    save_checkpoint(tmp_path / "ckpt", "gmm", net, Sampler(steps=1, timesteps=(999.0,)), "test", {})
    loaded, sampler, meta = load_checkpoint(tmp_path / "ckpt", device="cpu")
    assert sampler.timesteps == (999.0,) and meta["base"] == "gmm"
    assert torch.equal(loaded.network.out.bias, net.out.bias)
    for model in ("gmm", str(tmp_path / "ckpt")):
        with pytest.raises(AddbenchError, match="points, not images"):
            load_generator(model, device="cpu")


def test_train_data_gives_exact_points_with_captions():
    from addbench.train.data import TrainData, load_prompts

    assert load_prompts("gmm:50", seed=1) == prompts(50, seed=1)
    cfg = {**GMM_BUDGET, "batch": 8}
    batch = TrainData(cfg, {"prompts", "images"}).batch(0)
    assert batch["images"].shape == (8, 2) and batch["images"].dtype == torch.float32
    assert all(c.startswith("class ") for c in batch["captions"]) and len(batch["prompts"]) == 8
    assert batch["images"].abs().max() < 1


def test_ode_pairs_of_the_teacher(base, tmp_path):
    from addbench.train.odepairs import OdePairs, collect_ode_pairs

    collect_ode_pairs(base, prompts(24), tmp_path / "pairs", n_pairs=24, steps=20, guidance=1.0, resolution=1,
                      shard_size=16, batch_size=8)
    noise, target, caps = OdePairs(tmp_path / "pairs").get(list(range(24)))
    assert noise.shape == target.shape == (24, 2) and len(caps) == 24
    from addbench.gmm.metrics import nearest_mode
    from addbench.gmm.captions import parse_captions

    owner = base.mixture.mode_class()[nearest_mode(target, base.mixture).numpy()]
    assert (owner == parse_captions(caps)).mean() > 0.9
