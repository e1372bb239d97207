"""Metric base class: reducible states (torchmetrics' idea, without the dependency).

A metric declares its state with ``add_state(name, default, reduce)`` where reduce is ``"sum"``
(all-reduced across ranks) or ``"cat"`` (gathered and concatenated). ``update`` consumes a batch of
uint8 images with their prompts and sample keys; ``compute`` returns one float. Per-sample metrics
(CLIP score, PickScore, ...) also keep one score per sample so the runner can write per-sample
results and bootstrap confidence intervals over prompts; set-level metrics (FID, KID, diversity)
override :meth:`bootstrap`. Which interval each metric reports, and why: :mod:`addbench.metrics.intervals`;
``ci_info`` says it in the record (method, draws, level, unit).

Contract with the eval runner
-----------------------------
* ``update(images, prompts, keys)``: images uint8 (N, 3, H, W) CPU tensor; prompts list[str];
  keys list[(prompt_index, seed)]. Grouped metrics (``grouped = True``) receive all seeds of a prompt
  in one call.
* ``update_batch(batch, prompts, keys)``: the same from an :class:`~addbench.metrics.views.ImageBatch`, which
  the runner shares between all metrics so each resize (``batch.get(view)``) is computed once; a metric lists
  the views it reads in ``views`` (the runner starts CPU views early). Default: ``update(batch.images, ...)``.
* after all updates on every rank: ``sync()`` (no-op without torch.distributed), then
  ``compute()`` / ``per_sample()`` / ``bootstrap()`` on rank 0.
* ``id`` names the metric with its backbone and convention, e.g. ``clip_score[ViT-g-14/laion2b_s34b_b88k,x100]``.
  The matmul precision is the suite's (``metric_precision``, in its config hash and the record), not the id's: ids
  stay comparable with published tables; ``addbench leaderboard`` labels a run scored off its suite's precision.
* ``update_in_precision`` is what the runner calls: ``update_batch`` under :func:`matmul_precision`.
"""
from __future__ import annotations

import contextlib
from typing import ClassVar

import numpy as np
import torch
import torch.distributed as dist

from addbench.metrics import intervals
from addbench.suites import METRIC_PRECISIONS as PRECISIONS  # the suite owns the convention

Key = tuple[int, int]  # (prompt_index, seed)


