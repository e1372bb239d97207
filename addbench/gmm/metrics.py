"""Exact metrics of samples from the unit world: :func:`score` (float64 torch, deterministic from ``seed``).

Every sample carries its conditioning class (UNCOND = -1 for the unconditional law); metrics are computed
per class against that class's true law and then combined (weighted by sample counts, maxima for errors).

- ``class_accuracy``: fraction of conditional samples whose nearest mode belongs to their class.
- ``weight_error_max``: nearest mode (Mahalanobis under the mode's covariance) of each sample; per class,
  the largest |empirical - true| mode weight (over all modes: mass on another class's modes counts).
- ``modes_recovered`` / ``modes_total``: (class, mode) pairs with a true weight > 0 whose empirical weight
  is at least half of it.
- ``mean_error_max``: per mode with >= ``min_count`` samples (pooled over the classes that own it),
  ||mean - μ|| in units of the mode's RMS std sqrt(tr Σ / D); ``cov_error_max``: ||cov - Σ||_F / ||Σ||_F.
- ``energy_distance``: the unbiased energy statistic 2E|X-Y| - E|X-X'| - E|Y-Y'| to ``n_ref`` exact samples
  of the same classes (≈ 0 for exact samples, may dip below 0); ``sliced_wasserstein``: sliced W2 over 64
  random directions (the better one in high D). ``reference`` replaces the exact samples, e.g. by
  :func:`addbench.gmm.analytic.denoised_samples` (the law a perfect solver of the project's sampler gives).
"""
from __future__ import annotations

import numpy as np
import torch

from addbench.errors import AddbenchError
from addbench.gmm import analytic
from addbench.gmm.mixture import Mixture


