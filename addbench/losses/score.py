"""Score-based losses: ADD score distillation (Eq. 4), the DMD distribution-matching loss, and the
fake-score denoising loss. Noise math comes from ``addbench.schedules``; the networks come in as
callables ``(x_t, t) -> tensor`` that the distiller builds from its base adapter (CFG, conditioning
and parameterisation live there), so nothing here knows a model family.

All losses return a per-sample tensor (N,); the caller takes the mean (edm2 style).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from addbench import rng
from addbench.schedules import NoiseSchedule

X0Fn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t) -> x0 prediction
EpsPartsFn = Callable[[torch.Tensor, torch.Tensor], tuple]  # (x_t, t) -> (eps_cond, eps_uncond, eps_neg | None)

WEIGHTINGS = ("exponential", "sds", "nfsd")


def _mean_per_sample(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).mean(1)


def _sum_per_sample(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).sum(1)


def t_vector(t, x: torch.Tensor) -> torch.Tensor:
    """A float or (N,) timestep as an (N,) tensor on x's device (kept in its dtype; floats -> float64)."""
    t = torch.as_tensor(t, device=x.device)
    if not t.is_floating_point():
        t = t.double()
    return t.expand(x.shape[0]) if t.ndim == 0 else t


def _alpha_sigma(schedule: NoiseSchedule, t, like: torch.Tensor):
    a, s = schedule._as(t, like)  # broadcast (N, 1, ...) in like.dtype
    return a, s


def sample_timesteps(schedule: NoiseSchedule, n: int, low: float = 0.0, high: float = 1.0, *,
                     discrete: bool = False, generator=None, device=None) -> torch.Tensor:
    """t ~ U[low·T, high·T] in model units (DMD: low=0.02, high=0.98). ``discrete`` rounds to integers
    (DMD2 draws integer timesteps; DMDX's t ~ U(0, T) is continuous)."""
    t = schedule.sample_timesteps(n, low * schedule.T, high * schedule.T, generator=generator, device=device)
    return t.round() if discrete else t


# ---- ADD score distillation (Sauer et al. 2023, Eq. 4 and appendix A) ------------------------------

