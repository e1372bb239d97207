"""DMDX's config keys and their types, per stage (what each means: ``presets.py``; values per base there)."""
from __future__ import annotations

from dataclasses import dataclass

from addbench.train.engine_config import EngineConfig


@dataclass(frozen=True, kw_only=True)
class DMDXConfig(EngineConfig):
    """Keys both stages read."""

    init: str                         # "teacher" or a checkpoint dir
    readout: str                      # addbench/readout.py spec
    latent_taps: str | list[str]      # teacher module names, or "base" (the base's feature_taps)
    head_width: int                   # 0 = the feature's own width
    frames: int = 1                   # video bases: frames per clip
    lr_g: float
    lr_d: float
    lr_fake: float


@dataclass(frozen=True, kw_only=True)
class ADPConfig(DMDXConfig):
    lambda_latent: float
    lambda_pixel: float
    lambda_velocity: float
    pixel_backbone: str               # sam:<dir> | dinov2:<dir> | teacher
    sampler_steps: int


@dataclass(frozen=True, kw_only=True)
class ADMConfig(DMDXConfig):
    real_guidance: list[float]        # [lo, hi]: the real score's CFG, drawn per step
    dt_fraction: float
    gen_steps: int
    grad_through_fake: bool
    student_cfg: bool = False         # video "ADM w/ CFG"
    student_cfg_offset: float = 2.0
