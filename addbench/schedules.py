"""Noise schedules and parameterisations, written once (NOTES.md "Noise and parameterisation").

Every schedule maps a model timestep ``t`` (float tensor in the network's own units: 0..T-1 for
DDPM/VP bases, 0..1000 = 1000·σ for flow matching) to ``(alpha, sigma)`` with

    x_t = alpha_t * x0 + sigma_t * eps

and converts a network output (epsilon, v or flow velocity) to x0 / eps. The deterministic PF-ODE
step (DDIM for VP, Euler for flow matching) is the same formula in x0/eps form for both:

    x_{t'} = alpha_{t'} * x0_hat + sigma_{t'} * eps_hat

(for alpha = 1 - s, sigma = s this equals the Euler step x_t + (s' - s) * v). No model code here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from addbench import rng

PREDICTION_TYPES = ("epsilon", "v_prediction", "flow", "sample")  # sample = x0-prediction


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape + (1,) * (like.ndim - v.ndim)).to(like.dtype)


class NoiseSchedule:
    """Base class: ``alpha_sigma``, conversions, ``add_noise``, ``pf_ode_step``."""

    prediction_type: str
    T: float  # largest model timestep (inclusive upper end of the range)

    # ---- to implement -----------------------------------------------------------------------------
    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    # ---- shared ------------------------------------------------------------------------------------
    def _as(self, t, like):
        t = torch.as_tensor(t, device=like.device, dtype=torch.float64)
        if t.ndim == 0:
            t = t.expand(like.shape[0])
        a, s = self.alpha_sigma(t)
        return _bcast(a, like), _bcast(s, like)

    def add_noise(self, x0: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        a, s = self._as(t, x0)
        return a * x0 + s * eps

    def target(self, x0: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        """What the network is trained to output at ``t`` for this (x0, eps) pair."""
        a, s = self._as(t, x0)
        if self.prediction_type == "epsilon":
            return eps
        if self.prediction_type == "v_prediction":
            return a * eps - s * x0
        if self.prediction_type == "sample":
            return x0
        return eps - x0  # flow velocity

    def to_x0_eps(self, model_out: torch.Tensor, x_t: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0_hat, eps_hat) from the raw network output at ``(x_t, t)``."""
        a, s = self._as(t, x_t)
        if self.prediction_type == "epsilon":
            eps = model_out
            x0 = (x_t - s * eps) / a.clamp_min(1e-8)
        elif self.prediction_type == "v_prediction":  # a^2 + s^2 = 1
            x0 = a * x_t - s * model_out
            eps = s * x_t + a * model_out
        elif self.prediction_type == "sample":  # the output is x0 itself
            x0 = model_out
            eps = (x_t - a * x0) / s.clamp_min(1e-8)
        else:  # flow: x_t = (1-s) x0 + s eps, v = eps - x0
            x0 = x_t - s * model_out
            eps = x_t + a * model_out
        return x0, eps

    def to_x0(self, model_out, x_t, t):
        return self.to_x0_eps(model_out, x_t, t)[0]

    def eps_from_x0(self, x0: torch.Tensor, x_t: torch.Tensor, t) -> torch.Tensor:
        a, s = self._as(t, x_t)
        return (x_t - a * x0) / s.clamp_min(1e-8)

    def pf_ode_step(self, x_t: torch.Tensor, x0_hat: torch.Tensor, t, t_next) -> torch.Tensor:
        """Deterministic DDIM / Euler step from ``t`` to ``t_next`` given the x0 prediction at ``t``."""
        eps_hat = self.eps_from_x0(x0_hat, x_t, t)
        a_n, s_n = self._as(t_next, x_t)
        return a_n * x0_hat + s_n * eps_hat

    def sample_timesteps(self, n: int, low: float, high: float, generator=None, device=None) -> torch.Tensor:
        """Uniform continuous timesteps in [low, high) in model units."""
        u = rng.rand(n, generator, device)  # generator: a torch.Generator, None or a BatchRandom (addbench.rng)
        return low + (high - low) * u


