"""FID and KID of generated images against cached reference statistics, with clean-fid's features.

Features and resizing come from :mod:`addbench.metrics.features` (clean-fid's InceptionV3 and clean
resize by default; ``features="open_clip:<spec>"`` for CLIP-feature FID), reference statistics from
:mod:`addbench.metrics.refstats` (computed once, cached by a content key). On a GPU, generated images are
resized in one batched call on the device (:class:`~addbench.metrics.views.TorchResize`): for ``clean``, torch's
antialiased bicubic, which is PIL's float bicubic (clean-fid's resizer) to within 3e-3 of 255 per pixel; for
``legacy_pytorch``, clean-fid's own torch bilinear call. On the CPU (where PIL is ~4x faster than torch's
antialiased kernel), for ``legacy_tensorflow`` and for extractors without a square input size, clean-fid's
per-image resizer runs, as before.

State, reducible across ranks with one all-reduce: ``_sum`` (feature sum, float64), ``_outer`` (sum of
outer products featᵀ·feat, float64), ``_count``. The covariance is the unbiased one (as ``np.cov``).
Per-sample features and their (prompt_index, seed) keys are also kept as "cat" states so ``bootstrap``
can resample prompts and KID can draw subsets.

Intervals (``bootstrap``): prompts resampled with replacement, 1,000 draws, and the "basic+bias" rule of
:mod:`addbench.metrics.intervals` -- an interval for the estimator's mean at this sample size, which contains the
estimate. (The percentile interval used before sat above the estimate: a draw carries FID's O(1/n) bias once more.)
A FID draw is the Fréchet distance of the drawn rows' weighted moments (row weight = how often its prompt was
drawn), with ``Sr^½ S Sr^½`` the weighted scatter of ``Z = X Sr^½``: one eigendecomposition per draw, of that d x d
matrix or of the k x k Gram matrix when the draw has k < d distinct rows; for small features all draws of a chunk
at once, from per-prompt sums. A KID draw is the U-statistic on the drawn prompts, from per-prompt kernel sums
(pairs of two copies of one sample left out: they are not pairs of distinct samples).

Fréchet distance: ``|mu1-mu2|² + tr(S1) + tr(S2) - 2 tr((S1 S2)^½)``. We take ``tr((S1 S2)^½)`` as the sum
of square roots of the eigenvalues of the symmetric PSD matrix ``S2^½ S1 S2^½`` (similar to S1 S2), in
float64 on the metric's device: exact, no complex parts, and fast enough to bootstrap. It agrees with
clean-fid's ``scipy.linalg.sqrtm`` route (tests: 1e-4 relative).

KID: clean-fid's unbiased MMD² with the cubic polynomial kernel ``k(x,y) = (x·y/d + 1)³``, averaged over
``num_subsets`` random subsets of size ``min(n_gen, n_ref, max_subset_size)``, with a seeded generator.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from addbench.errors import AddbenchError
from addbench.metrics import intervals
from addbench.metrics.base import Key, Metric
from addbench.metrics.features import build_extractor, extract, make_resizer
from addbench.metrics.refstats import RefStats, get_reference_stats
from addbench.metrics.views import ImageBatch, TorchResize


def _sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh((m + m.T) / 2)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2, device="cpu", sqrt_sigma2: torch.Tensor | None = None) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), float64 (see module docstring)."""
    t = lambda a: torch.as_tensor(np.asarray(a) if not torch.is_tensor(a) else a, dtype=torch.float64, device=device)
    mu1, sigma1, mu2, sigma2 = t(mu1), t(sigma1), t(mu2), t(sigma2)
    root2 = _sqrt_psd(sigma2) if sqrt_sigma2 is None else sqrt_sigma2
    m = root2 @ sigma1 @ root2
    tr_covmean = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    diff = mu1 - mu2
    return float(diff @ diff + sigma1.trace() + sigma2.trace() - 2 * tr_covmean)


