"""DMD (v1) wiring: one-step generator, frozen real score (teacher + CFG), online fake score; turns g, fake.
Recipe: ``distillers/dmd/__init__.py``."""
from __future__ import annotations

import torch

from addbench.errors import AddbenchError
from addbench.losses import base_x0_fn, dmd_loss, fake_score_loss, lpips_distance, ode_regression_loss
from addbench.readout import Readout, student_x0
from addbench.train.plugin import Distiller, Turn, per_sample_randn

from .config import DMDConfig
from .presets import PRESETS


def mse_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error: the regression distance when LPIPS weights are unavailable (toy)."""
    return (a.float() - b.float()).pow(2).reshape(a.shape[0], -1).mean(1)


class DMD(Distiller):
    name = "dmd"
    presets = PRESETS
    config_class = DMDConfig
    student_network = "g"

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        # TTUR: ``fake_per_g`` fake-score updates per generator update (DMD v1: 1)
        k = self.conf.fake_per_g
        self.turns = [Turn("g", ("g",), every=1), Turn("fake", ("fake",), repeats=k)]
        # λ_reg = 0 (DM loss alone) needs no ODE pairs
        self.data_needs = frozenset({"prompts", "ode_pairs"} if self.conf.lambda_reg else {"prompts"})

    def setup(self, base, cfg):
        c = self.conf
        self.base, self.schedule = base, base.schedule
        self.teacher = base.network.requires_grad_(False).eval()  # real score μ_real
        if c.init != "teacher":
            raise AddbenchError(f"init={c.init!r}; DMD initialises the generator from the teacher (init=teacher)")
        res = int(cfg["resolution"])
        self.shape = tuple(base.latent_shape(res, res))
        # the generator's output is read on its own schedule at gen_t (addbench/readout.py)
        self.readout = Readout.parse(c.readout)
        self.student_schedule = self.readout.schedule_for(self.schedule)
        self.gen_t = c.gen_t
        self.distance = None
        if c.lambda_reg:
            net = c.lpips_net
            self.distance = mse_distance if net == "mse" else lpips_distance(net, device=base.device)
        return {"g": base.copy_network().requires_grad_(True).train(),
                "fake": base.copy_network().requires_grad_(True).train()}

    def generate(self, noise: torch.Tensor, cond, grad: bool) -> torch.Tensor:
        """One step: x̂ = G(z), the generator told ``gen_t`` on pure noise z, read out as x0 (``readout``)."""
        with torch.set_grad_enabled(grad):
            return student_x0(self.base, self.student_schedule, self.nets["g"], noise, self.gen_t, cond)

    def loss(self, turn, batch, step):
        c = self.conf
        cond = self.base.encode_prompts(batch["prompts"])
        z = per_sample_randn(batch["sample_seeds"], self.shape, device=self.base.device)
        gen = batch["random"]
        if turn == "fake":  # DMD Eq. 6: denoising loss of the fake score on detached generator samples
            x = self.generate(z, cond, grad=False)
            loss = fake_score_loss(lambda x_t, t: self.base.predict(x_t, t.float(), cond, network=self.nets["fake"]),
                                   x, self.schedule, generator=gen).mean()
            return loss, {"fake/denoise": loss.detach()}
        x = self.generate(z, cond, grad=True)
        g_real = c.real_guidance
        real = base_x0_fn(self.base, cond, self.teacher, g_real)
        fake = base_x0_fn(self.base, cond, self.nets["fake"])
        lo, hi = c.dm_t
        l_dm = dmd_loss(x, real, fake, self.schedule, t_range=(lo, hi), generator=gen)
        loss = c.lambda_dm * l_dm.mean()
        logs = {"g/dm": l_dm.detach().mean(), "g/image_std": x.detach().std()}
        if self.distance is not None:  # DMD Eq. 9: regression on teacher ODE pairs (z_ref, y_ref)
            x_ref = self.generate(batch["ode_noise"].float(), self.base.encode_prompts(batch["ode_prompts"]), grad=True)
            l_reg = ode_regression_loss(x_ref, batch["ode_target"].float(), self.distance, decode=self.base.decode)
            loss = loss + c.lambda_reg * l_reg.mean()
            logs["g/reg"] = l_reg.detach().mean()
        return loss, logs

    def student(self, network):
        from addbench.bases.interface import Sampler

        s = self.base.default_sampler
        # exactly the trained generator: pure noise at gen_t, read with the readout the checkpoint records
        return network, Sampler(steps=1, timesteps=(self.gen_t,), guidance=1.0, solver=self.readout.solver,
                                height=s.height, width=s.width)

    def preview(self, prompts, seed):
        from addbench.bases.sampling import initial_noise

        z = initial_noise([seed + i for i in range(len(prompts))], self.shape).to(self.base.device)
        with torch.no_grad():
            return self.base.decode(self.generate(z, self.base.encode_prompts(prompts), grad=False)).clamp(-1, 1)