@dataclass
class VPSchedule(NoiseSchedule):
    """DDPM / VP schedule on T discrete steps (SD1.5, SD2.1, SDXL, CogVideoX, the toy base).

    ``alpha_sigma`` accepts fractional timesteps by linear interpolation of ᾱ, which the ADM one-step
    solve (Δt = T/64) and continuous t ~ U(0, T) need. ``snr_shift_scale`` s (CogVideoX: 3.0 for 2B,
    1.0 for 5B) divides the SNR by s, ᾱ' = ᾱ / (s + (1 - s) ᾱ), before the zero-terminal-SNR rescale
    (the order of diffusers' ``CogVideoXDDIMScheduler``).
    """

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"  # "scaled_linear" | "linear" | "cosine"
    prediction_type: str = "epsilon"
    zero_terminal_snr: bool = False
    snr_shift_scale: float = 1.0

    def __post_init__(self):
        if self.prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"VPSchedule supports epsilon / v_prediction / sample, got {self.prediction_type!r}")
        n = self.num_train_timesteps
        if self.beta_schedule == "scaled_linear":
            betas = torch.linspace(self.beta_start ** 0.5, self.beta_end ** 0.5, n, dtype=torch.float64) ** 2
        elif self.beta_schedule == "linear":
            betas = torch.linspace(self.beta_start, self.beta_end, n, dtype=torch.float64)
        elif self.beta_schedule in ("cosine", "squaredcos_cap_v2"):
            f = lambda i: math.cos((i / n + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
            betas = torch.tensor([min(1 - f(i + 1) / f(i), 0.999) for i in range(n)], dtype=torch.float64)
        else:
            raise ValueError(f"unknown beta_schedule {self.beta_schedule!r}")
        alphas_bar = torch.cumprod(1.0 - betas, 0)
        if self.snr_shift_scale != 1.0:  # SNR / s
            alphas_bar = alphas_bar / (self.snr_shift_scale + (1 - self.snr_shift_scale) * alphas_bar)
        if self.zero_terminal_snr:
            alphas_bar = rescale_zero_terminal_snr(alphas_bar)
        self.alphas_cumprod = alphas_bar
        self.T = float(n - 1)

    def alpha_sigma(self, t):
        t = torch.as_tensor(t, dtype=torch.float64).clamp(0, self.T)
        table = self.alphas_cumprod.to(t.device)
        lo = t.floor().long()
        hi = (lo + 1).clamp(max=len(table) - 1)
        w = t - lo.to(t.dtype)
        ab = table[lo] * (1 - w) + table[hi] * w
        return ab.sqrt(), (1 - ab).clamp_min(0).sqrt()

    @classmethod
    def from_diffusers_config(cls, cfg: dict) -> "VPSchedule":
        return cls(
            num_train_timesteps=int(cfg.get("num_train_timesteps", 1000)),
            beta_start=float(cfg.get("beta_start", 0.00085)),
            beta_end=float(cfg.get("beta_end", 0.012)),
            beta_schedule=str(cfg.get("beta_schedule", "scaled_linear")),
            prediction_type=str(cfg.get("prediction_type", "epsilon")),
            zero_terminal_snr=bool(cfg.get("rescale_betas_zero_snr", False)),
            snr_shift_scale=float(cfg.get("snr_shift_scale", 1.0)),
        )


def rescale_zero_terminal_snr(alphas_bar: torch.Tensor) -> torch.Tensor:
    """Lin et al. 2024: shift/scale sqrt(ᾱ) so the last step has zero SNR (ADD trains at τ=1000)."""
    s = alphas_bar.sqrt()
    s0, sT = s[0].clone(), s[-1].clone()
    s = (s - sT) * s0 / (s0 - sT)
    return s ** 2


@dataclass
class FlowSchedule(NoiseSchedule):
    """Rectified flow (SD3): alpha = 1 - s, sigma = s, s = t / 1000, velocity target eps - x0.

    ``shift`` applies SD3's timestep shift s' = shift·s / (1 + (shift-1)·s) in ``sampler_timesteps``.
    """

    num_train_timesteps: int = 1000
    shift: float = 1.0
    prediction_type: str = "flow"

    def __post_init__(self):
        self.T = float(self.num_train_timesteps)

    def alpha_sigma(self, t):
        s = (torch.as_tensor(t, dtype=torch.float64) / self.T).clamp(0, 1)
        return 1 - s, s


# ---- timestep schedules --------------------------------------------------------------------------

def sampler_timesteps(schedule: NoiseSchedule, steps: int, spacing: str = "trailing") -> list[float]:
    """Inference timesteps, high to low, for an ``steps``-step sampler (diffusers' spacing names)."""
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if isinstance(schedule, FlowSchedule):
        s = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)[:-1]
        if schedule.shift != 1.0:
            s = schedule.shift * s / (1 + (schedule.shift - 1) * s)
        return [float(v) for v in (s * schedule.T)]
    n = int(schedule.T) + 1
    if spacing == "trailing":  # includes T-1: the first step starts at (near) pure noise
        ts = torch.arange(n, 0, -n / steps, dtype=torch.float64).round() - 1
    elif spacing == "leading":
        ts = (torch.arange(0, steps, dtype=torch.float64) * (n // steps)).flip(0) + 1
    elif spacing == "linspace":
        ts = torch.linspace(0, n - 1, steps, dtype=torch.float64).round().flip(0)
    else:
        raise ValueError(f"unknown spacing {spacing!r}")
    return [float(v) for v in ts]


def uniform_student_timesteps(T: float, n: int) -> list[float]:
    """ADD's student set {τ1..τn}: evenly spaced, τ1 = T (e.g. 999, 749, 499, 249 for n = 4, T = 999)."""
    return [T - i * (T + 1) / n for i in range(n)]


def cubic_timesteps(T: float, n: int, generator=None, device=None) -> torch.Tensor:
    """DMDX ADP generator schedule t = (1 - u^3)·T, u ~ U[0, 1): biased towards high noise."""
    u = rng.rand(n, generator, device)
    return (1 - u ** 3) * T
