"""ADD wiring: student / teacher / feature-network + heads, two turns (d, g). Recipe: ``distillers/add/__init__.py``."""
from __future__ import annotations

import torch
from torch import nn

from addbench import rng
from addbench.discriminators import Dinov2Backbone, MultiHeadDiscriminator, NetworkTaps, head_for
from addbench.errors import AddbenchError
from addbench.losses import add_distillation_loss, distill_target, hinge_d, hinge_g, nfsd_target, r1_penalty
from addbench.losses.score import sample_timesteps
from addbench.readout import Readout, student_x0
from addbench.schedules import uniform_student_timesteps
from addbench.train.plugin import Distiller, Turn, per_sample_rand, per_sample_randn

from .config import ADDConfig
from .presets import PRESETS


def reinit_(net: nn.Module) -> nn.Module:
    """Table 1c ablation: throw the pretrained weights away (PyTorch default init of every layer)."""
    for m in net.modules():
        if hasattr(m, "reset_parameters") and m is not net:
            m.reset_parameters()
    return net


class ADD(Distiller):
    name = "add"
    presets = PRESETS
    config_class = ADDConfig
    turns = [Turn("d", ("d",)), Turn("g", ("g",))]
    data_needs = frozenset({"images"})  # real images x0 with captions (the prompts)
    student_network = "g"

    # ---- networks ----------------------------------------------------------------------------------
    def setup(self, base, cfg):
        c = self.conf
        self.base, self.schedule = base, base.schedule
        self.teacher = base.network.requires_grad_(False).eval()
        student = base.copy_network().requires_grad_(True).train()
        if c.init == "random":
            reinit_(student)
        elif c.init != "teacher":
            raise AddbenchError(f"init={c.init!r}; use init=teacher (ADD) or init=random (Table 1c ablation)")
        # Sec. 3.1: zero-terminal SNR at τ_n = 1000 (readout v_prediction+ztsnr); the student's inputs x_s and
        # its output live on the readout's schedule, the teacher's target on the teacher's (addbench/readout.py)
        self.readout = Readout.parse(c.readout)
        self.student_schedule = self.readout.schedule_for(self.schedule)
        self.student_ts = uniform_student_timesteps(self.schedule.T, c.student_steps)
        res = int(cfg["resolution"])
        self.shape = tuple(base.latent_shape(res, res))
        if c.feature_net == "teacher":  # the frozen teacher's taps, run at feature_t on (latent) x
            t_feat = c.feature_t
            backbone = NetworkTaps(self.teacher, base.feature_taps,
                                   lambda net, x, t, c: base.predict(x, t_feat, c, network=net))
        else:  # DINOv2 (a local save_pretrained dir) on decoded images, ADD's default (Table 1a)
            backbone = Dinov2Backbone(c.feature_net, layers=c.feature_layers)
        self.backbone = backbone.to(base.device)
        with torch.no_grad():
            null = base.encode_prompts([""])
            probe = self.features(torch.zeros((1, *self.shape), device=base.device), null)
            c_dim = self.cond_vector(null, torch.zeros((1, *self.shape), device=base.device), probe)
            c_dim = 0 if c_dim is None else c_dim.shape[1]
        w, k = c.head_width, c.head_blocks
        heads = [head_for(f, width=w, n_blocks=k, cond_dim=c_dim) for f in probe]
        self.disc = MultiHeadDiscriminator(self.backbone, heads, [c_dim] if c_dim else None)
        # only the heads are trained and checkpointed; the frozen backbone stays on the plug-in
        return {"g": student, "d": self.disc.heads.to(base.device)}

    def _conditioned(self) -> bool:
        return self.conf.cond_text or self.conf.cond_img

    def _pixels(self, x: torch.Tensor) -> torch.Tensor:
        return x if isinstance(self.backbone, NetworkTaps) else self.base.decode(x)

    def features(self, x: torch.Tensor, cond) -> list[torch.Tensor]:
        """F_k(x) (grad flows to x, never into the frozen backbone)."""
        return [f.float() for f in self.backbone(self._pixels(x), None, cond)]

    def cond_vector(self, cond, x0: torch.Tensor, real_feats: list[torch.Tensor]) -> torch.Tensor | None:
        """[c_text, c_img] for projection conditioning of the heads (Sec. 3.2, Table 1b)."""
        parts = []
        if self.conf.cond_text:
            parts.append((cond.pooled if cond.pooled is not None else cond.hidden.mean(1)).float())
        if self.conf.cond_img:  # image embedding of the real x0 the student input was made from
            if isinstance(self.backbone, Dinov2Backbone):
                parts.append(self.backbone.cls_embedding(self._pixels(x0)).float())
            else:  # teacher taps: the pooled deepest tap
                f = real_feats[-1].detach().float()
                parts.append(f.flatten(2).mean(-1) if f.ndim > 2 else f)  # (N, C) features are the vector
        return torch.cat(parts, 1).detach() if parts else None

    # ---- student -----------------------------------------------------------------------------------
    def student_x0(self, batch, cond, grad: bool):
        """x̂_θ(x_s, s): x_s from real x0 at a student timestep s ~ U{τ1..τN}; pure noise at τ = T."""
        x0 = self.base.encode(batch["images"]).float()
        seeds = batch["sample_seeds"]
        n = len(self.student_ts)
        idx = (per_sample_rand(seeds, salt=11) * n).long().clamp(max=n - 1)
        s = torch.tensor([self.student_ts[i] for i in idx.tolist()], device=x0.device, dtype=torch.float64)
        eps = per_sample_randn(seeds, tuple(x0.shape[1:]), device=x0.device)
        x_s = self.student_schedule.add_noise(x0, eps, s)
        # at τ_n = T the input is pure noise, as at inference (automatic at zero terminal SNR, where α_T = 0;
        # on a schedule with α_T > 0 the few x0 values it would leak are replaced by the noise itself)
        top = (s >= self.schedule.T).reshape(-1, *([1] * (x0.ndim - 1)))
        x_s = torch.where(top, eps, x_s)
        with torch.set_grad_enabled(grad):
            x_hat = student_x0(self.base, self.student_schedule, self.nets["g"], x_s, s.float(), cond)
        return x0, x_hat

    def _teacher_target(self, x_hat, cond, t, noise):
        if self.conf.weighting == "nfsd":
            null = self.base.null_cond(len(cond))

            def eps_parts(x_t, tt):
                out = self.base.predict(torch.cat([x_t, x_t]), torch.cat([tt, tt]).float(),
                                        type(cond).cat([cond, null]), network=self.teacher)
                eps_c, eps_u = (self.schedule.to_x0_eps(o, x_t, tt)[1] for o in out.chunk(2))
                return eps_c, eps_u, None

            return nfsd_target(eps_parts, x_hat, t, self.schedule, noise, guidance=self.conf.teacher_guidance)
        g = self.conf.teacher_guidance
        return distill_target(lambda x_t, tt: self.base.x0(x_t, tt.float(), cond, guidance=g, network=self.teacher).float(),
                              x_hat, t, self.schedule, noise)

    # ---- losses ------------------------------------------------------------------------------------
    def loss(self, turn, batch, step):
        conf = self.conf
        self.disc.heads = self.nets["d"]  # the engine's (possibly wrapped) heads
        cond = self.base.encode_prompts(batch["prompts"])
        x0, x_hat = self.student_x0(batch, cond, grad=(turn == "g"))
        with torch.no_grad():
            real_feats = self.features(x0, cond) if conf.cond_img else None
            c = self.cond_vector(cond, x0, real_feats)
        disc = lambda x, **kw: self.disc(self._pixels(x), cond=c, net_cond=cond, **kw)  # noqa: E731
        if turn == "d":  # Eq. 3 + γ R1 on the head inputs
            real_logits, real_in = disc(x0, detach_features=True)
            fake_logits, _ = disc(x_hat.detach(), detach_features=True)
            loss_d = hinge_d(real_logits, fake_logits)
            r1 = r1_penalty(real_logits, real_in)
            loss = (loss_d + conf.r1_gamma * r1).mean()
            return loss, {"d/hinge": loss_d.detach().mean(), "d/r1": r1.detach().mean(),
                          "d/real_logit": sum(l.mean() for l in real_logits).detach()}
        # turn g: Eq. 1 = λ_adv · Eq. 2 + λ · Eq. 4
        lam_adv, lam = conf.lambda_adv, conf.lambda_distill
        loss_adv = hinge_g(disc(x_hat)[0]) if lam_adv else torch.zeros(len(x0), device=x0.device)
        lo, hi = conf.distill_t
        t = sample_timesteps(self.schedule, len(x0), lo, hi, generator=batch["random"],
                             device=x0.device)
        noise = rng.randn(x_hat.shape, batch["random"], x0.device)
        target = self._teacher_target(x_hat.detach(), cond, t, noise)
        # Sec. 3.1: d in pixel space (base.decode is the VAE on latent bases, the identity on pixel bases)
        loss_dist = add_distillation_loss(x_hat, target, t, self.schedule, conf.weighting, decode=self.base.decode,
                                          reduction=conf.distill_reduction)
        loss = (lam_adv * loss_adv + lam * loss_dist).mean()
        return loss, {"g/adv": loss_adv.detach().mean(), "g/distill": loss_dist.detach().mean(),
                      "g/image_std": x_hat.detach().std()}

    # ---- export ------------------------------------------------------------------------------------
    def student(self, network):
        from addbench.bases.interface import Sampler

        s = self.base.default_sampler
        # 1 step from pure noise at τ_n = T, no CFG (Sec. 1); --set +sampler.steps=4 for the 4-step sampler
        steps = int((self.cfg.get("sampler") or {}).get("steps", 1))
        ts = tuple(uniform_student_timesteps(self.schedule.T, steps))
        return network, Sampler(steps=steps, timesteps=ts, guidance=1.0, solver=self.readout.solver, height=s.height,
                                width=s.width)

    def preview(self, prompts, seed):
        from addbench.bases.sampling import initial_noise

        z = initial_noise([seed + i for i in range(len(prompts))], self.shape).to(self.base.device)
        with torch.no_grad():
            x = student_x0(self.base, self.student_schedule, self.nets["g"], z, self.schedule.T,
                           self.base.encode_prompts(prompts))
            return self.base.decode(x).clamp(-1, 1)
