"""Exact math of the diffused mixture: ε is -σ × the autograd score of the exact log-density, and friends."""
import numpy as np
import pytest
import torch

from addbench.gmm import analytic
from addbench.gmm.mixture import make_mixture
from addbench.schedules import VPSchedule


@pytest.mark.parametrize("dim,t", [(2, 10.0), (2, 500.0), (2, 999.0), (5, 300.0)])
@pytest.mark.parametrize("cls", [2, -1])
def test_eps_is_minus_sigma_times_the_autograd_score(dim, t, cls):
    mix = make_mixture(dim=dim, seed=1)
    m = analytic.modes(mix)
    a, s = VPSchedule().alpha_sigma(torch.tensor(t))
    noise = torch.randn(64, dim, dtype=torch.float64)
    x = (a * analytic.sample(mix, np.full(64, cls), seed=0) + s * noise).requires_grad_()
    score = torch.autograd.grad(analytic.log_density(x, a, s, m, np.full(64, cls)).sum(), x)[0]
    eps = analytic.eps(x.detach(), a, s, m, np.full(64, cls))
    assert torch.allclose(eps, -s * score, rtol=1e-9, atol=1e-10)


def test_log_density_matches_a_direct_gaussian_mixture():
    mix = make_mixture(seed=3)
    a, s = 0.8, 0.6
    x = torch.randn(16, 2, dtype=torch.float64)
    gauss = torch.distributions.MultivariateNormal
    comps = [gauss(torch.from_numpy(a * mu), torch.from_numpy(a * a * c) + s * s * torch.eye(2))
             for mu, c in zip(mix.flat_means(), mix.flat_covs())]
    w = torch.from_numpy(mix.mode_weights()[1])
    direct = torch.logsumexp(torch.stack([d.log_prob(x) for d in comps], 1) + w.log(), 1)
    assert torch.allclose(analytic.log_density(x, a, s, analytic.modes(mix), np.full(16, 1)), direct, atol=1e-10)


def test_posterior_mean_is_x_over_alpha_at_small_t_and_consistent_with_eps():
    mix = make_mixture()
    m = analytic.modes(mix)
    cls = np.arange(32) % 4
    x0 = analytic.sample(mix, cls, seed=0)
    a, s = (float(v) for v in VPSchedule().alpha_sigma(torch.tensor(0.0)))  # σ ≈ 0.03
    x_t = a * x0 + s * torch.randn(x0.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    post = analytic.posterior_mean(x_t, a, s, m, cls)
    assert (post - x_t / a).abs().max() < 3 * s  # shrinks towards the mode by O(σ) only
    assert torch.allclose(post, (x_t - s * analytic.eps(x_t, a, s, m, cls)) / a, atol=1e-12)
    tiny = analytic.posterior_mean(x0, 1.0, 1e-6, m, cls)
    assert torch.allclose(tiny, x0, atol=1e-9)


def test_cfg_is_eps_u_plus_w_times_the_difference_and_w1_is_conditional():
    mix = make_mixture()
    m = analytic.modes(mix)
    x, cls = torch.randn(8, 2, dtype=torch.float64), np.arange(8) % 4
    e_c, e_u = analytic.eps(x, 0.5, 0.8, m, cls), analytic.eps(x, 0.5, 0.8, m, np.full(8, -1))
    assert torch.allclose(analytic.eps_cfg(x, 0.5, 0.8, m, cls, 1.0), e_c)
    assert torch.allclose(analytic.eps_cfg(x, 0.5, 0.8, m, cls, 3.0), e_u + 3 * (e_c - e_u))


def test_exact_samples_have_the_mixture_moments_and_are_deterministic():
    mix = make_mixture()
    x, idx = analytic.sample(mix, np.zeros(40000, dtype=int), seed=0, return_modes=True)
    assert torch.equal(x, analytic.sample(mix, np.zeros(40000, dtype=int), seed=0))
    assert set(idx.tolist()) == {0, 1}  # class 0 owns modes 0 and 1 only
    w = mix.weights[0]
    assert abs(float((idx == 0).double().mean()) - w[0]) < 0.01
    mean = (w[:, None] * mix.means[0]).sum(0)
    assert np.allclose(x.mean(0).numpy(), mean, atol=0.01)


def test_default_world_is_eight_separated_modes_inside_the_unit_square():
    mix = make_mixture()
    assert (mix.n_classes, mix.n_components, mix.dim) == (4, 2, 2)
    mu = mix.flat_means()
    assert np.abs(mu).max() + 4 * np.sqrt(np.linalg.eigvalsh(mix.flat_covs()).max()) < 1
    d = np.linalg.norm(mu[:, None] - mu[None], axis=-1) + np.eye(8) * 9
    assert d.min() > 6 * np.sqrt(np.linalg.eigvalsh(mix.flat_covs()).max())
    assert make_mixture(dim=7, seed=2).fingerprint() == make_mixture(dim=7, seed=2).fingerprint()
