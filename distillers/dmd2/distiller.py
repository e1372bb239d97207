"""DMD2 wiring: generator, frozen real score (teacher + CFG), online fake score whose bottleneck feeds a
GAN classifier head; turns g (1x) and fake (+ head, ``fake_per_g`` x). Recipe: ``distillers/dmd2/__init__.py``."""
from __future__ import annotations

import torch

from addbench import rng
from addbench.discriminators import NetworkTaps, head_for
from addbench.losses import base_x0_fn, dmd_loss, fake_score_loss, softplus_d, softplus_g
from addbench.losses.score import sample_timesteps
from addbench.readout import Readout, student_x0
from addbench.schedules import uniform_student_timesteps
from addbench.train.init_from import init_network
from addbench.train.plugin import Distiller, Turn, per_sample_randn

from .config import DMD2Config
from .presets import PRESETS


class DMD2(Distiller):
    name = "dmd2"
    presets = PRESETS
    config_class = DMD2Config
    data_needs = frozenset({"prompts", "images"})  # generator prompts + captioned real images for the GAN
    student_network = "g"

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        # TTUR: one generator update, then ``fake_per_g`` updates of (fake score + classifier head) per step,
        # so one step = one generator update = ``batch`` images seen (distillers/BUDGET.md).
        self.turns = [Turn("g", ("g",)), Turn("fake", ("fake", "disc"), repeats=self.conf.fake_per_g)]

    # ---- networks ----------------------------------------------------------------------------------
    def setup(self, base, cfg):
        c = self.conf
        self.base, self.schedule = base, base.schedule
        self.teacher = base.network.requires_grad_(False).eval()  # real score
        g, _ = init_network(base, c.init)
        fake = base.copy_network().requires_grad_(True).train()
        self.readout = Readout.parse(c.readout)
        self.student_schedule = self.readout.schedule_for(self.schedule)  # addbench/readout.py
        n = c.gen_steps
        self.gen_ts = [c.gen_t] if n == 1 else uniform_student_timesteps(self.schedule.T, n)
        res = int(cfg["resolution"])
        self.shape = tuple(base.latent_shape(res, res))
        # classifier on the fake network's bottleneck = the deepest feature tap of the base (mid block)
        self.taps = NetworkTaps(fake, [base.feature_taps[-1]],
                                forward_fn=lambda net, x, t, c: self.base.predict(x, t, c, network=net))
        with torch.no_grad():
            probe = self.taps(torch.zeros((1, *self.shape), device=base.device), 0.0, base.encode_prompts([""]))[0]
        # head_width 0 = the bottleneck's own width (DMD2: 1280). Keep it > 32: the head's last GroupNorm(32)
        # sees a 1x1 map, so with <= 32 channels every group holds one value and normalises it to 0.
        width = c.head_width or probe.shape[1]
        head = head_for(probe, width=width, kind="dmd2").to(base.device)
        return {"g": g, "fake": fake, "disc": head}

    # ---- generator ---------------------------------------------------------------------------------
    def g_x0(self, x_t, t, cond):
        return student_x0(self.base, self.student_schedule, self.nets["g"], x_t, float(t), cond)

    def generate(self, z: torch.Tensor, cond, grad: bool, generator=None) -> torch.Tensor:
        """x̂ = G(z): one step at ``gen_t``; N steps with backward simulation: pick n ~ U{0..N-1} (one per
        batch, as DMD2), run the student without grad n steps (x0 prediction, then re-noise with fresh noise to
        the next timestep, DMD2's multi-step sampler), then one step with grad at t_n."""
        x, ts = z, self.gen_ts
        n = 0
        if len(ts) > 1 and self.conf.backward_simulation:
            n = rng.shared_randint(len(ts), generator, z.device)  # one step for the whole batch
        with torch.no_grad():
            for i in range(n):
                x0 = self.g_x0(x, ts[i], cond)
                noise = rng.randn(x0.shape, generator, x0.device)
                x = self.student_schedule.add_noise(x0, noise, ts[i + 1])
        with torch.set_grad_enabled(grad):
            return self.g_x0(x, ts[n], cond)

    # ---- GAN classifier ----------------------------------------------------------------------------
    def logits(self, x: torch.Tensor, cond, generator=None) -> list[torch.Tensor]:
        """Head logits on the fake network's bottleneck of x diffused at integer t ~ U{0..gan_t_max(T+1)-1}."""
        hi = int(self.conf.gan_t_max * (self.schedule.T + 1))
        t = rng.randint(hi, x.shape[0], generator, x.device).float()
        noise = rng.randn(x.shape, generator, x.device)
        x_t = self.schedule.add_noise(x, noise, t)
        return [self.nets["disc"](self.taps(x_t, t, cond)[0].float())]

    # ---- losses ------------------------------------------------------------------------------------
    def loss(self, turn, batch, step):
        c, gen = self.conf, batch["random"]
        cond = self.base.encode_prompts(batch["prompts"])
        z = per_sample_randn(batch["sample_seeds"], self.shape, device=self.base.device)
        if turn == "fake":
            x = self.generate(z, cond, grad=False, generator=gen)
            t = sample_timesteps(self.schedule, len(x), 0.0, 1.0, discrete=True, generator=gen, device=x.device)
            l_fake = fake_score_loss(lambda x_t, tt: self.base.predict(x_t, tt.float(), cond, network=self.nets["fake"]),
                                     x, self.schedule, t=t, generator=gen)
            real = self.base.encode(batch["images"]).float()
            real_logits = self.logits(real, self.base.encode_prompts(batch["captions"]), gen)
            fake_logits = self.logits(x, cond, gen)
            l_cls = softplus_d(real_logits, fake_logits)
            loss = l_fake.mean() + c.lambda_gan_d * l_cls.mean()
            return loss, {"fake/denoise": l_fake.detach().mean(), "disc/cls": l_cls.detach().mean(),
                          "disc/p_real": torch.sigmoid(real_logits[0].detach()).mean(),
                          "disc/p_fake": torch.sigmoid(fake_logits[0].detach()).mean()}
        x = self.generate(z, cond, grad=True, generator=gen)
        g_real = c.real_guidance
        real = base_x0_fn(self.base, cond, self.teacher, g_real)
        fake = base_x0_fn(self.base, cond, self.nets["fake"])
        lo, hi = c.dm_t
        l_dm = dmd_loss(x, real, fake, self.schedule, t_range=(lo, hi), generator=gen)
        loss = c.lambda_dm * l_dm.mean()
        logs = {"g/dm": l_dm.detach().mean(), "g/image_std": x.detach().std()}
        lam = c.lambda_gan_g
        if lam:
            l_gan = softplus_g(self.logits(x, cond, gen))
            loss = loss + lam * l_gan.mean()
            logs["g/gan"] = l_gan.detach().mean()
        return loss, logs

    # ---- export ------------------------------------------------------------------------------------
    def student(self, network):
        from addbench.bases.interface import Sampler

        s = self.base.default_sampler
        # The harness samples deterministically (DDIM between the timesteps); DMD2's own multi-step sampler
        # re-noises with fresh noise instead: identical for 1 step, different for gen_steps > 1.
        return network, Sampler(steps=len(self.gen_ts), timesteps=tuple(self.gen_ts), guidance=1.0,
                                solver=self.readout.solver, height=s.height, width=s.width)

    def preview(self, prompts, seed):
        from addbench.bases.sampling import initial_noise

        z = initial_noise([seed + i for i in range(len(prompts))], self.shape).to(self.base.device)
        with torch.no_grad():
            return self.base.decode(self.g_x0(z, self.gen_ts[0], self.base.encode_prompts(prompts))).clamp(-1, 1)
