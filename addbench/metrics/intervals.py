"""95% confidence intervals over prompts: which interval each metric reports, and why.

Every interval resamples **prompts** with replacement (all seeds of a drawn prompt come along), ``DRAWS`` = 1,000
draws for every metric, seed 0. The record names the rule next to ``ci95``:
``"ci": {"method", "draws", "level", "unit": "prompt"}``.

Means (CLIP score, PickScore, HPSv2, MPS, caption accuracy, LPIPS diversity): ``"percentile"``, the 2.5% and
97.5% quantiles of the resampled means (Efron 1979). The mean is unbiased and nearly symmetric, and the interval
covers the true mean at about the nominal rate (``benchmarks/interval_coverage.py``: 92.5% of 400 replications with
skewed prompt effects and 200 prompts; percentile intervals of skewed means run a little short at this size).

FID and KID: ``"basic+bias"``, the basic bootstrap interval moved by the bootstrap's own bias estimate::

    [t - (q_hi - m*), t + (m* - q_lo)]
    t: the estimate; q_lo, q_hi: the 2.5% / 97.5% quantiles of the draws; m*: their mean

Why not the percentile interval. FID is the Fréchet distance of *estimated* moments to fixed reference moments; its
estimate at n samples is biased upward by O(1/n) (Chong & Forsyth 2020, "Effectively Unbiased FID"), and a
bootstrap draw -- n rows drawn from the n samples -- is a sample of the same size from the empirical distribution,
so it carries that bias once more: draws sit above the estimate (toy-smoke, FID 141.25: all 1,000 draws; percentile
interval [153.3, 240.0]). The percentile interval therefore sits around FD + 2 x bias while the estimate's own mean is
FD + bias; in the "near" simulation below it covers nothing, and it excludes its own estimate in 7 of the 42 toy
records under leaderboards/runs.
KID's estimator is unbiased, but a draw's repeated rows are pairs of identical samples whose kernel value
``k(y, y)`` enters the gen-gen term, which biases the draws upward the same way.

What the interval is for. The target is ``E[FID_n]``, the mean of the reported estimator at the run's sample size:
FID is a convention at a given n (FID-10k is compared with FID-10k), the leaderboard compares those numbers, and a
target that the estimate sits below by its bias (FD itself) could not be covered by an interval that contains the
estimate. The basic interval ``[2t - q_hi, 2t - q_lo]`` (Davison & Hinkley 1997, eq. 5.6) is centred on the
bias-corrected ``2t - m*`` and so aims at FD (n -> inf); adding back the bias estimate ``m* - t`` aims it at
``E[FID_n]``: the draws' spread about their mean stands for the estimate's spread about its mean (the basic
interval's pivot), skewness included -- a right-skewed FID gets the longer arm below the estimate. For KID the
target is ``E[KID_n | reference features]``, the MMD² of the generator to the reference set (KID is unbiased).

Coverage of the nominal 95% interval, measured before choosing (``benchmarks/interval_coverage.py``; numbers in
``benchmarks/results/cpu_interval_coverage.json``): 400 replications x 1,000 draws; Gaussian features, reference
statistics exact, prompts of 2 seeds correlated 0.5; target ``E[FID_n]`` by Monte Carlo over 20,000 data sets.
d = 32 with 200 prompts (n = 400): "far" FD 5.25 / E[FID_n] 5.55, "near" FD 0.040 / 0.278, "equal" (generator =
reference) FD 0 / 0.234; n < d: d = 64 with 20 prompts (n = 40): far FD 9.16 / 16.55, near 0.057 / 5.98, equal
0 / 5.79. Coverage of E[FID_n], %::

    FID                      far   near  equal | n<d: far   near  equal
    percentile (before)      72.0   0.0   0.0  |      2.2    0.0   0.0
    basic                    68.0   0.0   0.0  |      2.0    0.0   0.0   (covers FD: 95.8 100 100 | 2.5 0 0)
    basic+bias (chosen)      95.3 100.0 100.0  |     99.5  100.0 100.0
    percentile - bias        94.8 100.0 100.0  |     99.5  100.0 100.0
    normal, bootstrap sd     95.0 100.0 100.0  |    100.0  100.0 100.0
    BCa                      63.5   0.0   0.0  |      0.0    0.0   0.0
    half-sampling            95.0  99.5 100.0  |     91.7   98.3  99.3
    delta method             95.0  99.3  99.3  |     92.5   98.3  99.3
    10 independent splits    97.0 100.0 100.0  |     99.0  100.0 100.0

    estimate inside its interval: percentile, basic and BCa 0% of replications wherever draws lie above the estimate
    (all but d = 32 "far", where 92% of draws did); every other rule 100%.

    KID (d = 32)                      far   near  equal
    percentile, tied pairs kept       89.8  10.3   0.0   (the harness's rule before; estimate inside: 100 / 26 / 1%)
    percentile, tied pairs dropped    93.8  81.8  79.0
    basic+bias, tied pairs dropped    94.8  99.3  99.3   (chosen)
    normal, bootstrap sd              94.8  98.0  98.8

    mean (CLIP-score-like, Gamma(2, 1) prompt effects, 200 prompts): percentile 92.5, basic 92.0

basic+bias was kept over the normal interval because it follows FID's skewness, over percentile - bias because
its arms are the right way round for the basic pivot, over half-sampling and the delta method because they
under-cover with fewer samples than dimensions (91.7%, 92.5%), and over independent splits because a split needs
enough samples to estimate a d x d covariance (Inception's features are 2,048-d). Its cost: where FD is of the order
of its bias, or n < d, it is conservative -- a draw adds its own sampling noise to a statistic that is quadratic in
that noise, so the draws spread more than the estimate does (widths 1.4-1.5x the delta method's in "near" and
"equal" at d = 32, 1.4-2.8x with n < d; equal in "far"). The harness's own ``FID.bootstrap`` at 250 prompts x 4
seeds, 200 replications (``benchmarks/results/cpu_interval_coverage_harness.json``): d = 64 far 94.5%, near 100%;
d = 128 far 97.0%, near 100% (the percentile interval of the same draws: 54.0 / 0 / 5.5 / 0%); near, the draws' sd
was 1.9x (d = 64) and 3.1x (d = 128) the estimate's. The test (tests/metrics/test_interval_coverage.py) asserts
>= 90% on a 16-d version.

The estimate inside its interval. ``t`` lies inside ``[t - (q_hi - m*), t + (m* - q_lo)]`` whenever the draws'
mean lies between their 2.5% and 97.5% quantiles, which holds for any bootstrap distribution short of a pathological
one; where it would not, the interval is widened to reach ``t`` (never narrowed). A lower end below 0 is clipped to
0 for FID (the target is >= 0; clipping cannot drop it). ``check_contains`` asserts the result for every metric.
"""
from __future__ import annotations

