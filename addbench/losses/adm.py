"""DMDX adversarial distribution matching (ADM, Sec. 4.1 and Algorithm 1 lines 18-21).

The generator output x̂0 is diffused to x_t (t ~ U(0, T)), then *one* small PF-ODE step of size
Δt = T/64 is solved with the real score (frozen teacher, with CFG) and with the fake score (online
fake network, no CFG), giving x^real_{t-Δt} and x^fake_{t-Δt}; both go to the latent discriminator at
timestep t - Δt, and the hinge losses (``gan.hinge_g`` for Eq. 7, ``gan.hinge_d`` for Eq. 8) follow.

Gradient path (our reading; the paper gives no code): the real branch is a detached target. The
generator's gradient reaches x̂0 through x^fake_{t-Δt} = α' x0_fake(x_t) + σ' ε_fake(x_t), which
depends on x̂0 via x_t; with ``grad_through_fake=True`` (default) autograd goes through the fake
network w.r.t. its *input* (freeze the fake network's parameters around the generator step, e.g.
``fake.requires_grad_(False)``, so its own .grad stays clean); with False the fake prediction is taken
without grad and only the explicit x_t term of the DDIM/Euler step, (σ'/σ) x_t, carries the gradient.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from addbench import rng
from addbench.schedules import NoiseSchedule

X0Fn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def adm_dt(schedule: NoiseSchedule, fraction: float = 1 / 64) -> float:
    """Δt = T/64 in model units (DMDX default)."""
    return fraction * schedule.T


def adm_pairs(x0: torch.Tensor, real_x0: X0Fn, fake_x0: X0Fn, schedule: NoiseSchedule, t=None,
              noise: torch.Tensor | None = None, dt: float | None = None, grad_through_fake: bool = True,
              generator=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_real_{t-Δt}, x_fake_{t-Δt}, t-Δt) for the latent discriminator.

    ``x0``: generator output (with grad). ``real_x0(x_t, t)``: teacher x0 with CFG; ``fake_x0(x_t, t)``:
    fake-score x0 without CFG. ``t`` (N,) defaults to U(Δt, T] so that t - Δt >= 0. Uses
    ``schedule.pf_ode_step`` (DDIM for VP, Euler for flow).
    """
    n = x0.shape[0]
    dt = adm_dt(schedule) if dt is None else dt
    if t is None:
        t = schedule.sample_timesteps(n, dt, schedule.T, generator=generator, device=x0.device)
    t = torch.as_tensor(t, device=x0.device, dtype=torch.float64)
    t = t.expand(n) if t.ndim == 0 else t
    t_next = (t - dt).clamp_min(0)
    noise = rng.randn(x0.shape, generator, x0.device, x0.dtype) if noise is None else noise
    x_t = schedule.add_noise(x0, noise, t)
    with torch.no_grad():
        x_t_ng = x_t.detach()
        x_real = schedule.pf_ode_step(x_t_ng, real_x0(x_t_ng, t), t, t_next)
    if grad_through_fake:
        x_fake = schedule.pf_ode_step(x_t, fake_x0(x_t, t), t, t_next)
    else:
        with torch.no_grad():
            f0 = fake_x0(x_t.detach(), t)
        x_fake = schedule.pf_ode_step(x_t, f0, t, t_next)
    return x_real, x_fake, t_next
