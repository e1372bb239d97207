"""Coverage of candidate 95% intervals for FID, KID and a per-sample mean, from Gaussian features with known truth.

The numbers in README's "Confidence intervals" paragraph and in ``addbench/metrics/intervals.py`` come from::

    OMP_NUM_THREADS=1 python benchmarks/interval_coverage.py --reps 400 --kid --out benchmarks/results/cpu_interval_coverage.json
    OMP_NUM_THREADS=1 python benchmarks/interval_coverage.py --harness cpu --shapes 64x250x4 --scenarios far,near \
        --reps 200 --truth-reps 10000     # the harness's own FID.bootstrap (also 128x250x4: ~25 min on one thread)

Set-up (what the harness sees): generated features ``x[p, s] = mu_g + A b[p] + B e[p, s]`` -- prompts ``p`` with
``seeds`` seeds each, seeds of one prompt correlated through ``b[p]`` -- and reference statistics fixed and exact
(``N(0, Sr)``, as precomputed stats from many images are). Every interval resamples whole prompts with
replacement (``draws`` draws), as ``Metric.bootstrap`` does. Targets:

* FID: ``E[FID_n]``, the mean of the reported estimator at this sample size (the convention: FID-10k is compared
  with FID-10k; FID_n is biased upward by O(1/n) from FD, Chong & Forsyth 2020), Monte Carlo over ``--truth-reps``
  fresh data sets; the true FD (= FID at n -> inf) is reported too.
* KID: ``E[KID_n | reference set]``, exact in closed form (the cubic kernel's Gaussian moments): clean-fid's KID is
  an unbiased U-statistic, so this is the MMD^2 between the generator and the reference features.
* mean: the population mean of a skewed per-sample score (CLIP-score-like).

Candidates (``q_lo``, ``q_hi``: the 2.5% and 97.5% quantiles of the draws ``t*``, ``m*`` their mean, ``t`` the
estimate): percentile ``[q_lo, q_hi]`` (Efron 1979; the harness's interval until now); basic / reverse
percentile ``[2t - q_hi, 2t - q_lo]`` (Davison & Hinkley 1997, eq. 5.6); basic + bias, i.e. the basic interval
moved by the bootstrap bias estimate ``m* - t``: ``[t - (q_hi - m*), t + (m* - q_lo)]``; percentile - bias
``[q_lo - (m* - t), q_hi - (m* - t)]``; normal ``t -/+ 1.96 sd*``; BCa (Efron 1987, acceleration from the
jackknife over prompts); half-sampling (delete-n/2 jackknife: half of the prompts without replacement, whose
spread about their mean is the full sample's; Shao & Tu 1995 ch. 5), basic + bias form; the delta method (FID's
influence function, prompt-clustered, normal); and 10 independent splits (t interval, sd / sqrt(10)).
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
from scipy import stats

DT = torch.float64


# ---- scenarios -------------------------------------------------------------------------------------------------
def _spectrum(d, rng, scale=1.0):
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = scale / (1 + np.arange(d) / 4)
    return (q * lam) @ q.T


def scenario(name, d, prompts, seeds, rho=0.5, seed=0):
    """Reference N(0, Sr); generator mean mu_g and covariance Sg = rho Sg0 (prompt part) + (1-rho) Sg0 (seed part)."""
    rng = np.random.default_rng(seed)
    sr = _spectrum(d, rng)
    if name == "far":  # FD well above its standard error
        mu_g, sg = rng.standard_normal(d) * 0.25, _spectrum(d, rng, 1.6)
    elif name == "near":  # FD of the order of its O(1/n) bias
        mu_g, sg = rng.standard_normal(d) * 0.03, sr + 0.03 * _spectrum(d, rng)
    elif name == "equal":  # generator = reference (FD = 0: the degenerate case)
        mu_g, sg = np.zeros(d), sr.copy()
    else:
        raise ValueError(name)
    root = np.linalg.cholesky(sg)
    return {"name": name, "d": d, "prompts": prompts, "seeds": seeds, "rho": rho, "mu_r": np.zeros(d), "sr": sr,
            "mu_g": mu_g, "sg": sg, "a": math.sqrt(rho) * root, "b": math.sqrt(1 - rho) * root}


def draw(sc, rng, reps=None):
    """(reps, n, d) features (rows ordered prompt-major) or (n, d)."""
    p, s, d = sc["prompts"], sc["seeds"], sc["d"]
    r = 1 if reps is None else reps
    bp = rng.standard_normal((r, p, 1, d)) @ sc["a"].T
    e = rng.standard_normal((r, p, s, d)) @ sc["b"].T
    x = (sc["mu_g"] + bp + e).reshape(r, p * s, d)
    return x[0] if reps is None else x


def true_fd(sc):
    from scipy import linalg

    covmean = linalg.sqrtm(sc["sg"] @ sc["sr"]).real
    diff = sc["mu_g"] - sc["mu_r"]
    return float(diff @ diff + np.trace(sc["sg"]) + np.trace(sc["sr"]) - 2 * np.trace(covmean))


# ---- FID on weighted rows (batched) ----------------------------------------------------------------------------
class FIDw:
    """FID of weighted row sets of one feature matrix against fixed reference stats, batched over weight vectors."""

    def __init__(self, x, mu_r, sr):
        self.x = torch.as_tensor(x, dtype=DT)
        self.mu_r = torch.as_tensor(mu_r, dtype=DT)
        sr = torch.as_tensor(sr, dtype=DT)
        w, v = torch.linalg.eigh(sr)
        self.root = (v * w.clamp(min=0).sqrt()) @ v.T
        self.tr_r = float(sr.trace())
        self.z = self.x @ self.root
        self.sq = (self.x ** 2).sum(1)

    def __call__(self, wts):
        w = torch.as_tensor(wts, dtype=DT)
        n = w.sum(1, keepdim=True)
        mu = w @ self.x / n
        mz = w @ self.z / n
        d = self.z.shape[1]
        zz = (self.z[:, :, None] * self.z[:, None, :]).reshape(len(self.z), d * d)
        m = (w @ zz).view(-1, d, d) - n[:, :, None] * mz[:, :, None] * mz[:, None, :]
        m = m / (n[:, :, None] - 1)
        ev = torch.linalg.eigvalsh((m + m.transpose(1, 2)) / 2).clamp(min=0).sqrt().sum(1)
        tr_s = (w @ self.sq - n[:, 0] * (mu ** 2).sum(1)) / (n[:, 0] - 1)
        return (((mu - self.mu_r) ** 2).sum(1) + tr_s + self.tr_r - 2 * ev).numpy()


def fid_many(xs, mu_r, sr):
    """FID of each data set in xs (reps, n, d)."""
    out = []
    for x in xs:
        out.append(FIDw(x, mu_r, sr)(np.ones((1, x.shape[0])))[0])
    return np.array(out)


def fid_influence_se(x, groups, mu_r, sr):
    """Delta-method standard error of FID: influence function of FD(mu, S) summed within prompts."""
    x = np.asarray(x)
    mu, s = x.mean(0), np.cov(x.T)
    w, v = np.linalg.eigh(sr)
    rr = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    a = rr @ s @ rr
    wa, va = np.linalg.eigh((a + a.T) / 2)
    inv_sqrt = (va / np.sqrt(np.clip(wa, 1e-12, None))) @ va.T
    g = np.eye(len(mu)) - rr @ inv_sqrt @ rr
    xc = x - mu
    psi = 2 * xc @ (mu - mu_r) + np.einsum("ij,jk,ik->i", xc, g, xc) - np.trace(g @ s)
    per = np.bincount(groups, psi)
    n, p = len(x), len(per)
    return math.sqrt((per ** 2).sum() * p / (p - 1)) / n


# ---- KID: cubic-kernel U statistics from kernel matrices --------------------------------------------------------
def kern(x, y):
    return (x @ y.T / x.shape[1] + 1) ** 3


def e_kernel(mu1, s1, mu2, s2):
    """E k(X, Y), X ~ N(mu1, s1), Y ~ N(mu2, s2) independent, k(x, y) = (x.y/d + 1)^3 (closed form)."""
    d = len(mu1)
    a = mu1 @ mu2
    m1, m2 = s1 + np.outer(mu1, mu1), s2 + np.outer(mu2, mu2)
    es = a / d
    es2 = np.trace(m1 @ m2) / d ** 2
    v = mu2 @ s1 @ mu2
    es3 = (a ** 3 + 3 * a * v + 3 * (a * (mu1 @ s2 @ mu1 + np.trace(s1 @ s2)) + 2 * mu2 @ s1 @ s2 @ mu1)) / d ** 3
    return es3 + 3 * es2 + 3 * es + 1


def kid_target(sc, ref):
    """E[KID_n | ref] = mean_{i != j} k(r_i, r_j) + E k(Y, Y') - 2 mean_i E k(r_i, Y)."""
    kr = kern(ref, ref)
    n = len(ref)
    u_ref = (kr.sum() - np.trace(kr)) / (n * (n - 1))
    eyy = e_kernel(sc["mu_g"], sc["sg"], sc["mu_g"], sc["sg"])
    z = np.zeros((sc["d"], sc["d"]))
    exy = np.mean([e_kernel(r, z, sc["mu_g"], sc["sg"]) for r in ref])
    return float(u_ref + eyy - 2 * exy)


def kid_point(x, ref, num_subsets, seed):
    from addbench.metrics.fid import kernel_distance

    return kernel_distance(x, ref, num_subsets=num_subsets, max_subset_size=1000, seed=seed)


# ---- interval rules ----------------------------------------------------------------------------------------------
Z = stats.norm.ppf(0.975)


def rules_from_draws(t, draws, alpha=0.05):
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    m, sd = draws.mean(), draws.std(ddof=1)
    return {"percentile": (lo, hi), "basic": (2 * t - hi, 2 * t - lo), "basic+bias": (t - (hi - m), t + (m - lo)),
            "percentile-bias": (lo - (m - t), hi - (m - t)), "normal": (t - Z * sd, t + Z * sd)}


def bca(t, draws, jack, alpha=0.05):
    frac = np.clip((draws < t).mean() + 0.5 * (draws == t).mean(), 1 / len(draws), 1 - 1 / len(draws))
    z0 = stats.norm.ppf(frac)
    jm = jack.mean()
    a = ((jm - jack) ** 3).sum() / (6 * (((jm - jack) ** 2).sum()) ** 1.5 + 1e-300)
    qs = []
    for za in stats.norm.ppf([alpha / 2, 1 - alpha / 2]):
        qs.append(stats.norm.cdf(z0 + (z0 + za) / (1 - a * (z0 + za))))
    return tuple(np.quantile(draws, qs))


def counts(p, b, rng):
    return np.stack([np.bincount(rng.integers(0, p, p), minlength=p) for _ in range(b)])


def half_counts(p, b, rng):
    c = np.zeros((b, p))
    for i in range(b):
        c[i, rng.choice(p, p // 2, replace=False)] = 1
    return c


def run_fid(sc, reps, draws, truth_reps, seed):
    rng = np.random.default_rng(seed)
    p, s = sc["prompts"], sc["seeds"]
    t0 = time.perf_counter()
    target_n = float(np.mean(np.concatenate([fid_many(draw(sc, rng, 500), sc["mu_r"], sc["sr"])
                                             for _ in range(truth_reps // 500)])))
    fd = true_fd(sc)
    groups = np.repeat(np.arange(p), s)
    rows = lambda c: np.repeat(c, s, axis=1)
    res: dict[str, list] = {}
    point_below_draws = []
    for _ in range(reps):
        x = draw(sc, rng)
        f = FIDw(x, sc["mu_r"], sc["sr"])
        t = float(f(np.ones((1, len(x))))[0])
        bd = f(rows(counts(p, draws, rng)))
        point_below_draws.append(float((bd > t).mean()))
        iv = rules_from_draws(t, bd)
        jack = f(rows(1 - np.eye(p)))
        iv["BCa"] = bca(t, bd, jack)
        hd = f(rows(half_counts(p, draws, rng)))
        hl, hh = np.quantile(hd, [0.025, 0.975])
        iv["half-sampling"] = (t - (hh - hd.mean()), t + (hd.mean() - hl))
        se = fid_influence_se(x, groups, sc["mu_r"], sc["sr"])
        iv["delta"] = (t - Z * se, t + Z * se)
        split = rng.permutation(p) % 10
        sv = f(rows(np.stack([(split == k).astype(float) for k in range(10)])))
        tq = stats.t.ppf(0.975, 9) * sv.std(ddof=1) / math.sqrt(10)
        iv["splits(10)"] = (t - tq, t + tq)
        for k, (lo, hi) in iv.items():
            res.setdefault(k, []).append((lo, hi, t))
    out = {"scenario": {k: sc[k] for k in ("name", "d", "prompts", "seeds", "rho")}, "FD": fd, "E[FID_n]": target_n,
           "bootstrap_draws_above_estimate": float(np.mean(point_below_draws)), "methods": {}}
    for k, v in res.items():
        a = np.array(v)
        out["methods"][k] = {"cover_E[FID_n]": float(np.mean((a[:, 0] <= target_n) & (target_n <= a[:, 1]))),
                             "cover_FD": float(np.mean((a[:, 0] <= fd) & (fd <= a[:, 1]))),
                             "contains_estimate": float(np.mean((a[:, 0] <= a[:, 2]) & (a[:, 2] <= a[:, 1]))),
                             "mean_width": float(np.mean(a[:, 1] - a[:, 0]))}
    out["seconds"] = time.perf_counter() - t0
    return out


def run_kid(sc, reps, draws, seed, n_ref=1000, num_subsets=20):
    rng = np.random.default_rng(seed)
    p, s = sc["prompts"], sc["seeds"]
    ref = rng.multivariate_normal(sc["mu_r"], sc["sr"], n_ref)
    target = kid_target(sc, ref)
    res: dict[str, list] = {}
    for r in range(reps):
        x = draw(sc, rng)
        t = kid_point(x, ref, num_subsets, seed=r)
        kyy = kern(x, x)
        rvec = kern(x, ref).mean(1)
        w = np.repeat(counts(p, draws, rng), s, axis=1).astype(float)
        quad = ((w @ kyy) * w).sum(1)
        diag = np.diag(kyy)
        nn = w.sum(1)
        cross = w @ rvec / nn
        naive = (quad - w @ diag) / (nn * (nn - 1)) - 2 * cross  # resampled rows as a sample: ties count
        ties_out = (quad - (w ** 2) @ diag) / (nn ** 2 - (w ** 2).sum(1)) - 2 * cross
        # the reference-pair term is constant over draws; add the point estimate's to put draws on KID's scale
        const = t - ((kyy.sum() - diag.sum()) / (len(x) * (len(x) - 1)) - 2 * rvec.mean())
        iv = {f"{k} (ties kept)": v for k, v in rules_from_draws(t, naive + const).items()
              if k in ("percentile", "basic+bias")}
        iv.update({f"{k} (ties dropped)": v for k, v in rules_from_draws(t, ties_out + const).items()
                   if k in ("percentile", "basic+bias", "normal")})
        for k, (lo, hi) in iv.items():
            res.setdefault(k, []).append((lo, hi, t))
    out = {"scenario": {k: sc[k] for k in ("name", "d", "prompts", "seeds", "rho")}, "E[KID_n|ref]": target,
           "methods": {}}
    for k, v in res.items():
        a = np.array(v)
        out["methods"][k] = {"cover": float(np.mean((a[:, 0] <= target) & (target <= a[:, 1]))),
                             "contains_estimate": float(np.mean((a[:, 0] <= a[:, 2]) & (a[:, 2] <= a[:, 1]))),
                             "mean_width": float(np.mean(a[:, 1] - a[:, 0]))}
    return out


def run_mean(reps, draws, seed, prompts=200, seeds=2):
    """CLIP-score-like: score = prompt effect (skewed) + seed noise; Metric.bootstrap's percentile interval."""
    rng = np.random.default_rng(seed)
    truth = 30.0 + 2.0  # gamma(2, 1) prompt effect has mean 2
    cov = {"percentile": 0, "basic": 0}
    for _ in range(reps):
        sc = (30 + rng.gamma(2.0, 1.0, prompts)[:, None] + rng.standard_normal((prompts, seeds))).ravel()
        sums = sc.reshape(prompts, seeds).sum(1)
        idx = np.stack([rng.integers(0, prompts, prompts) for _ in range(draws)])
        m = sums[idx].sum(1) / (seeds * prompts)
        iv = rules_from_draws(sc.mean(), m)
        for k in cov:
            cov[k] += iv[k][0] <= truth <= iv[k][1]
    return {k: v / reps for k, v in cov.items()}


def expected_fid_torch(sc, reps, rng, device, chunk=250):
    """E[FID_n] by Monte Carlo on ``device`` (batched; large d)."""
    dev = torch.device(device)
    sr = torch.as_tensor(sc["sr"], dtype=DT, device=dev)
    w, v = torch.linalg.eigh(sr)
    root = (v * w.clamp(min=0).sqrt()) @ v.T
    vals = []
    for _ in range(reps // chunk):
        x = torch.as_tensor(draw(sc, rng, chunk), dtype=DT, device=dev)
        mu = x.mean(1)
        xc = x - mu[:, None]
        s = xc.transpose(1, 2) @ xc / (x.shape[1] - 1)
        ev = torch.linalg.eigvalsh(root @ s @ root).clamp(min=0).sqrt().sum(1)
        vals.append(((mu - torch.as_tensor(sc["mu_r"], dtype=DT, device=dev)) ** 2).sum(1)
                    + s.diagonal(dim1=1, dim2=2).sum(1) + sr.trace() - 2 * ev)
    return float(torch.cat(vals).mean())


def run_harness_fid(sc, reps, draws, truth_reps, device, seed):
    """Coverage of the harness's own FID.bootstrap (basic+bias) and of the percentile interval of its draws."""
    import addbench.metrics.fid as fid_mod
    from addbench.metrics.refstats import RefStats

    class Identity:
        id, input_size = "identity", (8, 8)

        def __call__(self, x):
            return x

    fid_mod.make_resizer = lambda *a, **k: None  # states are set directly: no resizer (nor clean-fid) needed
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    target = expected_fid_torch(sc, truth_reps, rng, device)
    fd = true_fd(sc)
    ref = RefStats(sc["mu_r"], sc["sr"], None, "exact")
    m = fid_mod.FID(device=device, features=Identity())
    p, s = sc["prompts"], sc["seeds"]
    keys = torch.tensor([[i, j] for i in range(p) for j in range(s)])
    rows = []
    for r in range(reps):
        x = torch.as_tensor(draw(sc, rng), dtype=DT)
        x64 = x.to(device)
        m._feats, m._feat_keys, m._given_boot, m._ref = [x.float()], [keys], {}, ref
        m._sum, m._outer, m._count = x64.sum(0), x64.T @ x64, torch.tensor(float(len(x)), dtype=DT)
        vals = m.bootstrap_values(draws, r)
        d_ = np.array([vals[i] for i in range(draws)])
        m._given_boot[(draws, r)] = vals
        lo, hi = m.bootstrap(draws, seed=r)
        rows.append((m.compute(), lo, hi, *np.quantile(d_, [0.025, 0.975]), d_.std()))
    a = np.array(rows)
    cov = lambda lo, hi, t: float(np.mean((lo <= t) & (t <= hi)))
    return {"scenario": {k: sc[k] for k in ("name", "d", "prompts", "seeds", "rho")}, "device": device, "FD": fd,
            "E[FID_n]": target, "sd_of_estimate": float(a[:, 0].std()), "mean_bootstrap_sd": float(a[:, 5].mean()),
            "basic+bias (harness)": {"cover_E[FID_n]": cov(a[:, 1], a[:, 2], target), "cover_FD": cov(a[:, 1], a[:, 2], fd),
                                     "contains_estimate": float(np.mean((a[:, 1] <= a[:, 0]) & (a[:, 0] <= a[:, 2]))),
                                     "mean_width": float(np.mean(a[:, 2] - a[:, 1]))},
            "percentile (before)": {"cover_E[FID_n]": cov(a[:, 3], a[:, 4], target), "cover_FD": cov(a[:, 3], a[:, 4], fd),
                                    "contains_estimate": float(np.mean((a[:, 3] <= a[:, 0]) & (a[:, 0] <= a[:, 4])))},
            "seconds": time.perf_counter() - t0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--truth-reps", type=int, default=20000)
    ap.add_argument("--scenarios", default="far,near,equal")
    ap.add_argument("--shapes", default="32x200x2,64x20x2", help="d x prompts x seeds, comma separated")
    ap.add_argument("--kid", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--harness", default=None, metavar="DEVICE",
                    help="instead: coverage of the harness's FID.bootstrap on DEVICE (cpu, cuda) for --shapes")
    a = ap.parse_args()
    if a.harness:
        out = []
        for shape in a.shapes.split(","):
            d, p, s = map(int, shape.split("x"))
            for k, name in enumerate(a.scenarios.split(",")):
                r = run_harness_fid(scenario(name, d, p, s, seed=k), a.reps, a.draws, a.truth_reps, a.harness, 300 + k)
                out.append(r)
                print(json.dumps(r), flush=True)
        if a.out:
            with open(a.out, "w") as fh:
                json.dump({"reps": a.reps, "draws": a.draws, "harness": out}, fh, indent=1)
        return
    torch.set_num_threads(1)
    results = {"reps": a.reps, "draws": a.draws, "fid": [], "kid": [], "mean": None}
    for shape in a.shapes.split(","):
        d, p, s = map(int, shape.split("x"))
        for k, name in enumerate(a.scenarios.split(",")):
            sc = scenario(name, d, p, s, seed=k)
            r = run_fid(sc, a.reps, a.draws, a.truth_reps, seed=100 + k)
            results["fid"].append(r)
            print(json.dumps({"fid": shape, **{kk: r[kk] for kk in ("FD", "E[FID_n]", "bootstrap_draws_above_estimate")}}))
            for m, v in r["methods"].items():
                print(f"  {m:16s} " + " ".join(f"{kk}={vv:.3f}" for kk, vv in v.items()), flush=True)
            if a.kid and d <= 32:
                kr = run_kid(sc, a.reps, a.draws, seed=200 + k)
                results["kid"].append(kr)
                print(json.dumps({"kid": shape, "target": kr["E[KID_n|ref]"]}))
                for m, v in kr["methods"].items():
                    print(f"  {m:28s} " + " ".join(f"{kk}={vv:.4g}" for kk, vv in v.items()), flush=True)
    results["mean"] = run_mean(a.reps, a.draws, 7)
    print("mean", results["mean"])
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
