"""DMDX stage 1, ADP: adversarial distillation pretraining on teacher ODE pairs (Sec. 4.2, Eq. 9-10)."""
from __future__ import annotations

import torch
from torch import nn

from addbench import rng
from addbench.losses import adp_velocity_loss, hinge_d, hinge_g
from addbench.schedules import cubic_timesteps
from addbench.train.init_from import init_network
from addbench.train.plugin import Turn

from .common import DMDXStage, heads_for, pixel_backbone, train_shape
from .config import ADPConfig
from .presets import ADP_PRESETS


class ADP(DMDXStage):
    name = "dmdx.adp"
    presets = ADP_PRESETS
    config_class = ADPConfig
    turns = [Turn("g", ("g",)), Turn("d", ("d",))]
    data_needs = frozenset({"ode_pairs"})  # (noise z, teacher endpoint y, prompt): y are the "real" samples

    def setup(self, base, cfg):
        c = self.conf
        self.base, self.schedule = base, base.schedule
        self.teacher = base.network.requires_grad_(False).eval()
        g, _ = init_network(base, c.init)
        if c.readout != "flow":
            from addbench.errors import AddbenchError
            raise AddbenchError("ADP trains a rectified-flow velocity student (Sec. 4.2); keep readout=flow")
        self.set_readout("flow")
        self.shape = train_shape(base, c)
        d = nn.ModuleDict({"latent": self.build_latent_disc(base, cfg)})
        if c.lambda_pixel:
            self.pixel = pixel_backbone(c.pixel_backbone, base, self.teacher).to(base.device)
            with torch.no_grad():
                probe = self.pixel(base.decode(torch.zeros((1, *self.shape), device=base.device)))
            d["pixel"] = heads_for(probe, c.head_width)
        return {"g": g, "d": d.to(base.device)}

    # ---- generator: x_t on the straight line between the pair's noise z and endpoint y -----------------
    def generate(self, batch, cond, grad: bool):
        y, z = batch["ode_target"].float(), batch["ode_noise"].float()
        t = cubic_timesteps(self.schedule.T, len(y), generator=batch["random"], device=y.device)  # (1-u³)T
        x_t = self.student_schedule.add_noise(y, z, t)  # (1 - t/T) y + (t/T) z
        with torch.set_grad_enabled(grad):
            out = self.base.predict(x_t, t.float(), cond, network=self.nets["g"]).float()  # velocity v̂
        return y, z, out, self.student_schedule.to_x0(out, x_t, t).float()

    # ---- discriminators ----------------------------------------------------------------------------------
    def disc_logits(self, x0, cond, gen):
        """(D_τ1 logits on x0 diffused at t' ~ U(0, T], D_τ2 logits on the decoded image or None)."""
        d = self.nets["d"]
        t = self.schedule.T * (1 - rng.rand(len(x0), gen, x0.device))
        x_t = self.schedule.add_noise(x0, rng.randn(x0.shape, gen, x0.device), t)
        lat = self.latent_logits(d["latent"], x_t, t, cond)
        if "pixel" not in d:
            return lat, None
        feats = self.pixel(self.base.decode(x0))
        return lat, [h(f.float()) for h, f in zip(d["pixel"], feats)]

    def loss(self, turn, batch, step):
        c, gen = self.conf, batch["random"]
        l1, l2 = c.lambda_latent, c.lambda_pixel
        cond = self.base.encode_prompts(batch["ode_prompts"])
        y, z, v, x0 = self.generate(batch, cond, grad=(turn == "g"))
        if turn == "d":  # Eq. 10
            real_lat, real_pix = self.disc_logits(y, cond, gen)
            fake_lat, fake_pix = self.disc_logits(x0.detach(), cond, gen)
            loss_lat = hinge_d(real_lat, fake_lat)
            loss = l1 * loss_lat
            logs = {"d/latent": loss_lat.detach().mean()}
            if real_pix is not None:
                loss_pix = hinge_d(real_pix, fake_pix)
                loss = loss + l2 * loss_pix
                logs["d/pixel"] = loss_pix.detach().mean()
            return loss.mean(), logs
        lat, pix = self.disc_logits(x0, cond, gen)  # Eq. 9
        g_lat = hinge_g(lat)
        loss = l1 * g_lat
        logs = {"g/latent": g_lat.detach().mean(), "g/image_std": x0.detach().std()}
        if pix is not None:
            g_pix = hinge_g(pix)
            loss = loss + l2 * g_pix
            logs["g/pixel"] = g_pix.detach().mean()
        lam_v = c.lambda_velocity
        if lam_v:  # optional Rectified-Flow MSE on the pair's velocity (Table 4 A1 alone; not in DMDX)
            l_v = adp_velocity_loss(v, y, z)
            loss = loss + lam_v * l_v
            logs["g/velocity"] = l_v.detach().mean()
        return loss.mean(), logs

    # ---- export --------------------------------------------------------------------------------------------
    def student(self, network):
        from addbench.bases.interface import Sampler

        s = self.base.default_sampler
        steps = self.conf.sampler_steps
        from addbench.schedules import sampler_timesteps

        ts = tuple(sampler_timesteps(self.student_schedule, steps))
        # Euler on the straight path; the checkpoint's config says readout=flow, which the loader honours
        return network, Sampler(steps=steps, timesteps=ts, guidance=1.0, solver="euler", height=s.height,
                                width=s.width, frames=s.frames)

    def preview(self, prompts, seed):
        from addbench.bases.sampling import initial_noise

        z = initial_noise([seed + i for i in range(len(prompts))], self.shape).to(self.base.device)
        with torch.no_grad():
            return self.base.decode(self.student_x0(z, self.schedule.T, self.base.encode_prompts(prompts))).clamp(-1, 1)
