"""VBench's total, quality and semantic scores, computed the way VBench's leaderboard does.

From VBench's ``scripts/constant.py`` and ``scripts/cal_final_score.py`` (they are not in the wheel): each
dimension's raw score s (in [0, 1]) is normalised to (s - Min) / (Max - Min) and multiplied by its weight
(1, except 0.5 for dynamic_degree); the quality score is the weighted mean over the 7 quality dimensions,
the semantic score over the 9 semantic ones, and the total is (4 * quality + 1 * semantic) / 5.
"""
from __future__ import annotations

QUALITY = ("subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
           "dynamic_degree", "aesthetic_quality", "imaging_quality")
SEMANTIC = ("object_class", "multiple_objects", "human_action", "color", "spatial_relationship", "scene",
            "appearance_style", "temporal_style", "overall_consistency")
DIMENSIONS = QUALITY + SEMANTIC  # VBench's table order

NORMALIZE = {  # (Min, Max)
    "subject_consistency": (0.1462, 1.0), "background_consistency": (0.2615, 1.0),
    "temporal_flickering": (0.6293, 1.0), "motion_smoothness": (0.706, 0.9975), "dynamic_degree": (0.0, 1.0),
    "aesthetic_quality": (0.0, 1.0), "imaging_quality": (0.0, 1.0), "object_class": (0.0, 1.0),
    "multiple_objects": (0.0, 1.0), "human_action": (0.0, 1.0), "color": (0.0, 1.0),
    "spatial_relationship": (0.0, 1.0), "scene": (0.0, 0.8222), "appearance_style": (0.0009, 0.2855),
    "temporal_style": (0.0, 0.364), "overall_consistency": (0.0, 0.364),
}
WEIGHT = {d: (0.5 if d == "dynamic_degree" else 1.0) for d in DIMENSIONS}
QUALITY_WEIGHT, SEMANTIC_WEIGHT = 4.0, 1.0


def normalized(dim: str, score: float) -> float:
    lo, hi = NORMALIZE[dim]
    return (score - lo) / (hi - lo) * WEIGHT[dim]


def _group(scores: dict[str, float], dims: tuple[str, ...]) -> float | None:
    if any(d not in scores for d in dims):
        return None
    return sum(normalized(d, scores[d]) for d in dims) / sum(WEIGHT[d] for d in dims)


def summary(scores: dict[str, float]) -> dict[str, float | None]:
    """{"quality", "semantic", "total"} in [0, 1] from raw dimension scores in [0, 1]; None where a
    dimension the score needs is missing (VBench would count it as 0, which is no score at all)."""
    q, s = _group(scores, QUALITY), _group(scores, SEMANTIC)
    total = None if q is None or s is None else (QUALITY_WEIGHT * q + SEMANTIC_WEIGHT * s) / (QUALITY_WEIGHT + SEMANTIC_WEIGHT)
    return {"total": total, "quality": q, "semantic": s}
