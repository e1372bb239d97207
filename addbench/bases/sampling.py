"""One deterministic sampling loop for every family, and the ``Generator`` built on it.

Per sample: noise from ``torch.Generator("cpu").manual_seed(seed)``; timesteps from
``Sampler.timesteps`` or ``addbench.schedules.sampler_timesteps``; each step predicts x0 (with CFG
when ``guidance != 1``) and takes ``schedule.pf_ode_step`` (DDIM for VP, Euler for flow: one formula);
the last step returns x0 (x0 is clamped to ``base.x0_clip`` first when set: pixel-space toy, or a
scheduler with ``clip_sample``; eps is then recomputed from the clamped x0). Decode, clamp, uint8. Samples run in fixed-size micro-batches (the last one
padded), so every sample sees the same kernels and shapes whatever the batch: outputs do not depend
on how prompts were batched or sharded.
"""
from __future__ import annotations

import contextlib
import dataclasses

import torch

from addbench.bases.interface import Base, Generator, Sampler
from addbench.errors import AddbenchError
from addbench.schedules import sampler_timesteps

SOLVERS = ("ddim", "euler")


def initial_noise(seeds: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """(N, *shape) fp32 CPU noise; row i depends only on ``seeds[i]``."""
    out = torch.empty((len(seeds), *shape), dtype=torch.float32)
    for i, seed in enumerate(seeds):
        out[i] = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(seed)), dtype=torch.float32)
    return out


def timesteps_for(base: Base, sampler: Sampler) -> list[float]:
    if sampler.solver not in SOLVERS:
        raise AddbenchError(f"unknown solver {sampler.solver!r}; use one of {', '.join(SOLVERS)}")
    if sampler.timesteps:
        return [float(t) for t in sampler.timesteps]
    return sampler_timesteps(base.schedule, sampler.steps, sampler.spacing)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images (or clips) -> uint8 (like diffusers: round(255 * (x/2 + 0.5)))."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


@torch.no_grad()
def denoise(base: Base, noise: torch.Tensor, cond, sampler: Sampler, network: torch.nn.Module | None = None,
            null=None) -> torch.Tensor:
    """Run the PF-ODE from pure noise ``noise`` (on the device) and return the final x0 latents (fp32)."""
    ts = timesteps_for(base, sampler)
    clip = getattr(base, "x0_clip", None)
    x = noise.float()
    for i, t in enumerate(ts):
        x0 = base.x0(x, t, cond, guidance=sampler.guidance, network=network, null=null).float()
        if clip:
            x0 = x0.clamp(-clip, clip)
        x = x0 if i + 1 == len(ts) else base.schedule.pf_ode_step(x, x0, t, ts[i + 1])
    return x


CPU_THREADS = 2  # CPU kernels round differently with another thread count: pin it while generating


@contextlib.contextmanager
def pinned_threads(device: torch.device):
    """Generate with a fixed intra-op thread count on the CPU, so a single process and torchrun workers
    (OMP_NUM_THREADS=1) write identical images; costs little at the sizes anyone samples on a CPU."""
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(CPU_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def sample(base: Base, prompts: list[str], seeds: list[int], sampler: Sampler | None = None,
           network: torch.nn.Module | None = None, micro_batch: int | None = None) -> torch.Tensor:
    """uint8 (N, 3, H, W) CPU images, one per (prompt, seed); (N, F, 3, H, W) clips for a video base."""
    if len(prompts) != len(seeds):
        raise AddbenchError(f"got {len(prompts)} prompts but {len(seeds)} seeds; pass one seed per prompt")
    sampler = sampler or base.default_sampler
    h = sampler.height or base.default_sampler.height
    w = sampler.width or base.default_sampler.width
    frames = sampler.frames or base.default_sampler.frames or 1
    shape = base.latent_shape(h, w, frames)
    mb = micro_batch or default_micro_batch(base.device, base)
    with pinned_threads(base.device):
        out = _sample_chunks(base, prompts, seeds, sampler, network, mb, shape)
    if out:
        return torch.cat(out)
    return torch.empty((0, frames, 3, h, w) if base.video else (0, 3, h, w), dtype=torch.uint8)


def _sample_chunks(base, prompts, seeds, sampler, network, mb, shape) -> list[torch.Tensor]:
    out = []
    for start in range(0, len(prompts), mb):
        p, s = list(prompts[start:start + mb]), list(seeds[start:start + mb])
        n = len(p)
        p += [p[-1]] * (mb - n)  # pad: every micro-batch has the same shape
        s += [s[-1]] * (mb - n)
        noise = initial_noise(s, shape).to(base.device)
        cond = base.encode_prompts(p)
        x0 = denoise(base, noise, cond, sampler, network)
        out.append(to_uint8(base.decode(x0)[:n]).cpu())
    return out


def default_micro_batch(device: torch.device, base: Base | None = None) -> int:
    """Fixed micro-batch per (base, device type): outputs depend on it (kernel shapes), never on the caller's
    batch. A base sets ``micro_batch_sizes`` (e.g. the 32x32 toy base batches far more than SDXL)."""
    sizes = getattr(base, "micro_batch_sizes", None) or {"cuda": 8, "cpu": 1}
    return int(sizes.get(torch.device(device).type, 1))


class DiffusionGenerator(Generator):
    """``Generator`` over a ``Base`` (+ optional student network and sampler)."""

    def __init__(self, base: Base, sampler: Sampler | None = None, name: str | None = None,
                 model_hash: str = "", base_name: str | None = None, micro_batch: int | None = None):
        self.base = base
        self.sampler = sampler or base.default_sampler
        self.sampler = dataclasses.replace(self.sampler, height=self.sampler.height or base.default_sampler.height,
                                           width=self.sampler.width or base.default_sampler.width,
                                           frames=self.sampler.frames or base.default_sampler.frames)
        self.base_name = base_name or base.name
        self.name = name or f"{self.base_name}@{self.sampler.label}"
        self.fps = getattr(base, "fps", None)  # video bases: frame rate of the clips (Generator contract)
        self.model_hash = model_hash
        self.micro_batch = micro_batch

    @property
    def effective_micro_batch(self) -> int:
        """Samples per network call; callers that batch in multiples of it waste no padding."""
        return self.micro_batch or default_micro_batch(self.base.device, self.base)

    def generate(self, prompts: list[str], seeds: list[int], sampler: Sampler | None = None) -> torch.Tensor:
        return sample(self.base, prompts, seeds, sampler or self.sampler, micro_batch=self.micro_batch)

    def describe(self) -> dict:
        """Adds what changes pixels beyond weights + sampler: micro-batch size (kernel shapes), device, dtype."""
        mb = self.effective_micro_batch
        return {**super().describe(), "micro_batch": mb, "device": str(self.base.device),
                **({"cpu_threads": CPU_THREADS} if self.base.device.type == "cpu" else {}),
                "dtype": str(self.base.dtype).replace("torch.", "")}
