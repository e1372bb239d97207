"""A deterministic fake video generator: tiny videos drawn from (prompt, seed), whatever the batch."""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from addbench.bases.interface import Generator, Sampler


class FakeVideoGenerator(Generator):
    """uint8 (N, F, 3, H, W): a smooth random image drifting a little each frame (so flicker is small)."""

    def __init__(self, frames: int = 8, size: int = 64, steps: int = 4, fps: int = 8):
        self.name = "fakevideo@test"
        self.model_hash = "v" * 64
        self.sampler = Sampler(steps=steps, frames=frames, height=size, width=size)
        self.base_name = "fake-video"
        self.fps = fps
        self.calls = 0

    def generate(self, prompts, seeds, sampler=None):
        s = sampler or self.sampler
        self.calls += len(prompts)
        out = []
        for p, seed in zip(prompts, seeds):
            h = int.from_bytes(hashlib.sha256(f"{p}|{seed}|{s.steps}".encode()).digest()[:8], "little")
            rng = np.random.default_rng(h)
            base = rng.integers(40, 216, (3, 8, 8)).astype(np.float32)
            img = np.kron(base, np.ones((s.height // 8, s.width // 8), np.float32))  # blocks survive H.264
            drift = rng.normal(0, 4, (s.frames, 3, 1, 1)).cumsum(0)
            video = np.clip(img[None] + drift, 0, 255).astype(np.uint8)
            out.append(torch.from_numpy(video))
        return torch.stack(out)