def nearest_mode(x: torch.Tensor, mixture: Mixture) -> torch.Tensor:
    """(N,) index of the mode nearest to each sample in Mahalanobis distance under that mode's covariance."""
    prec = torch.from_numpy(np.linalg.inv(mixture.flat_covs()))
    diff = x.double()[:, None, :] - torch.from_numpy(mixture.flat_means())[None]
    return torch.einsum("ncd,cde,nce->nc", diff, prec, diff).argmin(1)


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased energy statistic 2E|X-Y| - E|X-X'| - E|Y-Y'| (U-statistics within each set)."""
    x, y = x.double(), y.double()
    if len(x) < 2 or len(y) < 2:
        return float("nan")
    within = lambda a: torch.cdist(a, a).sum() / (len(a) * (len(a) - 1))  # noqa: E731 - zero diagonal
    return float(2 * torch.cdist(x, y).mean() - within(x) - within(y))


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, n_dirs: int = 64, seed: int = 0) -> float:
    """Sliced W2: sqrt of the mean over random directions of the W2² of the 1-D projections (quantile match)."""
    x, y = x.double(), y.double()
    if len(x) < 1 or len(y) < 1:
        return float("nan")
    dirs = torch.from_numpy(np.random.default_rng(seed).standard_normal((x.shape[1], n_dirs)))
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    n = min(len(x), len(y))
    q = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    px, py = torch.quantile(x @ dirs, q, dim=0), torch.quantile(y @ dirs, q, dim=0)
    return float((px - py).pow(2).mean().sqrt())


def _subsample(x: torch.Tensor, k: int, rng: np.random.Generator) -> torch.Tensor:
    return x if len(x) <= k else x[torch.from_numpy(np.sort(rng.choice(len(x), k, replace=False)))]


def _distances(x, c, ref, ref_c, groups, seed, max_points) -> tuple[float, float]:
    rng = np.random.default_rng([seed, 3])
    ed = sw = 0.0
    for g in groups:
        a = _subsample(x[c == g], max_points, rng)
        b = _subsample(ref[ref_c == g], max_points, rng)
        w = float((c == g).sum()) / len(c)
        ed += w * energy_distance(a, b)
        sw += w * sliced_wasserstein(a, b, seed=seed) ** 2
    return ed, sw ** 0.5


def _mode_stats(x, c, assign, mixture: Mixture, groups, min_count) -> tuple[float, float]:
    owned = mixture.mode_weights()[[g if g >= 0 else mixture.n_classes for g in groups]].max(0) > 0
    mean_err, cov_err = [], []
    for j in np.flatnonzero(owned):
        own_groups = [g for g in groups if g < 0 or mixture.mode_class()[j] == g]
        pts = x[(assign == j) & torch.from_numpy(np.isin(c.numpy(), own_groups))]
        if len(pts) < min_count:
            continue
        mu, sigma = torch.from_numpy(mixture.flat_means()[j]), torch.from_numpy(mixture.flat_covs()[j])
        mean_err.append(float((pts.mean(0) - mu).norm() / (sigma.trace() / len(mu)).sqrt()))
        cov_err.append(float((torch.cov(pts.T).reshape(sigma.shape) - sigma).norm() / sigma.norm()))
    return max(mean_err, default=float("nan")), max(cov_err, default=float("nan"))


def score(samples, classes, mixture: Mixture, n_ref: int = 4000, seed: int = 0, reference=None,
          min_count: int = 10, max_points: int = 4000) -> dict:
    """Metrics (module docstring) of ``samples`` (N, D) drawn under ``classes`` (N,) (UNCOND = -1 allowed);
    ``reference``: (samples, classes) to measure distances to instead of ``n_ref`` exact samples."""
    x = torch.as_tensor(np.asarray(samples), dtype=torch.float64)
    c = torch.as_tensor(np.asarray(classes), dtype=torch.long)
    if x.ndim != 2 or x.shape[1] != mixture.dim or len(c) != len(x):
        raise AddbenchError(f"gmm score needs samples (N, {mixture.dim}) and N classes; "
                            f"got {tuple(x.shape)} and {len(c)}")
    if len(x) == 0:
        raise AddbenchError("gmm score got no samples")
    if bool(((c < -1) | (c >= mixture.n_classes)).any()):
        raise AddbenchError(f"gmm score: classes must be 0..{mixture.n_classes - 1} or -1 (unconditional)")
    groups = sorted(set(c.tolist()))
    if reference is None:
        ref_c = torch.from_numpy(np.resize(c.numpy(), n_ref))
        # a stream of its own: analytic.sample(seed=s) would reuse the numbers draw_classes(n, s) drew the classes
        # with, tying each reference point's mode to its class
        ref = analytic.sample(mixture, ref_c, seed=int(np.random.default_rng([seed, 2]).integers(2**62)))
    else:
        ref, ref_c = (torch.as_tensor(np.asarray(v)) for v in reference)
    assign = nearest_mode(x, mixture)
    mode_class = torch.from_numpy(mixture.mode_class())
    table = mixture.mode_weights()
    weight_err, recovered, total = 0.0, 0, 0
    for g in groups:
        true = table[g if g >= 0 else mixture.n_classes]
        emp = np.bincount(assign[c == g].numpy(), minlength=len(true)) / float((c == g).sum())
        weight_err = max(weight_err, float(np.abs(emp - true).max()))
        recovered += int(((true > 0) & (emp >= 0.5 * true)).sum())
        total += int((true > 0).sum())
    cond = c >= 0
    accuracy = float((mode_class[assign[cond]] == c[cond]).double().mean()) if cond.any() else float("nan")
    mean_err, cov_err = _mode_stats(x, c, assign, mixture, groups, min_count)
    ed, sw = _distances(x, c, ref.double(), ref_c.long(), groups, seed, max_points)
    return {"n": len(x), "class_accuracy": accuracy, "weight_error_max": weight_err, "modes_recovered": recovered,
            "modes_total": total, "mean_error_max": mean_err, "cov_error_max": cov_err, "energy_distance": ed,
            "sliced_wasserstein": sw}