def _weighted_fd(x: torch.Tensor, z: torch.Tensor, w: np.ndarray, mu2: torch.Tensor, tr2: float) -> float:
    """Fréchet distance of the rows of ``x`` taken ``w[i]`` times each (a bootstrap draw) to N(mu2, S2), with
    ``z = x S2^½`` and ``tr2 = tr(S2)``: the moments of the drawn rows (unbiased covariance, as ``torch.cov`` of the
    repeated rows), ``tr((S1 S2)^½)`` from the eigenvalues of the weighted scatter of z, or of its Gram matrix when
    fewer distinct rows than dimensions were drawn (same non-zero eigenvalues, smaller matrix)."""
    sel = np.flatnonzero(w)
    idx = torch.from_numpy(sel).to(x.device)
    ws = torch.as_tensor(w[sel], dtype=torch.float64, device=x.device)
    n = ws.sum()
    xs, zs = x[idx], z[idx]
    mu = ws @ xs / n
    tr1 = (ws * ((xs - mu) ** 2).sum(1)).sum() / (n - 1)
    zc = (zs - ws @ zs / n) * ws.sqrt()[:, None]
    m = (zc @ zc.T if zc.shape[0] < zc.shape[1] else zc.T @ zc) / (n - 1)
    tr_covmean = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    diff = mu - mu2
    return float(diff @ diff + tr1 + tr2 - 2 * tr_covmean)


_BATCH_ELEMS = 2 ** 24  # FID draws are batched when the rows' outer products (n x d²) fit in this many numbers


def _weighted_fd_batch(sums: dict, counts: np.ndarray, mu2: torch.Tensor, tr2: float) -> np.ndarray:
    """``_weighted_fd`` of many draws at once, for small features, from per-prompt sums (``_prompt_sums``) and the
    draws' prompt counts (B x P): the weighted scatters come from one product with the summed outer products (about
    the sample mean, so nothing cancels), then one batched eigendecomposition. Equal to ``_weighted_fd`` to rounding."""
    c = torch.as_tensor(counts, dtype=torch.float64, device=sums["x"].device)
    d = sums["x"].shape[1]
    tot = c @ sums["n"]
    mu = c @ sums["x"] / tot[:, None]
    mx0, mz0 = c @ sums["x0"] / tot[:, None], c @ sums["z0"] / tot[:, None]
    tr1 = (c @ sums["x0sq"] - tot * (mx0 * mx0).sum(1)) / (tot - 1)
    m = (c @ sums["zz"]).view(-1, d, d) - tot[:, None, None] * mz0[:, :, None] * mz0[:, None, :]
    m = m / (tot - 1)[:, None, None]
    tr_covmean = torch.linalg.eigvalsh((m + m.transpose(1, 2)) / 2).clamp(min=0).sqrt().sum(1)
    diff = mu - mu2
    return ((diff * diff).sum(1) + tr1 + tr2 - 2 * tr_covmean).cpu().numpy()


def _prompt_sums(x: torch.Tensor, z: torch.Tensor, row_prompt: torch.Tensor, n_prompts: int) -> dict:
    """Per-prompt sums for ``_weighted_fd_batch``: rows, x and z about their means, |x0|², z0 z0^T (flattened)."""
    x0, z0 = x - x.mean(0), z - z.mean(0)
    d = x.shape[1]

    def total(v):
        return torch.zeros((n_prompts, *v.shape[1:]), dtype=v.dtype, device=v.device).index_add_(0, row_prompt, v)

    return {"n": total(torch.ones(len(x), dtype=x.dtype, device=x.device)), "x": total(x), "x0": total(x0),
            "z0": total(z0), "x0sq": total((x0 * x0).sum(1)),
            "zz": total((z0[:, :, None] * z0[:, None, :]).reshape(len(x), d * d))}


