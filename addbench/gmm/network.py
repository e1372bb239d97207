"""``GMMDenoiser``: the unit world's teacher, and (as copies) every student and fake score.

ε̂(x_t, t, class) = exact ε-prediction of the mixture (:mod:`addbench.gmm.analytic`) + an MLP residual on
[x_t, timestep embedding, class embedding] (``blocks.i`` = Linear + SiLU, the feature taps; ``out`` is
zero-initialised, so the teacher is exact).

Choices:
- The mixture is held in non-trainable buffers, so a copy (student, fake score) learns only through the MLP:
  its analytic part stays the teacher's exact ε. The buffers hold the float64 values' bit patterns as int64,
  so ``.to(dtype)`` (bf16 bases, ``from_pretrained(torch_dtype=...)``) never rounds the mixture; they are read
  back with ``.view(torch.float64)``. The config carries the same mixture, for ``from_pretrained``.
- The analytic part runs in float64 whatever the network's dtype (autocast leaves float64 alone) and is
  differentiable in x_t; the timestep maps to (α, σ) through the network's own VP schedule (config keys as
  diffusers' scheduler config; the defaults are SD1.5's).
- The class input is the (N, K+1) one-hot row ``GMMBase.encode_prompts`` makes (index K = unconditional);
  the analytic part reads its argmax.
"""
from __future__ import annotations

import math

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from addbench.gmm import analytic
from addbench.gmm.mixture import Mixture, make_mixture
from addbench.schedules import VPSchedule

_EXACT = ("exact_means", "exact_eigvals", "exact_eigvecs", "exact_log_weights")  # buffer names


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of model timesteps (0..T), (N, dim), as diffusers' ``Timesteps``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class MLPBlock(nn.Module):
    """Linear + SiLU: one feature tap."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.linear = nn.Linear(cin, cout)
        self.act = nn.SiLU()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(h))


class GMMDenoiser(ModelMixin, ConfigMixin):
    """``forward(x_t (N, D), t (N,) model timesteps, class_onehot (N, K+1)) -> ε̂ (N, D)``."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, means: list, covs: list, weights: list, class_prior: list, hidden: int = 128,
                 depth: int = 3, time_dim: int = 32, class_dim: int = 16, num_train_timesteps: int = 1000,
                 beta_start: float = 0.00085, beta_end: float = 0.012, beta_schedule: str = "scaled_linear"):
        super().__init__()
        mix = Mixture.from_dict({"means": means, "covs": covs, "weights": weights, "class_prior": class_prior})
        self.n_classes, self.dim = mix.n_classes, mix.dim
        self.schedule = VPSchedule(num_train_timesteps, beta_start, beta_end, beta_schedule, "epsilon")
        for name, value in zip(_EXACT, analytic.modes(mix)):
            self.register_buffer(name, value.contiguous().view(torch.int64))
        self.class_embed = nn.Linear(self.n_classes + 1, class_dim, bias=False)
        widths = [self.dim + time_dim + class_dim] + [hidden] * depth
        self.blocks = nn.ModuleList(MLPBlock(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Linear(hidden, self.dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @classmethod
    def from_mixture(cls, mixture: Mixture, **kwargs) -> "GMMDenoiser":
        return cls(**mixture.to_dict(), **kwargs)

    def mixture(self) -> Mixture:
        c = self.config
        return Mixture.from_dict({k: c[k] for k in ("means", "covs", "weights", "class_prior")})

    def modes(self) -> analytic.Modes:
        """The mixture as exact float64 tensors on the network's device."""
        return analytic.Modes(*(getattr(self, n).view(torch.float64) for n in _EXACT))

    def scheduler_config(self) -> dict:
        c = self.config
        return {"num_train_timesteps": c.num_train_timesteps, "beta_start": c.beta_start, "beta_end": c.beta_end,
                "beta_schedule": c.beta_schedule, "prediction_type": "epsilon", "clip_sample": False}

    def analytic_eps(self, x_t: torch.Tensor, t: torch.Tensor, class_onehot: torch.Tensor) -> torch.Tensor:
        """The exact ε-prediction (float64) of the class each one-hot row names (index K: unconditional)."""
        alpha, sigma = self.schedule.alpha_sigma(t.to(torch.float64))
        classes = class_onehot.argmax(-1)
        classes = torch.where(classes == self.n_classes, torch.full_like(classes, -1), classes)
        return analytic.eps(x_t, alpha.to(x_t.device), sigma.to(x_t.device), self.modes(), classes)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, class_onehot: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=x_t.device).expand(x_t.shape[0])
        exact = self.analytic_eps(x_t, t, class_onehot)
        h = torch.cat([x_t, timestep_embedding(t, self.config.time_dim).to(x_t.dtype),
                       self.class_embed(class_onehot.to(self.class_embed.weight.dtype)).to(x_t.dtype)], dim=1)
        for block in self.blocks:
            h = block(h)
        return exact.to(x_t.dtype) + self.out(h).to(x_t.dtype)


def default_network(mixture: Mixture | None = None, seed: int = 0, **kwargs) -> GMMDenoiser:
    """The teacher of a world (the default 2-D one when ``mixture`` is None); MLP init from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GMMDenoiser.from_mixture(mixture or make_mixture(), **kwargs)
