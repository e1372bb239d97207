"""DMD2 hyper-parameters per base (Yin et al. 2024b, "Improved Distribution Matching Distillation for Fast
Image Synthesis"; values checked against the public launch scripts of tianweiy/DMD2 ``experiments/``).

Keys (``addbench train dmd2 --base B --set key=value`` overrides any of them)
- ``real_guidance``: CFG of the real score (frozen teacher). SDXL 8, SD1.5 1.75 (scripts).
- ``dm_t``: [lo, hi] fractions of T for the DM-gradient timestep (0.02, 0.98; integer t as the code).
- ``lambda_dm``: weight of the DM loss (1).
- ``lambda_gan_g`` / ``lambda_gan_d``: generator / discriminator weights of the non-saturating GAN loss
  (SDXL 5e-3 / 1e-2; SD1.5 1e-3 / 1e-2).
- ``gan_t_max``: disc inputs are diffused at integer t ~ U{0, .., gan_t_max·(T+1) - 1} ("diffusion GAN",
  ``diffusion_gan_max_timestep 1000`` in every script).
- ``fake_per_g``: TTUR, fake-score (+ classifier) updates per generator update (5 SDXL; 10 in the SD1.5 script).
- ``gen_steps`` / ``gen_t``: 1-step generator called on pure noise at ``gen_t`` (999; the SDXL 1-step
  script uses conditioning_timestep 399 after ODE pre-regression) or an N-step generator on
  {999, 749, 499, 249} with backward simulation (``backward_simulation``).
- ``readout``: how the generator's output becomes x0 (``addbench/readout.py``); DMD2: the teacher's own
  ε-parameterisation ("base") on every base.
- ``lr_g`` / ``lr_fake`` / ``lr_disc`` / ``betas`` / ``weight_decay``: AdamW (DMD2 trains fake UNet and
  classifier head with one "guidance" optimiser; betas (0.9, 0.999), weight decay 0.01 (check)).
- ``grad_clip``: max grad norm 10 (scripts).
- ``batch`` / ``budget_images``: images seen (SDXL: batch 2/GPU x 64 GPUs = 128, ~20K iterations).
"""
from __future__ import annotations

from distillers.budget import TOY_BUDGET

_COMMON = {
    "init": "teacher",
    "dm_t": [0.02, 0.98],
    "lambda_dm": 1.0,
    "gan_t_max": 1.0,
    "gen_steps": 1,
    "gen_t": 999.0,
    "readout": "base",
    "backward_simulation": True,
    "head_width": 0,  # classifier width; 0 = the bottleneck's channels (DMD2: 1280)
    "betas": [0.9, 0.999],  # (check: torch AdamW defaults in train_sd.py)
    "weight_decay": 0.01,  # (check)
    "grad_clip": 10.0,
    "seed": 0,
}

PRESETS: dict[str, dict] = {
    # Ours: trains in minutes on 2 CPU cores under the shared toy budget (distillers/BUDGET.md).
    "toy": {
        **_COMMON,
        **TOY_BUDGET,
        "real_guidance": 3.0,  # ours: the toy teacher's own default CFG
        "lambda_gan_g": 5e-3,  # SDXL values (paper); ours to keep them on the toy world
        "lambda_gan_d": 1e-2,
        "fake_per_g": 5,
        "lr_g": 1e-4,  # ours (toy): the same toy lr_g as every method (see the ADD toy preset)
        "lr_fake": 1e-4,
        "lr_disc": 1e-4,
    },
    # SD1.5, LAION aesthetics 6.25 (laion6.25_..._gan1e-3 script; it resumes a GAN-free run at lr 1e-5).
    "sd15": {
        **_COMMON,
        "real_guidance": 1.75,
        "lambda_gan_g": 1e-3,
        "lambda_gan_d": 1e-2,
        "fake_per_g": 10,
        "lr_g": 5e-7, "lr_fake": 5e-7, "lr_disc": 5e-7,
        "batch": 32 * 64,
        "budget_images": 32 * 64 * 20000,  # (check: iterations are not fixed in the scripts)
        "resolution": 512,
    },
    # SDXL 1-step (sdxl_cond399_..._gan5e-3_guidance8 script): init from the ODE-pair pre-regressed generator
    # (10k pairs; --set init=<ckpt dir>), conditioning timestep 399.
    "sdxl": {
        **_COMMON,
        "real_guidance": 8.0,
        "lambda_gan_g": 5e-3,
        "lambda_gan_d": 1e-2,
        "fake_per_g": 5,
        "gen_t": 399.0,
        "lr_g": 5e-7, "lr_fake": 5e-7, "lr_disc": 5e-7,
        "batch": 128,
        "budget_images": 128 * 20000,  # Table 7 of DMDX: 20K iterations
        "resolution": 1024,
        "precision": "bf16",
        "grad_checkpointing": True,
    },
}
# SDXL 4-step (denoising4step_..._backsim script): --set gen_steps=4 gen_t=999 init=teacher
# (timesteps 999/749/499/249, backward simulation).
