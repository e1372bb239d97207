"""DMDX stage 2, ADM: adversarial distribution matching (Sec. 4.1, Eq. 7-8, Algorithm 1)."""
from __future__ import annotations

import torch

from addbench import rng
from addbench.errors import AddbenchError
from addbench.losses import adm_pairs, base_x0_fn, fake_score_loss, hinge_d, hinge_g
from addbench.schedules import sampler_timesteps
from addbench.train.init_from import init_network
from addbench.train.plugin import Turn, per_sample_randn

from .common import DMDXStage, train_shape
from .config import ADMConfig
from .presets import ADM_PRESETS


class ADM(DMDXStage):
    name = "dmdx.adm"
    presets = ADM_PRESETS
    config_class = ADMConfig
    # Algorithm 1 order: fake score (line 11), generator (22), discriminator (26); TTUR = 1
    turns = [Turn("fake", ("fake",)), Turn("g", ("g",)), Turn("d", ("d",))]
    data_needs = frozenset({"prompts"})

    def setup(self, base, cfg):
        c = self.conf
        self.base, self.schedule = base, base.schedule
        self.teacher = base.network.requires_grad_(False).eval()  # real score F_φ and D_τ's frozen backbone
        g, meta = init_network(base, c.init)
        self.set_readout(c.readout)
        if meta:
            from addbench.readout import Readout

            trained = Readout.from_checkpoint(meta)
            if trained != self.readout:
                raise AddbenchError(f"init={c.init} was trained with readout={trained.spec}; set the same here")
        n = c.gen_steps
        self.gen_ts = sampler_timesteps(self.student_schedule, n)  # t_N .. t_1 (1 step: [T])
        self.shape = train_shape(base, c)
        self._pairs = {}  # (step, micro-batch index) -> the generator turn's pairs, for the d turn of that step
        return {"g": g, "fake": base.copy_network().requires_grad_(True).train(),
                "d": self.build_latent_disc(base, cfg).to(base.device)}

    # ---- generator (Algorithm 1 lines 9 and 15-17) ---------------------------------------------------------
    def generate(self, z, cond, grad: bool, generator=None, full: bool = False, guidance: float = 1.0) -> torch.Tensor:
        """``full``: the whole N-step student PF-ODE without grad (line 9). Else pick n ~ U{1..N}, solve
        t_N -> t_n without grad, then x̂0 = G(x_{t_n}, t_n) with grad (lines 15-17). ``guidance``: the
        student's own CFG scale (1 = none)."""
        ts, x = self.gen_ts, z
        k = len(ts) - 1 if full else rng.shared_randint(len(ts), generator, z.device)
        with torch.no_grad():
            for i in range(k):
                x0 = self.student_x0(x, ts[i], cond, guidance=guidance)
                x = self.student_schedule.pf_ode_step(x, x0, ts[i], ts[i + 1])
        with torch.set_grad_enabled(grad and not full):
            return self.student_x0(x, ts[k], cond, guidance=guidance)

    def real_guidance(self, generator, device) -> float:
        """The real score's CFG scale, drawn uniformly from ``real_guidance`` (appendix B) at every turn."""
        lo, hi = self.conf.real_guidance
        return lo + (hi - lo) * rng.shared_rand(generator, device)

    def student_guidance(self, real: float) -> float:
        """Sec. 5.2 "ADM w/ CFG" (video): the student runs CFG at the real model's scale minus an offset (2.0);
        1.0 (no CFG) unless ``student_cfg``."""
        return real - self.conf.student_cfg_offset if self.conf.student_cfg else 1.0

    def inference_guidance(self) -> float:
        """The exported sampler's CFG: ours, the mid-range real scale minus the offset (CogVideoX: 6 - 2 = 4)."""
        lo, hi = self.conf.real_guidance
        return self.student_guidance((lo + hi) / 2)

    def loss(self, turn, batch, step):
        gen = batch["random"]
        cond = self.base.encode_prompts(batch["prompts"])
        z = per_sample_randn(batch["sample_seeds"], self.shape, device=self.base.device)
        w = self.real_guidance(gen, self.base.device)
        w_g = self.student_guidance(w)
        if turn == "fake":  # line 11: the base's pretraining loss on detached generator samples, no CFG
            x0 = self.generate(z, cond, grad=False, generator=gen, full=True, guidance=w_g)
            l_fake = fake_score_loss(lambda x_t, t: self.base.predict(x_t, t.float(), cond, network=self.nets["fake"]),
                                     x0, self.schedule, generator=gen)
            return l_fake.mean(), {"fake/denoise": l_fake.detach().mean()}
        d = self.nets["d"]
        key = (step, batch.get("micro", (0, 1))[0])
        if turn == "d":  # line 26: the pairs of this step's generator turn (Algorithm 1), else fresh ones
            if key not in self._pairs:
                with torch.no_grad():
                    x0 = self.generate(z, cond, grad=False, generator=gen, guidance=w_g)
                    self._pairs[key] = (*self.pairs(x0, cond, gen, w), cond)
            x_real, x_fake, t_next, c = self._pairs.pop(key)
            self._pairs = {k: v for k, v in self._pairs.items() if k[0] >= step}  # never keep an old step's
            loss = hinge_d(self.latent_logits(d, x_real, t_next, c), self.latent_logits(d, x_fake.detach(), t_next, c))
            return loss.mean(), {"d/hinge": loss.detach().mean()}
        x0 = self.generate(z, cond, grad=True, generator=gen, guidance=w_g)  # lines 15-21
        x_real, x_fake, t_next = self.pairs(x0, cond, gen, w)
        loss = hinge_g(self.latent_logits(d, x_fake, t_next, cond))  # Eq. 7
        self._pairs[key] = (x_real.detach(), x_fake.detach(), t_next, cond)
        return loss.mean(), {"g/hinge": loss.detach().mean(), "g/image_std": x0.detach().std(),
                             "g/real_cfg": w}

    def pairs(self, x0, cond, gen, w: float):
        """(x^real_{t-Δt}, x^fake_{t-Δt}, t-Δt): one PF-ODE step Δt = T/64 from x_t ~ q(x_t | x̂0), t ~ U(Δt, T];
        the real score with CFG ``w``, the fake score without."""
        real = base_x0_fn(self.base, cond, self.teacher, w)
        fake = base_x0_fn(self.base, cond, self.nets["fake"])
        noise = rng.randn(x0.shape, gen, x0.device)
        return adm_pairs(x0, real, fake, self.schedule, noise=noise, dt=self.conf.dt_fraction * self.schedule.T,
                         grad_through_fake=self.conf.grad_through_fake, generator=gen)

    # ---- export --------------------------------------------------------------------------------------------
    def student(self, network):
        from addbench.bases.interface import Sampler

        s = self.base.default_sampler
        solver = self.readout.solver
        return network, Sampler(steps=len(self.gen_ts), timesteps=tuple(self.gen_ts), guidance=self.inference_guidance(),
                                solver=solver, height=s.height, width=s.width, frames=s.frames)

    def preview(self, prompts, seed):
        from addbench.bases.sampling import initial_noise

        z = initial_noise([seed + i for i in range(len(prompts))], self.shape).to(self.base.device)
        with torch.no_grad():
            x0 = self.generate(z, self.base.encode_prompts(prompts), grad=False, full=True,
                               guidance=self.inference_guidance())
            return self.base.decode(x0).clamp(-1, 1)