def kernel_distance(gen, ref, num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0,
                    device="cpu") -> float:
    """clean-fid's KID formula (``cleanfid.fid.kernel_distance``) with a seeded generator, float64 on ``device``."""
    gen = torch.as_tensor(np.asarray(gen), dtype=torch.float64, device=device)
    ref = torch.as_tensor(np.asarray(ref), dtype=torch.float64, device=device)
    n = gen.shape[1]
    m = min(gen.shape[0], ref.shape[0], max_subset_size)
    if m < 2:
        raise AddbenchError(f"KID needs at least 2 generated and 2 reference images (have {gen.shape[0]}, {ref.shape[0]})")
    rng = np.random.default_rng(seed)
    t = 0.0
    for _ in range(num_subsets):
        x = ref[torch.from_numpy(rng.choice(ref.shape[0], m, replace=False)).to(device)]
        y = gen[torch.from_numpy(rng.choice(gen.shape[0], m, replace=False)).to(device)]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        t += float((a.sum() - a.diagonal().sum()) / (m - 1) - b.sum() * 2 / m)
    return t / num_subsets / m


def batched_resize(resize: str, size) -> TorchResize | None:
    """The batched on-device resize that stands for clean-fid's ``resize`` mode at a square ``size``, or None."""
    if size is None or resize == "legacy_tensorflow" or size[0] != size[1]:
        return None
    if resize == "clean":
        return TorchResize(tuple(size), "bicubic", antialias=True, clamp=(0.0, 255.0))
    return TorchResize(tuple(size), "bilinear", antialias=False, clamp=(0.0, 255.0))  # legacy_pytorch


