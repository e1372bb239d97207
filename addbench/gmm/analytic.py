"""Exact math of a Gaussian mixture under the VP forward process x_t = α x0 + σ ε (float64 torch).

A mode j (mean μ_j, covariance Σ_j = U_j diag(λ_j) U_jᵀ, weight w_j) diffuses to N(α μ_j, S_j) with
S_j = α² Σ_j + σ² I, so p_t is again a mixture. With responsibilities r_j(x_t) ∝ w_j N(x_t; α μ_j, S_j):

    score       ∇ log p_t(x_t) = -Σ_j r_j S_j⁻¹ (x_t - α μ_j)
    ε-prediction  E[ε | x_t]   = -σ · score
    posterior   E[x0 | x_t]    = Σ_j r_j (μ_j + α Σ_j S_j⁻¹ (x_t - α μ_j))   (= (x_t - σ ε̂) / α)
    CFG         ε_u + w (ε_c - ε_u)

Conditioning picks the weights: class k uses its own modes, the unconditional law (class ``UNCOND`` = -1)
all modes with weights prior_k · w_km. S_j shares U_j with Σ_j, so every inverse and log-determinant is a
division by α² λ + σ² (no factorisation per call).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from addbench.gmm.mixture import Mixture


class Modes(NamedTuple):
    """A mixture as flat float64 tensors, one row per mode (class-major)."""

    means: torch.Tensor  # (C, D)
    eigvals: torch.Tensor  # (C, D)
    eigvecs: torch.Tensor  # (C, D, D), columns are eigenvectors
    log_weights: torch.Tensor  # (K+1, C): row k = class k, row K = unconditional; -inf where the weight is 0


def modes(mixture: Mixture, device=None) -> Modes:
    lam, vec = np.linalg.eigh(mixture.flat_covs())
    with np.errstate(divide="ignore"):
        logw = np.log(mixture.mode_weights())
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64, device=device)  # noqa: E731
    return Modes(t(mixture.flat_means()), t(lam), t(vec), t(logw))


def groups(classes, n_classes: int, device=None) -> torch.Tensor:
    """Class ids (UNCOND = -1 allowed) -> rows of ``Modes.log_weights`` (UNCOND -> K)."""
    c = torch.as_tensor(np.asarray(classes) if not isinstance(classes, torch.Tensor) else classes,
                        dtype=torch.long, device=device)
    return torch.where(c < 0, torch.full_like(c, n_classes), c)


def _terms(x: torch.Tensor, alpha, sigma, m: Modes, classes):
    """(y = Uᵀ(x - αμ) (N, C, D), var = α²λ + σ² (N, C, D), log w_j N(x; αμ_j, S_j) (N, C))."""
    x = x.to(torch.float64)
    n, d = x.shape
    a = torch.as_tensor(alpha, dtype=torch.float64, device=x.device).expand(n).reshape(n, 1, 1)
    s = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).expand(n).reshape(n, 1, 1)
    y = torch.einsum("ncd,cde->nce", x[:, None, :] - a * m.means[None], m.eigvecs)
    var = a ** 2 * m.eigvals[None] + s ** 2
    log_n = -0.5 * ((y ** 2 / var).sum(-1) + var.log().sum(-1) + d * math.log(2 * math.pi))
    g = groups(classes, m.log_weights.shape[0] - 1, x.device)
    return y, var, m.log_weights[g] + log_n


def log_density(x, alpha, sigma, m: Modes, classes) -> torch.Tensor:
    """log p_t(x_t | class), (N,)."""
    return torch.logsumexp(_terms(x, alpha, sigma, m, classes)[2], dim=1)


def responsibilities(x, alpha, sigma, m: Modes, classes) -> torch.Tensor:
    """Posterior mode probabilities r_j(x_t), (N, C)."""
    return torch.softmax(_terms(x, alpha, sigma, m, classes)[2], dim=1)


def score(x, alpha, sigma, m: Modes, classes) -> torch.Tensor:
    y, var, lj = _terms(x, alpha, sigma, m, classes)
    r = torch.softmax(lj, dim=1)
    return -torch.einsum("nc,cde,nce->nd", r, m.eigvecs, y / var)


def eps(x, alpha, sigma, m: Modes, classes) -> torch.Tensor:
    """Exact ε-prediction E[ε | x_t, class] = -σ ∇ log p_t, (N, D) float64."""
    s = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).expand(x.shape[0]).reshape(-1, 1)
    return -s * score(x, alpha, sigma, m, classes)


def posterior_mean(x, alpha, sigma, m: Modes, classes) -> torch.Tensor:
    """Exact E[x0 | x_t, class], (N, D) float64."""
    y, var, lj = _terms(x, alpha, sigma, m, classes)
    r = torch.softmax(lj, dim=1)
    a = torch.as_tensor(alpha, dtype=torch.float64, device=x.device).expand(x.shape[0]).reshape(-1, 1, 1)
    shift = torch.einsum("cde,nce->ncd", m.eigvecs, a * m.eigvals[None] * y / var)
    return torch.einsum("nc,ncd->nd", r, m.means[None] + shift)


def eps_cfg(x, alpha, sigma, m: Modes, classes, guidance: float) -> torch.Tensor:
    """Classifier-free guidance on the exact ε: ε_u + w (ε_c - ε_u)."""
    e_u = eps(x, alpha, sigma, m, np.full(x.shape[0], -1))
    return e_u + guidance * (eps(x, alpha, sigma, m, classes) - e_u)


# ---- exact samples --------------------------------------------------------------------------------------

def sample(mixture: Mixture, classes, seed: int = 0, return_modes: bool = False):
    """Exact samples x0 ~ p(x0 | class) (UNCOND = -1: the unconditional law), float64 (N, D); with
    ``return_modes`` also the mode index of each sample (N,)."""
    rng = np.random.default_rng(seed)
    g = groups(classes, mixture.n_classes).numpy()
    cdf = np.cumsum(mixture.mode_weights()[g], axis=1)
    u = rng.random(len(g))
    idx = np.minimum((u[:, None] >= cdf).sum(1), cdf.shape[1] - 1)
    chol = np.linalg.cholesky(mixture.flat_covs())
    z = rng.standard_normal((len(g), mixture.dim))
    x = mixture.flat_means()[idx] + np.einsum("nde,ne->nd", chol[idx], z)
    x = torch.from_numpy(x)
    return (x, torch.from_numpy(idx)) if return_modes else x


def denoised_samples(mixture: Mixture, classes, alpha: float, sigma: float, seed: int = 0) -> torch.Tensor:
    """The exact law of E[x0 | x_t] at one noise level: what a perfect PF-ODE solver gives when its last step
    returns the x0 prediction at (α, σ), as ``addbench.bases.sampling.denoise`` does (t = 4 for 200 trailing
    DDIM steps, σ ≈ 0.065: each mode's covariance shrinks to about Σ (Σ + σ²/α² I)⁻¹ Σ)."""
    x0 = sample(mixture, classes, seed)
    noise = torch.from_numpy(np.random.default_rng([seed, 1]).standard_normal(tuple(x0.shape)))
    return posterior_mean(alpha * x0 + sigma * noise, alpha, sigma, modes(mixture), classes)
