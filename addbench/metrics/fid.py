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

Fréchet distance: ``|mu1-mu2|² + tr(S1) + tr(S2) - 2 tr((S1 S2)^½)``. We take ``tr((S1 S2)^½)`` as the sum
of square roots of the eigenvalues of the symmetric PSD matrix ``S2^½ S1 S2^½`` (similar to S1 S2), in
float64 on the metric's device: exact, no complex parts, and fast enough to bootstrap. It agrees with
clean-fid's ``scipy.linalg.sqrtm`` route (tests: 1e-4 relative).

KID: clean-fid's unbiased MMD² with the cubic polynomial kernel ``k(x,y) = (x·y/d + 1)³``, averaged over
``num_subsets`` random subsets of size ``min(n_gen, n_ref, max_subset_size)``, with a seeded generator.
"""
from __future__ import annotations

import numpy as np
import torch

from addbench.errors import AddbenchError
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
                 num_workers: int = 0, max_boot: int = 200):
        super().__init__(device)
        self.max_boot = max_boot  # bootstrap draws cap: each FID draw is one DxD eigendecomposition
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

    def convention(self) -> str:
        return f"{self.extractor.id},{self.resize}"

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

    def _resampled(self, n_boot: int, seed: int):
        """Yield feature matrices (CPU) of the bootstrap draws of ``_draw_rows``."""
        feats = self.features()[0]
        for rows in self._draw_rows(n_boot, seed):
            yield feats[rows]

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
        does not depend on the split). Features stay on the device; each draw gathers its rows there."""
        ref = self.reference_stats()
        mu2 = torch.as_tensor(ref.mu, dtype=torch.float64, device=self.device)
        sigma2 = torch.as_tensor(ref.sigma, dtype=torch.float64, device=self.device)
        root = _sqrt_psd(sigma2)
        feats = self.features()[0].to(self.device, torch.float64)
        out = {}
        for i, rows in enumerate(self._draw_rows(n_boot, seed)):
            if i % part[1] == part[0]:
                f = feats[torch.from_numpy(rows).to(self.device)]
                out[i] = frechet_distance(f.mean(0), torch.cov(f.T), mu2, sigma2, self.device, root)
        return out

    def bootstrap(self, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float] | None:
        """Percentile CI of FID over prompts resampled with replacement (reference stats held fixed), with
        min(n_boot, max_boot) draws: each costs one DxD eigendecomposition (2048² float64: ~0.1 s on a GPU,
        seconds on a CPU). Values handed over by ``set_bootstrap_values`` (the runner splits the draws
        over its ranks) are used when they are for the same draws."""
        if not self._feats:
            return None
        n = min(n_boot, self.max_boot)
        values = self._given_boot.get((n, seed)) or self.bootstrap_values(n, seed)
        lo, hi = np.quantile([values[i] for i in range(n)], [alpha / 2, 1 - alpha / 2])
        return float(lo), float(hi)

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

    def bootstrap(self, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float] | None:
        """Percentile CI of KID over prompts resampled with replacement, min(n_boot, max_boot) draws."""
        if not self._feats:
            return None
        ref = self._ref_feats()
        values = [kernel_distance(f.numpy(), ref, self.num_subsets, self.max_subset_size, self.seed + i, self.device)
                  for i, f in enumerate(self._resampled(min(n_boot, self.max_boot), seed))]
        lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
        return float(lo), float(hi)
