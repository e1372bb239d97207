"""DMD2's config keys and their types (what each means: ``presets.py``; values per base: ``PRESETS``)."""
from __future__ import annotations

from dataclasses import dataclass

from addbench.train.engine_config import EngineConfig


@dataclass(frozen=True, kw_only=True)
class DMD2Config(EngineConfig):
    init: str                         # "teacher" or a checkpoint dir
    readout: str                      # addbench/readout.py spec
    real_guidance: float
    dm_t: list[float]                 # [lo, hi] fractions of T
    lambda_dm: float
    lambda_gan_g: float
    lambda_gan_d: float
    gan_t_max: float
    fake_per_g: int
    gen_steps: int
    gen_t: float
    backward_simulation: bool
    head_width: int = 0               # 0 = the bottleneck's channels
    lr_g: float
    lr_fake: float
    lr_disc: float
