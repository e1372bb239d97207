"""Cost of the FID / KID bootstrap intervals at toy-2k size: 2,000 samples (500 prompts x 4 seeds), 512-d features,
10,000 reference features; and at the toy suite's size (160 prompts x 2 seeds). Synthetic features; the metric
objects are the harness's (``FID.bootstrap``, ``KID.bootstrap``), fed their states directly.

    OMP_NUM_THREADS=1 python benchmarks/interval_cost.py --device cpu --draws 1000
    python benchmarks/interval_cost.py --device cuda --draws 1000
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from addbench.metrics.fid import FID, KID, _sqrt_psd, frechet_distance
from addbench.metrics.refstats import RefStats


class Identity:
    """Stand-in extractor (never called: the states are set directly)."""

    id, input_size = "identity", (8, 8)

    def __call__(self, x):
        return x


def metric(cls, device, prompts=500, seeds=4, d=512, n_ref=10000):
    import addbench.metrics.fid as fid_mod

    fid_mod.make_resizer = lambda *a, **k: None  # states are set directly: no resizer (nor clean-fid) needed
    g = torch.Generator().manual_seed(0)
    a = torch.randn(d, d, generator=g) / d ** 0.5
    ref = (torch.randn(n_ref, d, generator=g) @ a).double().numpy()
    n = prompts * seeds
    x = (torch.randn(n, d, generator=g) @ (1.1 * a) + 0.05).float()
    m = cls(device=device, features=Identity())
    m._feats, m._feat_keys = [x], [torch.tensor([[i // seeds, i % seeds] for i in range(n)])]
    x64 = x.to(device, torch.float64)
    m._sum, m._outer, m._count = x64.sum(0), x64.T @ x64, torch.tensor(float(n), dtype=torch.float64)
    m._ref = RefStats(ref.mean(0), np.cov(ref.T), ref.astype(np.float32), "synthetic")
    return m


def timed(fn, device):
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--kid", action="store_true", help="also time KID (its kernel sums against 10,000 references)")
    a = ap.parse_args()
    dev = a.device
    res = {"device": torch.cuda.get_device_name() if dev == "cuda" else "cpu", "torch_threads": torch.get_num_threads(),
           "draws": a.draws}
    m = metric(FID, dev)
    # the weighted-moment route equals the rows-gathered route (torch.cov + frechet_distance) it replaced
    ref = m.reference_stats()
    mu2, s2 = (torch.as_tensor(v, dtype=torch.float64, device=dev) for v in (ref.mu, ref.sigma))
    root, feats = _sqrt_psd(s2), m.features()[0].to(dev, torch.float64)
    rows = [torch.from_numpy(r).to(dev) for r in m._draw_rows(5, 0)]
    old = [frechet_distance(feats[r].mean(0), torch.cov(feats[r].T), mu2, s2, dev, root) for r in rows]
    new = m.bootstrap_values(5, 0)
    res["fid_max_rel_diff_vs_rows_route"] = max(abs(new[i] - old[i]) / old[i] for i in range(5))
    timed(lambda: m.bootstrap_values(3, 1), dev)  # warm-up
    (lo, hi), s = timed(lambda: m.bootstrap(a.draws), dev)
    res["toy2k_fid"] = {"value": m.compute(), "ci95": [lo, hi], "seconds": s}
    small = metric(FID, dev, prompts=160, seeds=2, n_ref=5000)
    (lo, hi), s = timed(lambda: small.bootstrap(a.draws), dev)
    res["toy_fid"] = {"value": small.compute(), "ci95": [lo, hi], "seconds": s}
    if a.kid:
        k = metric(KID, dev)
        (lo, hi), s = timed(lambda: k.bootstrap(a.draws), dev)
        v, s2_ = timed(k.compute, dev)
        res["toy2k_kid"] = {"value": v, "ci95": [lo, hi], "bootstrap_seconds": s, "compute_seconds": s2_}
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