import math

import numpy as np

LEVEL = 0.95
DRAWS = 1000
UNIT = "prompt"
PERCENTILE = "percentile"
BASIC_BIAS = "basic+bias"


def ci_info(method: str, draws: int, alpha: float = 1 - LEVEL) -> dict:
    """What record.json stores next to ``ci95``."""
    return {"method": method, "draws": int(draws), "level": round(1 - alpha, 6), "unit": UNIT}


def check_contains(point: float, ci, what: str = "metric") -> None:
    """Raise when ``point`` is outside ``ci`` (up to float rounding): every reported interval contains its estimate."""
    if ci is None:
        return
    lo, hi = float(ci[0]), float(ci[1])
    tol = 1e-9 * max(1.0, abs(point), abs(lo), abs(hi))
    if not (lo - tol <= point <= hi + tol) or not (math.isfinite(lo) and math.isfinite(hi)):
        raise AssertionError(f"{what}: estimate {point!r} outside its interval [{lo!r}, {hi!r}]")


def _include(point: float, lo: float, hi: float) -> tuple[float, float]:
    return min(lo, point), max(hi, point)


def percentile_interval(draws, point: float, alpha: float = 1 - LEVEL) -> tuple[float, float]:
    """``[q_lo, q_hi]`` of the draws, widened to reach ``point`` if it lies outside (for an unbiased mean it never
    does in practice)."""
    lo, hi = np.quantile(np.asarray(draws, dtype=np.float64), [alpha / 2, 1 - alpha / 2])
    lo, hi = _include(point, float(lo), float(hi))
    check_contains(point, (lo, hi), "percentile interval")
    return lo, hi