def sds_w_default(alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """DreamFusion's SDS weight w(t) = σ_t² (= 1 - ᾱ_t on VP schedules)."""
    return sigma ** 2


def add_weighting(kind: str, schedule: NoiseSchedule, t, like: torch.Tensor, sds_w=sds_w_default) -> torch.Tensor:
    """c(t) of ADD Eq. 4, shape (N,):
    ``exponential``  c(t) = α_t  (ADD ablation default);
    ``sds`` / ``nfsd``  c(t) = α_t / (2σ_t) · w(t)  (appendix A: with d = ||·||² the distillation
    gradient then equals the SDS gradient w(t)(ε̂ - ε) ∂x̂/∂θ; NFSD uses the same weighting with the
    noise-free target of ``nfsd_target``)."""
    if kind not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {kind!r}; choose one of {WEIGHTINGS}")
    a, s = _alpha_sigma(schedule, t, like)
    a, s = a.reshape(-1), s.reshape(-1)
    if kind == "exponential":
        return a
    return a / (2 * s.clamp_min(1e-8)) * sds_w(a, s)


@torch.no_grad()
def distill_target(teacher_x0: X0Fn, x0: torch.Tensor, t, schedule: NoiseSchedule,
                   noise: torch.Tensor | None = None) -> torch.Tensor:
    """Teacher target x̂_ψ(sg(x̂_θ,t); t) of ADD Eq. 4: diffuse the (detached) student output with fresh
    noise ε' to x̂_θ,t = α_t x̂_θ + σ_t ε' and ask the teacher for its x0 prediction (one teacher step)."""
    noise = torch.randn_like(x0) if noise is None else noise
    x_t = schedule.add_noise(x0.detach(), noise, t)
    return teacher_x0(x_t, t_vector(t, x0)).detach()


@torch.no_grad()
def nfsd_target(teacher_eps_parts: EpsPartsFn, x0: torch.Tensor, t, schedule: NoiseSchedule,
                noise: torch.Tensor | None = None, guidance: float = 7.5, t_switch: float | None = None) -> torch.Tensor:
    """Noise-Free Score Distillation target (Katzir et al. 2023, ADD's final-model weighting).

    NFSD replaces SDS's ε̂_cfg - ε by  δ_D + s·δ_C  with δ_C = ε(x_t; y) - ε(x_t; ∅) and
    δ_D = ε(x_t; ∅) - ε(x_t; y_neg) for t > t_switch (default 0.2·T, NFSD's 200/1000), else ε(x_t; ∅).
    Our reading of how ADD plugs it into Eq. 4: use the target x0 whose SDS residual is that direction,
        x̂_target = (x_t - σ_t (ε' + δ_D + s·δ_C)) / α_t = x̂_θ - (σ_t/α_t)(δ_D + s·δ_C),
    together with the SDS weighting c(t) = α_t/(2σ_t) w(t); the gradient is then w(t)(δ_D + s·δ_C) ∂x̂/∂θ.
    ``teacher_eps_parts(x_t, t)`` returns (eps_cond, eps_uncond, eps_neg); eps_neg may be None (empty
    negative prompt = unconditional, so δ_D = ε(∅) - ε(∅) = 0 at high t).
    """
    noise = torch.randn_like(x0) if noise is None else noise
    x0 = x0.detach()
    x_t = schedule.add_noise(x0, noise, t)
    tt = t_vector(t, x0)
    eps_c, eps_u, eps_n = teacher_eps_parts(x_t, tt)
    eps_n = eps_u if eps_n is None else eps_n
    t_switch = 0.2 * schedule.T if t_switch is None else t_switch
    high = (tt > t_switch).reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    delta_d = eps_u - high * eps_n
    direction = delta_d + guidance * (eps_c - eps_u)
    a, s = _alpha_sigma(schedule, tt, x0)
    return x0 - s / a.clamp_min(1e-8) * direction


def add_distillation_loss(x0: torch.Tensor, target: torch.Tensor, t, schedule: NoiseSchedule,
                          weighting: str = "exponential", decode: Callable | None = None,
                          reduction: str = "mean", sds_w=sds_w_default) -> torch.Tensor:
    """ADD Eq. 4 per sample:  c(t) · d(decode(x̂_θ), decode(sg target)),  d = squared L2 in *pixel space*.

    ``x0`` is the student output (with grad), ``target`` from ``distill_target`` / ``nfsd_target``,
    ``decode`` maps latents to pixels (``base.decode``; None = identity for pixel bases).
    ``reduction``: "sum" is ||·||²₂ exactly as written (appendix A's equivalence holds with factor 1);
    "mean" (default) averages over C,H,W, i.e. the same divided by the number of pixel values D.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError("reduction must be 'mean' or 'sum'")
    decode = decode or (lambda z: z)
    with torch.no_grad():
        y = decode(target.detach())
    diff2 = (decode(x0).float() - y.float()) ** 2
    d = _sum_per_sample(diff2) if reduction == "sum" else _mean_per_sample(diff2)
    return add_weighting(weighting, schedule, t, x0, sds_w).float() * d


# ---- DMD distribution matching (Yin et al. 2024; DMDX Eq. 5-6) --------------------------------------

@torch.no_grad()
def dmd_grad(x: torch.Tensor, real_x0: X0Fn, fake_x0: X0Fn, t, schedule: NoiseSchedule,
             noise: torch.Tensor | None = None, generator=None) -> torch.Tensor:
    """The DMD update direction on generator output ``x`` (no grad):
    x_t = α_t x + σ_t ε;  p_real = x - x0_real(x_t),  p_fake = x - x0_fake(x_t);
    grad = (p_real - p_fake) / mean_{C,H,W} |p_real|   (per sample; NaN/inf -> 0 as in DMD2).
    On Gaussians p_real - p_fake = (σ_t²/α_t)(s_fake - s_real)(x_t): the reverse-KL gradient direction."""
    noise = rng.randn(x.shape, generator, x.device, x.dtype) if noise is None else noise
    x = x.detach()
    tt = t_vector(t, x)
    x_t = schedule.add_noise(x, noise, tt)
    p_real = (x - real_x0(x_t, tt)).double()
    p_fake = (x - fake_x0(x_t, tt)).double()
    norm = p_real.abs().reshape(x.shape[0], -1).mean(1).reshape(-1, *([1] * (x.ndim - 1)))
    return torch.nan_to_num((p_real - p_fake) / norm).to(x.dtype)


def base_x0_fn(base, cond, network, guidance: float = 1.0) -> X0Fn:
    """``(x_t, t) -> x0`` in fp32 from a base adapter's ``network`` under ``cond`` (CFG when guidance != 1):
    the real score (frozen teacher + CFG) and the fake score of the DMD-style losses."""
    return lambda x_t, t: base.x0(x_t, t.float(), cond, guidance=guidance, network=network).float()


def dmd_loss(x: torch.Tensor, real_x0: X0Fn, fake_x0: X0Fn, schedule: NoiseSchedule, t=None,
             noise: torch.Tensor | None = None, t_range: tuple[float, float] = (0.02, 0.98),
             discrete: bool = True, generator=None) -> torch.Tensor:
    """DMD loss per sample  0.5 · mean_{C,H,W} (x - sg(x - grad))²  (DMDX Eq. 6, DMD2's loss_dm), so
    ∂loss/∂x = grad / D. t ~ U[0.02T, 0.98T] (integer steps as DMD2) unless given.
    ``real_x0`` is the frozen teacher with CFG, ``fake_x0`` the online fake score without CFG."""
    if t is None:
        t = sample_timesteps(schedule, x.shape[0], *t_range, discrete=discrete, generator=generator, device=x.device)
    grad = dmd_grad(x, real_x0, fake_x0, t, schedule, noise, generator)
    return 0.5 * _mean_per_sample((x.float() - (x - grad).detach().float()) ** 2)


# ---- fake score (DMD/DMD2 guidance, DMDX Algorithm 1 line 11) ---------------------------------------

def fake_score_loss(predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor,
                    schedule: NoiseSchedule, t=None, noise: torch.Tensor | None = None, generator=None) -> torch.Tensor:
    """The base's own pretraining loss (DMDX Eq. 2 / 3, w(t) = 1) on *detached* generator samples:
    mean_{C,H,W} (net(x_t, t) - target)², target = ``schedule.target`` (ε, v or flow velocity).
    ``predict(x_t, t)`` is the fake network's raw output without CFG (``base.predict(..., network=fake)``).
    t ~ U[0, T] (continuous; pass integer t for DDPM-style training)."""
    x0 = x0.detach()
    if t is None:
        t = sample_timesteps(schedule, x0.shape[0], 0.0, 1.0, generator=generator, device=x0.device)
    noise = rng.randn(x0.shape, generator, x0.device, x0.dtype) if noise is None else noise
    tt = t_vector(t, x0)
    x_t = schedule.add_noise(x0, noise, tt)
    return _mean_per_sample((predict(x_t, tt).float() - schedule.target(x0, noise, tt).float()) ** 2)
