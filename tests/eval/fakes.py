"""A deterministic fake generator and fake metrics, so the harness is tested without real models."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from addbench.bases.interface import Generator, Sampler
from addbench.metrics.base import Metric
from addbench.registry import METRICS


class FakeGenerator(Generator):
    """Pixels drawn from (prompt, seed, steps): same pair -> same image whatever the batch."""

    def __init__(self, size: int = 16, steps: int = 4):
        self.name = "fake@test"
        self.model_hash = "f" * 64
        self.sampler = Sampler(steps=steps)
        self.base_name = "fake"
        self.calls = 0

    def generate(self, prompts, seeds, sampler=None):
        sampler = sampler or self.sampler
        self.calls += len(prompts)
        out = []
        for p, s in zip(prompts, seeds):
            h = int.from_bytes(hashlib.sha256(f"{p}|{s}|{sampler.steps}".encode()).digest()[:8], "little")
            rng = np.random.default_rng(h)
            out.append(torch.from_numpy(rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)))
        return torch.stack(out)


class FakeBrightness(Metric):
    """Per-sample mean pixel value / 255 (higher = brighter)."""
    name = "fake_brightness"

    def __init__(self, device="cpu", scale: float = 1.0):
        super().__init__(device)
        self.scale = scale

    def convention(self):
        return f"x{self.scale:g}"

    def update(self, images, prompts, keys):
        self._record(keys, images.float().mean(dim=(1, 2, 3)) / 255 * self.scale)

    def compute(self):
        return float(np.mean(self.scores))


class FakeChannelGap(Metric):
    """Set-level: |mean red - mean blue| over all pixels, with sum states (lower better)."""
    name = "fake_gap"
    higher_is_better = False

    def __init__(self, device="cpu"):
        super().__init__(device)
        self.add_state("sum_rgb", torch.zeros(3, dtype=torch.float64), "sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), "sum")
        self.add_state("feats", torch.zeros(0), "cat")

    def update(self, images, prompts, keys):
        x = images.double()
        self.sum_rgb += x.sum(dim=(0, 2, 3))
        self.count += x.shape[0] * x.shape[2] * x.shape[3]
        self.feats.append(x.mean(dim=(2, 3)).float())
        self._n += len(keys)

    def compute(self):
        m = self.sum_rgb / self.count
        return float((m[0] - m[2]).abs())

    def per_sample(self):
        return None

    def bootstrap(self, n_boot=1000, seed=0, alpha=0.05):
        return None


class FakeDiversity(Metric):
    """Grouped: mean absolute pixel difference between the seeds of a prompt (per prompt, key seed -1)."""
    name = "fake_diversity"
    grouped = True

    def update(self, images, prompts, keys):
        by_p: dict[int, list[torch.Tensor]] = {}
        for img, (p, _) in zip(images, keys):
            by_p.setdefault(p, []).append(img.float())
        for p, imgs in by_p.items():
            diffs = [(a - b).abs().mean() for i, a in enumerate(imgs) for b in imgs[i + 1:]]
            self._record([(p, -1)], [float(torch.stack(diffs).mean()) / 255 if diffs else 0.0])

    def compute(self):
        return float(np.mean(self.scores))


class FakeViewMean(Metric):
    """Per-sample mean of a shared view (PIL resize to 8²) x ``scale``: two of these share one resize per image."""
    name = "fake_view_mean"

    def __init__(self, device="cpu", scale: float = 1.0):
        super().__init__(device)
        from addbench.metrics.views import PilResize

        self.scale = scale
        self.views = (PilResize(8),)

    def convention(self):
        return f"x{self.scale:g}"

    def update(self, images, prompts, keys):
        from addbench.metrics.views import ImageBatch

        self.update_batch(ImageBatch(images, self.device), prompts, keys)

    def update_batch(self, batch, prompts, keys):
        self._record(keys, batch.get(self.views[0]).float().mean(dim=(1, 2, 3)) * self.scale)

    def compute(self):
        return float(np.mean(self.scores))


class FakeSlowLoad(FakeBrightness):
    """Takes ``seconds`` to load (like a large network), then scores like fake_brightness; records when it loaded."""
    name = "fake_slow_load"
    loaded_at: list = []

    def __init__(self, device="cpu", seconds: float = 0.5, fail: bool = False):
        import time

        time.sleep(seconds)
        if fail:
            from addbench.errors import AddbenchError

            raise AddbenchError("fake_slow_load: weights file /nope/weights.bin not found")
        super().__init__(device)
        FakeSlowLoad.loaded_at.append(time.perf_counter())


def register() -> None:
    for name, cls in (("fake_brightness", "FakeBrightness"), ("fake_gap", "FakeChannelGap"),
                      ("fake_diversity", "FakeDiversity"), ("fake_view_mean", "FakeViewMean"),
                      ("fake_slow_load", "FakeSlowLoad")):
        if name not in METRICS:
            METRICS.register(name, f"fakes:{cls}", "test metric")


SUITE_YAML = """
name: fake-suite
version: 1
description: fake suite for harness tests
prompts:
  name: fake-prompts
  format: inline
  items: [a red cube, a blue ball, two green cats, a yellow sun, an orange fox, a purple hat, a grey cloud]
seeds: [0, 1, 2]
resolution: 8
metrics:
  - name: fake_brightness
    kwargs: {scale: 100}
  - fake_gap
  - fake_diversity
"""


# ---- fixtures shared by tests/eval and tests/cli (imported into both conftests) -------------------------
@pytest.fixture
def fake_suite(tmp_path):
    register()
    path = tmp_path / "fake-suite.yaml"
    path.write_text(SUITE_YAML)
    return path


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ADDBENCH_CACHE", str(tmp_path / "cache"))
