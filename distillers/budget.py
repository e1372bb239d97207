"""The one toy-world budget every distiller's ``toy`` preset uses (``distillers/BUDGET.md`` says why).

Change it only here, in a commit that says why, and re-run every student (``python -m distillers.toy_study tune|final``).
"""
from __future__ import annotations

TOY_STEPS = 600  # generator steps
TOY_BATCH = 128  # images per generator step (a GPU runs a toy step in the same time at 32 or 128: launch-bound)

TOY_BUDGET = {
    "batch": TOY_BATCH,
    "budget_images": TOY_BATCH * TOY_STEPS,  # 76,800 generated images
    "resolution": 32,
    "prompts": "toy:20000",  # the toy dataset's training captions (never the eval suite's prompts)
    "real_images": "toy:20000",  # the toy dataset's training split, for methods that use real images
    "seed": 0,
    # ours: a 50-step linear lr warm-up; Adam's first full-lr steps move every weight by ~lr and knock the
    # teacher-initialised 1-step student off (measured: x0 MSE 0.258 -> 0.319 in 25 steps at lr 1e-4)
    "warmup_images": TOY_BATCH * 50,
}

# Two-stage methods (DMDX: ADP then ADM) split the budget so the total images seen stay the same.
TOY_BUDGET_HALF = {**TOY_BUDGET, "budget_images": TOY_BUDGET["budget_images"] // 2}