class _FeatureSetMetric(Metric):
    """Shared by FID and KID: extractor, resize, reducible feature moments, per-sample features."""

    higher_is_better = False

    def __init__(self, device="cpu", reference=None, features="inception", resize: str = "clean",
                 weights: str | None = None, cache_dir: str | None = None, batch_size: int = 64,
                 num_workers: int = 0, max_boot: int = intervals.DRAWS):
        super().__init__(device)
        self.max_boot = max_boot  # bootstrap draws cap (each FID draw is one DxD eigendecomposition); default: all
        self.resize = resize
        self.extractor = build_extractor(features, self.device, weights, resize)
        self.resizer = make_resizer(resize, self.extractor.input_size)
        # on a GPU one batched resize; on the CPU clean-fid's per-image PIL resizer is the faster one
        self.view = batched_resize(resize, self.extractor.input_size) if self.device.type == "cuda" else None
        self.views = (self.view,) if self.view else ()
        self.reference, self.cache_dir = reference, cache_dir
        self.batch_size, self.num_workers = batch_size, num_workers
        self._ref: RefStats | None = None
        self._given_boot: dict = {}
        self.add_state("_sum", torch.zeros(0, dtype=torch.float64), "sum")
        self.add_state("_outer", torch.zeros(0, 0, dtype=torch.float64), "sum")
        self.add_state("_count", torch.zeros((), dtype=torch.float64), "sum")
        self.add_state("_feats", torch.zeros(0), "cat")
        self.add_state("_feat_keys", torch.zeros(0, dtype=torch.long), "cat")

    ci_method = intervals.BASIC_BIAS

    def ci_draws(self, n_boot: int) -> int:
        return min(n_boot, self.max_boot)

    def convention(self) -> str:
        return f"{self.extractor.id},{self.resize}"

    def weight_files(self) -> list[tuple[str, Path]]:
        """(role, file) of the feature extractor's weights (a custom extractor may list its own)."""
        return list(getattr(self.extractor, "weight_files", ()))

    def provenance(self) -> dict:
        return {**super().provenance(), "features": self.extractor.id, "resize": self.resize,
                "reference": None if self._ref is None else self._ref.source}

    def update(self, images: torch.Tensor, prompts: list[str], keys: list[Key]) -> None:
        self.update_batch(ImageBatch(images, self.device), prompts, keys)

    @torch.no_grad()
    def _extract(self, batch: ImageBatch) -> torch.Tensor:
        """Features (N, D) float32 (on the device when the view path runs, else on the CPU)."""
        if self.view is None:
            return extract(batch.images, self.extractor, self.resizer, self.batch_size)
        x = batch.get(self.view)
        if not hasattr(self.extractor, "device"):  # a custom extractor object: hand it CPU tensors, as before
            x = x.cpu()
        return torch.cat([torch.as_tensor(self.extractor(x[i:i + self.batch_size])).detach().float()
                          for i in range(0, x.shape[0], self.batch_size)])

    def update_batch(self, batch: ImageBatch, prompts: list[str], keys: list[Key]) -> None:
        if len(keys) != len(batch):
            raise AddbenchError(f"{self.name}: {len(batch)} images but {len(keys)} keys")
        f = self._extract(batch)
        f64 = f.to(self.device, torch.float64)
        f = f.cpu()
        if self._sum.numel() == 0:  # feature width is known at the first batch
            self._sum = torch.zeros(f.shape[1], dtype=torch.float64, device=self.device)
            self._outer = torch.zeros(f.shape[1], f.shape[1], dtype=torch.float64, device=self.device)
        self._sum += f64.sum(0)
        self._outer += f64.T @ f64
        self._count += f.shape[0]
        self._n += f.shape[0]
        self._feats.append(f)
        self._feat_keys.append(torch.tensor([list(k) for k in keys], dtype=torch.long).view(-1, 2))

    # ---- helpers -------------------------------------------------------------------------------
    def reference_stats(self) -> RefStats:
        if self._ref is None:
            self._ref = get_reference_stats(self.reference, self.extractor, self.resize, self.cache_dir,
                                            self.batch_size, self.num_workers)
        return self._ref

    def features(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All per-sample features (N, D) and keys (N, 2) held so far (after ``sync``: of every rank)."""
        if not self._feats:
            raise AddbenchError(f"{self.name}: no images were scored")
        return torch.cat(self._feats), torch.cat(self._feat_keys)

    def _draw_rows(self, n_boot: int, seed: int) -> list[np.ndarray]:
        """Feature rows of each bootstrap draw of prompts (all seeds of a drawn prompt, in draw order, with
        repeats); the draws are the same as ``Metric.resample_prompts`` makes."""
        _, keys = self.features()
        prompts = keys[:, 0].numpy()
        order = np.argsort(prompts, kind="stable")  # a prompt's rows, ascending, are one block
        uniq, starts, counts = np.unique(prompts[order], return_index=True, return_counts=True)
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(n_boot):
            sel = rng.integers(0, len(uniq), len(uniq))
            c = counts[sel]
            out.append(order[np.repeat(starts[sel] - np.cumsum(c) + c, c) + np.arange(c.sum())])
        return out

    def _prompt_index(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted prompt ids, each feature row's index into them)."""
        prompts = self.features()[1][:, 0].numpy()
        uniq = np.unique(prompts)
        return uniq, np.searchsorted(uniq, prompts)

    def sync(self) -> None:
        """A rank that scored nothing still has empty moment states: size them before the all-reduce."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dim = torch.tensor([self._sum.numel()], device="cuda" if dist.get_backend() == "nccl" else "cpu")
            dist.all_reduce(dim, op=dist.ReduceOp.MAX)
            d = int(dim.item())
            if self._sum.numel() == 0 and d:
                self._sum = torch.zeros(d, dtype=torch.float64, device=self.device)
                self._outer = torch.zeros(d, d, dtype=torch.float64, device=self.device)
        super().sync()


class FID(_FeatureSetMetric):
    """Fréchet distance of generated-image features to the reference statistics (lower is better)."""

    name = "fid"

    def gen_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = float(self._count)
        if n < 2:
            raise AddbenchError(f"fid needs at least 2 images (have {int(n)})")
        mu = self._sum / n
        sigma = (self._outer - n * torch.outer(mu, mu)) / (n - 1)
        return mu, sigma

    def compute(self) -> float:
        ref = self.reference_stats()
        mu, sigma = self.gen_moments()
        if mu.shape[0] != ref.mu.shape[0]:
            raise AddbenchError(f"fid: features have {mu.shape[0]} dims, reference stats {ref.source} "
                                f"{ref.mu.shape[0]}; the stats were made with another extractor")
        return frechet_distance(mu, sigma, ref.mu, ref.sigma, self.device)

    def bootstrap_values(self, n_boot: int, seed: int = 0, part: tuple[int, int] = (0, 1)) -> dict[int, float]:
        """FID of bootstrap draws ``i`` with ``i % part[1] == part[0]`` (ranks split the draws; a draw's value
        does not depend on the split): the drawn rows' weighted moments against the reference, on the device."""
        ref = self.reference_stats()
        mu2 = torch.as_tensor(ref.mu, dtype=torch.float64, device=self.device)
        sigma2 = torch.as_tensor(ref.sigma, dtype=torch.float64, device=self.device)
        x = self.features()[0].to(self.device, torch.float64)
        z = x @ _sqrt_psd(sigma2)  # rows x Sr^½: Sr^½ S Sr^½ is the weighted scatter of z
        tr2 = float(sigma2.trace())
        uniq, row_prompt = self._prompt_index()
        n, d = x.shape
        batched = n * d * d <= _BATCH_ELEMS  # small features: all draws of a chunk at once
        if batched:
            sums = _prompt_sums(x, z, torch.from_numpy(row_prompt).to(self.device), len(uniq))
        out = {}
        chunk = max(1, min(256, _BATCH_ELEMS // (d * d)))
        for first, counts in intervals.prompt_count_chunks(len(uniq), n_boot, seed, chunk):
            ids = np.arange(first, first + len(counts))
            keep = ids % part[1] == part[0]
            if batched and keep.any():
                out.update(zip(ids[keep].tolist(), _weighted_fd_batch(sums, counts[keep], mu2, tr2).tolist()))
            elif keep.any():  # one draw at a time: one d x d (or k x k) eigendecomposition each
                out.update({int(i): _weighted_fd(x, z, c[row_prompt], mu2, tr2)
                            for i, c in zip(ids[keep], counts[keep])})
        return out

    def bootstrap(self, n_boot: int = intervals.DRAWS, seed: int = 0,
                  alpha: float = 1 - intervals.LEVEL) -> tuple[float, float] | None:
        """95% interval for E[FID_n] over prompts: ``intervals.basic_bias_interval`` of min(n_boot, max_boot) draws
        (lower end clipped at 0), containing ``compute()``. A draw costs one eigendecomposition of a d x d (or k x k,
        k distinct rows < d) matrix; small features (n d² <= 2^24) go in batches. 1,000 draws took 57 s on one CPU
        thread at toy-2k's size (2,000 x 512-d; the 200 draws of the old route took 34 s) and 5 s at the toy suite's
        (320 x 512-d: Gram route), ``benchmarks/interval_cost.py``.
        Values handed over by ``set_bootstrap_values`` (the runner splits the draws over its ranks) are used when
        they are for the same draws."""
        if not self._feats:
            return None
        n = self.ci_draws(n_boot)
        values = self._given_boot.get((n, seed)) or self.bootstrap_values(n, seed)
        return intervals.basic_bias_interval([values[i] for i in range(n)], self.compute(), alpha, lower=0.0)

    def set_bootstrap_values(self, n_boot: int, seed: int, values: dict[int, float]) -> None:
        self._given_boot[(min(n_boot, self.max_boot), seed)] = dict(values)


class KID(_FeatureSetMetric):
    """Kernel inception distance (clean-fid's formula) to the reference features (lower is better)."""

    name = "kid"

    def __init__(self, device="cpu", num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0, **kwargs):
        super().__init__(device, **kwargs)
        self.num_subsets, self.max_subset_size, self.seed = num_subsets, max_subset_size, seed

    def convention(self) -> str:
        return f"{super().convention()},subsets={self.num_subsets}x{self.max_subset_size}"

    def _ref_feats(self) -> np.ndarray:
        ref = self.reference_stats()
        if ref.feats is None:
            raise AddbenchError(f"kid needs per-image reference features; {ref.source} has only mu/sigma "
                                "(point reference= at the reference images instead)")
        return ref.feats

    def compute(self) -> float:
        return kernel_distance(self.features()[0].numpy(), self._ref_feats(), self.num_subsets,
                               self.max_subset_size, self.seed, self.device)

    def bootstrap_values(self, n_boot: int, seed: int = 0, chunk_draws: int = 128) -> np.ndarray:
        """The generator-dependent part of KID's U-statistic, ``U_gg - 2 mean k(ref, gen)``, on each draw of prompts
        (the reference-pair term is the same in every draw; ``basic_bias_interval`` uses only the draws' spread
        about their mean). From per-prompt sums of the kernel: ``K_p[p, q]`` (gen-gen), ``t_p`` (its diagonal: a
        sample with itself), ``r_p`` (mean kernel to the reference features). A draw with prompt counts ``c`` has
        ``U_gg = (c K_p c - sum c_p² t_p) / (N² - sum c_p² s_p)``: ordered pairs of distinct samples, where two copies
        of one sample are not distinct (``s_p`` seeds of prompt p, ``N = c . s``). The subsets of the point estimate
        are not redrawn: their Monte Carlo noise (100 subsets) is small next to the spread over prompts."""
        dev = self.device
        y = self.features()[0].to(dev, torch.float64)
        ref = torch.as_tensor(np.asarray(self._ref_feats()), dtype=torch.float64, device=dev)
        n, d = y.shape
        uniq, row_prompt = self._prompt_index()
        g = torch.from_numpy(row_prompt).to(dev)
        p = len(uniq)
        kp = torch.zeros(p, p, dtype=torch.float64, device=dev)
        tie = torch.zeros(p, dtype=torch.float64, device=dev)
        rsum = torch.zeros(p, dtype=torch.float64, device=dev)
        seeds = torch.bincount(g, minlength=p).to(torch.float64)
        step = max(1, 2 ** 22 // max(n, ref.shape[0]))
        for s in range(0, n, step):
            yc, gc = y[s:s + step], g[s:s + step]
            k = (yc @ y.T / d + 1) ** 3
            kp.index_add_(0, gc, torch.zeros(len(yc), p, dtype=torch.float64, device=dev).index_add_(1, g, k))
            tie.index_add_(0, gc, k[torch.arange(len(yc), device=dev), torch.arange(s, s + len(yc), device=dev)])
            rsum.index_add_(0, gc, ((yc @ ref.T / d + 1) ** 3).mean(1))
        out = []
        for _, counts in intervals.prompt_count_chunks(p, n_boot, seed, chunk_draws):
            c = torch.as_tensor(counts, dtype=torch.float64, device=dev)
            nw, c2 = c @ seeds, c * c
            u = (((c @ kp) * c).sum(1) - c2 @ tie) / (nw * nw - c2 @ seeds)
            out.append((u - 2 * (c @ rsum) / nw).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def bootstrap(self, n_boot: int = intervals.DRAWS, seed: int = 0,
                  alpha: float = 1 - intervals.LEVEL) -> tuple[float, float] | None:
        """95% interval for E[KID_n | reference features] over prompts: ``intervals.basic_bias_interval`` of
        min(n_boot, max_boot) draws of ``bootstrap_values``, containing ``compute()``."""
        if not self._feats:
            return None
        return intervals.basic_bias_interval(self.bootstrap_values(self.ci_draws(n_boot), seed), self.compute(), alpha)