@contextlib.contextmanager
def matmul_precision(precision: str):
    """fp32 matmuls of the metric networks: ``fp32`` exact, ``tf32`` on TF32 tensor cores (GPUs that have them;
    a no-op on the CPU). A process-wide switch (``torch.backends.cuda.matmul.allow_tf32``), restored on exit.
    cuDNN convolutions follow PyTorch's default (TF32 allowed) under both, as clean-fid's Inception always has."""
    if precision not in PRECISIONS:
        raise ValueError(f"metric precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


class Metric:
    name: ClassVar[str] = "metric"
    higher_is_better: ClassVar[bool] = True
    grouped: ClassVar[bool] = False  # needs every seed of a prompt in the same update call
    views: tuple = ()  # shared image views (addbench.metrics.views) that update_batch reads
    precision: str = "fp32"  # the suite's metric_precision (set by the runner's build_metrics)

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self._defaults: dict[str, tuple[torch.Tensor, str]] = {}
        self.keys: list[Key] = []
        self.scores: list[float] = []  # per-sample (or per-prompt for grouped metrics), aligned with keys
        self.add_state("_n", torch.zeros((), dtype=torch.float64), "sum")

    # ---- identity ------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        conv = self.convention()
        return f"{self.name}[{conv}]" if conv else self.name

    def convention(self) -> str:
        """Backbone + convention string that goes into the id (override)."""
        return ""

    def provenance(self) -> dict:
        return {"id": self.id, "name": self.name, "higher_is_better": self.higher_is_better}

    # ---- state ---------------------------------------------------------------------------------
    def add_state(self, name: str, default: torch.Tensor, reduce: str) -> None:
        if reduce not in ("sum", "cat"):
            raise ValueError("reduce must be 'sum' or 'cat'")
        self._defaults[name] = (default.clone(), reduce)
        setattr(self, name, default.clone() if reduce == "sum" else [])

    def reset(self) -> None:
        for name, (default, reduce) in self._defaults.items():
            setattr(self, name, default.clone() if reduce == "sum" else [])
        self.keys, self.scores = [], []

    def update(self, images: torch.Tensor, prompts: list[str], keys: list[Key]) -> None:
        raise NotImplementedError

    def update_batch(self, batch, prompts: list[str], keys: list[Key]) -> None:
        """``update`` from a shared ``ImageBatch`` (views computed once for all metrics); override to read views."""
        self.update(batch.images, prompts, keys)

    def update_in_precision(self, batch, prompts: list[str], keys: list[Key]) -> None:
        """``update_batch`` with the fp32 matmuls in this metric's ``precision``."""
        with matmul_precision(self.precision):
            self.update_batch(batch, prompts, keys)

    def compute(self) -> float:
        raise NotImplementedError

    def _record(self, keys: list[Key], scores) -> None:
        scores = [float(s) for s in torch.as_tensor(scores).flatten().tolist()]
        assert len(keys) == len(scores), (len(keys), len(scores))
        self.keys.extend(keys)
        self.scores.extend(scores)
        self._n += len(scores)

    def sync(self) -> None:
        """All-reduce "sum" states and gather "cat" states + per-sample scores across ranks."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            for name, (_, reduce) in self._defaults.items():
                if reduce == "cat":
                    setattr(self, name, [torch.cat(getattr(self, name))] if getattr(self, name) else [])
            return
        for name, (_, reduce) in self._defaults.items():
            value = getattr(self, name)
            if reduce == "sum":
                backend_dev = "cuda" if dist.get_backend() == "nccl" else "cpu"
                t = value.to(backend_dev)
                dist.all_reduce(t)
                setattr(self, name, t.to(value.device))
            else:
                local = torch.cat(value).cpu() if value else None
                gathered = [None] * dist.get_world_size()
                dist.all_gather_object(gathered, local)
                parts = [g for g in gathered if g is not None]
                setattr(self, name, [torch.cat(parts)] if parts else [])
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, (self.keys, self.scores))
        order = sorted((k, s) for ks, ss in gathered for k, s in zip(ks, ss))
        self.keys = [tuple(k) for k, _ in order]
        self.scores = [s for _, s in order]

    # ---- per-sample results and confidence intervals --------------------------------------------
    ci_method: ClassVar[str] = intervals.PERCENTILE  # the rule ``bootstrap`` uses (addbench.metrics.intervals)

    def ci_draws(self, n_boot: int) -> int:
        """How many bootstrap draws ``bootstrap(n_boot)`` makes."""
        return n_boot

    def ci_info(self, n_boot: int = intervals.DRAWS, alpha: float = 1 - intervals.LEVEL) -> dict:
        """What record.json stores next to ``ci95``: ``{"method", "draws", "level", "unit"}``."""
        return intervals.ci_info(self.ci_method, self.ci_draws(n_boot), alpha)

    def per_sample(self) -> dict[Key, float] | None:
        """Per-sample (or per-prompt, key seed = -1) scores, or None for set-level metrics."""
        if not self.scores:
            return None
        return dict(zip(self.keys, self.scores))

    def bootstrap(self, n_boot: int = intervals.DRAWS, seed: int = 0,
                  alpha: float = 1 - intervals.LEVEL) -> tuple[float, float] | None:
        """95% CI of the mean over prompts: resample prompts with replacement, average their samples; the
        percentile interval of those means, widened to reach the mean itself should it fall outside."""
        if not self.scores:
            return None
        by_prompt: dict[int, list[float]] = {}
        for (p, _), s in zip(self.keys, self.scores):
            by_prompt.setdefault(p, []).append(s)
        prompt_ids = sorted(by_prompt)
        sums = np.array([sum(by_prompt[p]) for p in prompt_ids])
        counts = np.array([len(by_prompt[p]) for p in prompt_ids])
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(prompt_ids), size=(n_boot, len(prompt_ids)))
        means = sums[idx].sum(1) / counts[idx].sum(1)
        return intervals.percentile_interval(means, float(sums.sum() / counts.sum()), alpha)

    def resample_prompts(self, n_boot: int, seed: int) -> list[np.ndarray]:
        """Bootstrap draws of prompt indices, shared by set-level metrics' ``bootstrap``."""
        prompts = np.array(sorted({p for p, _ in self.keys}))
        rng = np.random.default_rng(seed)
        return [prompts[rng.integers(0, len(prompts), len(prompts))] for _ in range(n_boot)]
