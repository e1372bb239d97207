"""ADD's config keys and their types (what each means: ``presets.py``; values per base: ``PRESETS``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from addbench.train.engine_config import EngineConfig


@dataclass(frozen=True, kw_only=True)
class ADDConfig(EngineConfig):
    init: Literal["teacher", "random"]
    student_steps: int
    readout: str                      # addbench/readout.py spec, e.g. v_prediction+ztsnr
    lambda_distill: float
    lambda_adv: float
    weighting: Literal["exponential", "sds", "nfsd"]  # addbench.losses.score.WEIGHTINGS
    distill_reduction: Literal["sum", "mean"]
    distill_t: list[float]            # [lo, hi] fractions of T
    teacher_guidance: float
    r1_gamma: float
    cond_text: bool
    cond_img: bool
    feature_net: str                  # "teacher" or a DINOv2 dir / HF-cache id
    feature_t: float
    feature_layers: list[int] = field(default_factory=lambda: [3, 6, 9, 12])  # DINOv2 blocks (feature_net != teacher)
    head_blocks: int
    head_width: int
    lr_g: float
    lr_d: float