def basic_bias_interval(draws, point: float, alpha: float = 1 - LEVEL,
                        lower: float | None = None) -> tuple[float, float]:
    """``[t - (q_hi - m*), t + (m* - q_lo)]``: the interval for ``E[estimate]`` at this sample size (module
    docstring). Widened to reach ``point`` if the draws' mean lies outside their central quantiles; the lower end is
    clipped at ``lower`` (FID: 0) when given."""
    d = np.asarray(draws, dtype=np.float64)
    if d.size < 2 or not np.isfinite(d).all():
        raise ValueError(f"basic+bias interval needs >= 2 finite draws (have {d.size}, finite {np.isfinite(d).sum()})")
    q_lo, q_hi = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    m = float(d.mean())
    lo, hi = _include(point, point - (float(q_hi) - m), point + (m - float(q_lo)))
    if lower is not None:
        lo = min(max(lo, lower), point)
    check_contains(point, (lo, hi), "basic+bias interval")
    return lo, hi


def prompt_count_chunks(n_prompts: int, n_boot: int, seed: int, chunk: int = 256):
    """Yield ``(first draw index, counts)``: ``counts[j, p]`` how often prompt ``p`` (index into the sorted prompt
    ids) was drawn in draw ``first + j``. The draws are ``Metric.bootstrap``'s and ``Metric.resample_prompts``'s: row
    ``i`` of ``default_rng(seed).integers(0, P, (n_boot, P))``, which equals the i-th of n_boot calls
    ``integers(0, P, P)`` (so every metric of a run resamples the same prompts)."""
    rng = np.random.default_rng(seed)
    for first in range(0, n_boot, chunk):
        b = min(chunk, n_boot - first)
        idx = rng.integers(0, n_prompts, (b, n_prompts))
        flat = (idx + n_prompts * np.arange(b)[:, None]).ravel()
        yield first, np.bincount(flat, minlength=b * n_prompts).reshape(b, n_prompts)


def paired_bootstrap(diffs, n_boot: int = DRAWS, seed: int = 0,
                     alpha: float = 1 - LEVEL) -> tuple[float, float, float, float]:
    """``(mean, lo, hi, p)`` for the mean of per-prompt paired differences (run B - run A, one value a prompt).

    The draws are ``prompt_count_chunks``' (the same resampled prompts for both runs, since a difference is one
    value per prompt); ``[lo, hi]`` is their percentile interval and ``p`` the two-sided bootstrap p-value
    ``min(1, 2 min(#{d* <= 0} + 1, #{d* >= 0} + 1) / (n_boot + 1))``: small when 0 lies in one tail of the draws,
    1 when every draw is 0 (identical runs)."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0 or not np.isfinite(d).all():
        raise ValueError(f"paired bootstrap needs >= 1 finite difference (have {d.size}, "
                         f"finite {np.isfinite(d).sum()})")
    draws = np.empty(n_boot)
    for first, counts in prompt_count_chunks(d.size, n_boot, seed):
        draws[first:first + len(counts)] = counts @ d / d.size
    point = float(d.mean())
    lo, hi = percentile_interval(draws, point, alpha)
    tail = min(int((draws <= 0).sum()), int((draws >= 0).sum())) + 1
    return point, lo, hi, min(1.0, 2 * tail / (n_boot + 1))
