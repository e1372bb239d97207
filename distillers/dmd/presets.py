"""DMD (v1) hyper-parameters per base (Yin et al. 2024, "One-step Diffusion with Distribution Matching
Distillation"; the DM-gradient formula is checked against tianweiy/DMD2 main/sd_guidance.py).

A preset is a flat dict; ``addbench train dmd --base B --set key=value`` overrides any key. Values we
could not confirm in the paper text available to us are marked (check); values that are ours say so.

Keys
- ``real_guidance``: CFG of the real score (frozen teacher). (check: DMD reports SD1.5 runs at scale 3
  and 8; DMD2 uses 1.75 for SD1.5, 8 for SDXL.)
- ``dm_t``: [lo, hi] fractions of T for the DM-gradient timestep: U[0.02T, 0.98T] (paper / DMD2 code).
- ``lambda_reg``: weight of the LPIPS ODE-pair regression loss, 0.25 (check).
- ``lambda_dm``: weight of the DM loss (1).
- ``fake_per_g``: fake-score updates per generator update (DMD v1: 1; DMD2 raises it to 5).
- ``gen_t`` / ``readout``: the one-step generator is fed pure noise, told timestep ``gen_t`` and its output read
  as x0 by ``readout`` (``addbench/readout.py``). DMD: t = T (999) in the teacher's own ε-parameterisation
  ("base"). At T an ε-readout amplifies the output 1/α_T = 14.6x on SD1.5's schedule; DMD2's SDXL 1-step
  script tells the generator 399 instead (``--conditioning_timestep 399``).
- ``ode_pairs``: directory of teacher ODE pairs collected offline (``addbench/train/odepairs.py``), made with
  ``reg_pairs`` pairs and ``reg_pair_steps`` teacher steps (recorded here for the collection script); each
  generator step regresses ``batch`` pairs.
- ``lpips_net``: LPIPS backbone ("vgg" in DMD (check)) or "mse"; on latent bases LPIPS runs on decoded images.
- ``lr_g`` / ``lr_fake`` / ``betas`` / ``weight_decay``: AdamW.
- ``batch`` / ``budget_images``: budget in images seen.
"""
from __future__ import annotations

from distillers.budget import TOY_BUDGET

_COMMON = {
    "init": "teacher",
    "readout": "base",
    "gen_t": 999.0,
    "real_guidance": 3.0,
    "dm_t": [0.02, 0.98],
    "lambda_dm": 1.0,
    "lambda_reg": 0.25,  # (check)
    "fake_per_g": 1,
    "lpips_net": "vgg",  # (check)
    "betas": [0.9, 0.999],  # (check)
    "weight_decay": 0.01,  # (check)
    "seed": 0,
}

PRESETS: dict[str, dict] = {
    # Ours: trains in minutes on 2 CPU cores; shared budget in distillers/BUDGET.md.
    "toy": {
        **_COMMON,
        **TOY_BUDGET,
        # ours, chosen on toy-val (distillers/TUNING.md): the generator is told t = 399 (DMD2's SDXL 1-step
        # conditioning timestep): at 999 an ε-readout amplifies the output 14.6x and a 1-step student stays at
        # the teacher's 1-step blur. Real-score CFG below the teacher's sampling CFG 3, as DMD2 runs SD1.5 at
        # 1.75 against ~7.5 for sampling (CFG 3 raised the students' image std from 0.59 to 0.8).
        "gen_t": 399.0,
        "real_guidance": 2.0,
        "lr_g": 1e-4,  # ours: the same toy lr_g as every method (see the ADD toy preset for the measurement)
        "lr_fake": 1e-4,
        "reg_pairs": 8192,  # ours: 600 steps x 128 regress each pair ~9 times
        "reg_pair_steps": 25,
        # Ours: LPIPS needs ImageNet backbone weights, which the offline toy world does not ship; the toy
        # regression uses the per-pixel MSE instead (DMD2's own ODE-pair pretraining uses MSE too). With the
        # VGG weights in torch's hub cache, --set lpips_net=vgg gives the paper's LPIPS.
        "lpips_net": "mse",
    },
    # Text-to-image DMD on SD1.5 / LAION-Aesthetics (check every number against the paper's appendix).
    "sd15": {
        **_COMMON,
        "lr_g": 1e-5,  # (check)
        "lr_fake": 1e-5,  # (check)
        "batch": 2048,  # (check)
        "budget_images": 2048 * 20000,  # (check)
        "reg_pairs": 500_000,  # (check)
        "reg_pair_steps": 50,  # (check: PNDM 50 steps in DMD)
        "resolution": 512,
    },
}

