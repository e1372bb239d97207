"""Points from a unit-world model (the ``gmm`` teacher or a checkpoint trained on it) with the project's sampler.

:func:`sample_points` is ``addbench.bases.sampling.denoise`` (the DDIM / Euler loop every base uses) from the
per-seed noise of ``initial_noise``, so a 200-step DDIM of the teacher is its PF-ODE solved almost exactly.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from addbench.bases.interface import Sampler
from addbench.errors import AddbenchError
from addbench.gmm.captions import caption


def is_gmm_model(model: str | os.PathLike) -> bool:
    """Whether ``model`` names the gmm base or an addbench checkpoint trained on it."""
    from addbench.bases.checkpoint import is_checkpoint, read_checkpoint_meta

    s = str(model)
    return s == "gmm" or (is_checkpoint(s) and read_checkpoint_meta(s).get("base") == "gmm")


def load_model(model: str | os.PathLike, device=None):
    """(GMMBase, its sampler): the teacher for ``"gmm"``, the student and its stored sampler for a checkpoint."""
    from addbench.bases.checkpoint import is_checkpoint, load_checkpoint
    from addbench.bases.loading import load_base

    if is_checkpoint(str(model)):
        base, sampler, meta = load_checkpoint(str(model), device=device)
        if meta.get("base") != "gmm":
            raise AddbenchError(f"{model} was trained on base {meta.get('base')!r}, not gmm")
        return base, sampler
    base = load_base(str(model), device=device)
    if getattr(base, "name", "") != "gmm":
        raise AddbenchError(f"{model} is not the gmm base or a checkpoint trained on it")
    return base, base.default_sampler


def sample_points(base, classes, seeds, sampler: Sampler | None = None, network: torch.nn.Module | None = None,
                  steps: int | None = None) -> torch.Tensor:
    """(N, D) float32 CPU points, one per (class, seed) pair (UNCOND = -1: no caption); ``steps`` replaces the
    sampler's step count (and drops its explicit timesteps)."""
    import dataclasses

    from addbench.bases.sampling import denoise, initial_noise

    sampler = sampler or base.default_sampler
    if steps is not None:
        sampler = dataclasses.replace(sampler, steps=int(steps), timesteps=None)
    classes, seeds = np.asarray(classes), list(seeds)
    if len(classes) != len(seeds):
        raise AddbenchError(f"got {len(classes)} classes but {len(seeds)} seeds; pass one seed per point")
    noise = initial_noise(seeds, base.latent_shape(1, 1)).to(base.device)
    cond = base.encode_prompts([caption(int(k)) for k in classes])
    return denoise(base, noise, cond, sampler, network).float().cpu()
