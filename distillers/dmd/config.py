"""DMD's config keys and their types (what each means: ``presets.py``; values per base: ``PRESETS``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from addbench.train.engine_config import EngineConfig


@dataclass(frozen=True, kw_only=True)
class DMDConfig(EngineConfig):
    init: Literal["teacher"]          # DMD initialises the generator from the teacher
    readout: str                      # addbench/readout.py spec
    gen_t: float
    real_guidance: float
    dm_t: list[float]                 # [lo, hi] fractions of T
    lambda_dm: float
    lambda_reg: float                 # 0 = the DM loss alone (no ODE pairs needed)
    fake_per_g: int
    lpips_net: str                    # an LPIPS backbone or "mse"
    reg_pairs: int                    # recorded for the ODE-pair collection script
    reg_pair_steps: int
    lr_g: float
    lr_fake: float
