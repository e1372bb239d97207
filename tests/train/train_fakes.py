"""A tiny fake base and a tiny fake distiller for the engine tests (CPU, milliseconds per step)."""
from __future__ import annotations

import copy
import hashlib
import os
import signal

import torch
import torch.nn.functional as F
from torch import nn

from addbench.bases.interface import Sampler
from addbench.schedules import VPSchedule
from addbench.train.plugin import Distiller, Turn, per_sample_rand, per_sample_randn

RES = 4
DIM = 3 * RES * RES


class TinyNet(nn.Module):
    """eps-prediction MLP on flattened 3x4x4 images, conditioned on an 8-d prompt code and t."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(DIM + 9, hidden), nn.Linear(hidden, hidden)])
        self.out = nn.Linear(hidden, DIM)

    def forward(self, x, t, cond):
        h = torch.cat([x.flatten(1), cond, (t / 1000.0).reshape(-1, 1).to(x.dtype)], 1)
        for blk in self.blocks:
            h = F.silu(blk(h))
        return self.out(h).reshape(x.shape)


class FakeBase:
    name = "fake"

    def __init__(self, device="cpu", seed: int = 123):
        torch.manual_seed(seed)
        self.device = torch.device(device)
        self.network = TinyNet().to(self.device).requires_grad_(False)
        self.schedule = VPSchedule(num_train_timesteps=1000)
        self.feature_taps = ["blocks.1"]
        self.default_sampler = Sampler(steps=4)

    def encode_prompts(self, prompts):
        codes = [[b / 255.0 for b in hashlib.sha256(p.encode()).digest()[:8]] for p in prompts]
        return torch.tensor(codes, device=self.device)

    def null_cond(self, n):
        return torch.zeros(n, 8, device=self.device)

    def predict(self, x_t, t, cond, network=None):
        t = torch.as_tensor(t, dtype=torch.float32, device=x_t.device).expand(x_t.shape[0])
        return (network or self.network)(x_t, t, cond)

    def x0(self, x_t, t, cond, guidance=1.0, network=None, null=None):
        out = self.predict(x_t, t, cond, network)
        if guidance != 1.0:
            out_u = self.predict(x_t, t, self.null_cond(len(x_t)) if null is None else null, network)
            out = out_u + guidance * (out - out_u)
        return self.schedule.to_x0(out, x_t, t).to(x_t.dtype)

    def decode(self, latents):
        return latents

    def encode(self, images):
        return images

    def latent_shape(self, h, w):
        return (3, h, w)

    def copy_network(self):
        return copy.deepcopy(self.network).requires_grad_(True)


class FakeDistiller(Distiller):
    """One-step generator regressing to a teacher target, plus a tiny "disc" updated twice per step."""

    name = "fake"
    presets = {"fake": {"batch": 4, "budget_images": 48, "lr_g": 1e-2, "lr_d": 1e-2, "resolution": RES,
                        "lambda_adv": 0.1, "ckpt_every_images": 16, "progress": False, "sampler": {"steps": 1}}}
    turns = [Turn("d", ("d",), repeats=2), Turn("g", ("g",))]
    data_needs = frozenset({"prompts"})
    student_network = "g"
    calls: list

    def setup(self, base, cfg):
        self.base, self.calls = base, []
        d = nn.Sequential(nn.Linear(DIM, 16), nn.SiLU(), nn.Linear(16, 1))
        return {"g": base.copy_network(), "d": d}

    def _generate(self, batch):
        z = per_sample_randn(batch["sample_seeds"], (3, RES, RES), self.base.device)
        cond = self.base.encode_prompts(batch["prompts"])
        return self.base.x0(z, 500.0, cond, network=self.nets["g"]), z, cond

    def _target(self, z, cond, seeds):
        # "real" samples: the teacher's x0 at a random t from the noised noise (deterministic per sample)
        t = (per_sample_rand(seeds, self.base.device) * 10 + 700).float()
        return self.base.x0(z * 0.5, t, cond).detach()

    def loss(self, turn, batch, step):
        self.calls.append((step, turn, batch["call"]))
        kill = os.environ.get("FAKE_KILL_AT_STEP")
        if kill is not None and step == int(kill) and turn == "g":
            os.kill(os.getpid(), signal.SIGKILL)  # a crash mid-run, no cleanup
        x, z, cond = self._generate(batch)
        y = self._target(z, cond, batch["sample_seeds"])
        d = self.nets["d"]
        if os.environ.get("FAKE_GLOBAL_RNG"):  # exercises the saved/restored global RNG state
            y = y + 1e-2 * torch.randn_like(y)
        if turn == "d":
            x = x.detach()
            loss = F.softplus(-d(y.flatten(1))).mean() + F.softplus(d(x.flatten(1))).mean()
            return self._nan_at(step, loss), {"d/real": float(d(y.flatten(1)).mean().detach())}
        reg = F.mse_loss(x, y)
        scale = float(os.environ.get("FAKE_COLLAPSE_SCALE", "1"))
        loss = reg + self.cfg["lambda_adv"] * F.softplus(-d(x.flatten(1))).mean()
        # logs as a float and as 0-dim tensors (the loop reads both)
        return self._nan_at(step, loss), {"g/reg": reg.detach(), "g/image_std": x.detach().std() * scale}

    @staticmethod
    def _nan_at(step, loss):
        """``FAKE_NAN_AT_STEP``: a NaN that flows through the graph, as a diverged loss's does."""
        return loss * float("nan") if os.environ.get("FAKE_NAN_AT_STEP") == str(step) else loss

    def preview(self, prompts, seed):
        z = per_sample_randn([seed + i for i in range(len(prompts))], (3, RES, RES), self.base.device)
        return self.base.x0(z, 500.0, self.base.encode_prompts(prompts), network=self.nets["g"]).clamp(-1, 1)
