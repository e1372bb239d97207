"""DMDX hyper-parameters per base (Lu et al. 2025; Sec. 4, Sec. 5 and appendix B of the paper).

ADP keys (stage 1, ``addbench train dmdx.adp``)
- ``init``: "teacher" (paper) or a checkpoint dir; ``readout``: "flow" (the student predicts the pair's
  velocity on the straight path, Sec. 4.2; the exported checkpoint records it for the loader;
  ``addbench/readout.py``).
- ``lambda_latent`` λ1 = 0.85, ``lambda_pixel`` λ2 = 0.15 (Eq. 9-10; Table 4 A3/A4 ablate 0.7/0.3, 1/0).
- ``latent_taps``: module names of the teacher whose outputs feed D_τ1's heads ("base" = the base adapter's
  ``feature_taps``); paper: every down / mid / up block of SDXL, 7 heads.
- ``pixel_backbone``: "sam:<dir>" (paper, SAM ViT encoder, layers 3/6/9/12), "dinov2:<dir>" (Table 4 A2),
  "teacher" (pixel-space bases only; our toy-world choice).
- ``head_width``: channels of the DMDX heads (0 = the feature's own width, as SDXL-Lightning).
- ``lambda_velocity``: optional Rectified-Flow MSE on the pair velocity (0: not part of DMDX; Table 4 A1
  is this loss alone).
- ``ode_pairs``: directory of teacher ODE pairs (``addbench.train.odepairs``).
ADM keys (stage 2, ``addbench train dmdx.adm --set init=<ADP checkpoint dir>``)
- ``real_guidance``: [lo, hi], the real score's CFG sampled uniformly per step (SDXL / SD3-M [6, 8],
  SD3.5-L [3, 4], CogVideoX [5, 7]).
- ``dt_fraction``: Δt = T/64; ``gen_steps``: 1 (SDXL) or N-step generator (SD3: multi-step; CogVideoX: 8).
- ``grad_through_fake``: the generator's gradient goes through the fake score's input (our reading).
- ``student_cfg`` (video, Sec. 5.2 "ADM w/ CFG", optional key): the student itself runs CFG at the real scale
  minus ``student_cfg_offset`` (2.0); the exported sampler uses the mid-range real scale minus the offset (ours:
  6 - 2 = 4 for CogVideoX, 16 NFE for 8 steps). Off: "ADM" (8 NFE).
- ``resolution``: pixels, or [height, width]; ``frames`` (video): frames per clip (CogVideoX 49 -> 13 latent frames).
Both: AdamW, no weight decay, betas (0, 0.99); lr_d 5e-6, lr_fake 1e-6 in every experiment; SDXL lr_g
1e-6 (ADP) / 1e-7 (ADM); 8K iterations, batch 128 (images) / 8 (videos).
"""
from __future__ import annotations

from distillers.budget import TOY_BUDGET_HALF

_OPT = {"betas": [0.0, 0.99], "weight_decay": 0.0, "lr_d": 5e-6, "lr_fake": 1e-6, "seed": 0}

# SDXL block outputs (3 down, mid, 3 up = 7 heads, appendix B); the toy UNet has the same block layout.
_UNET7 = ["down_blocks.0", "down_blocks.1", "down_blocks.2", "mid_block", "up_blocks.0", "up_blocks.1", "up_blocks.2"]

_TOY = {  # ours: trains in minutes on 2 CPU cores under distillers/BUDGET.md
    **_OPT,
    "init": "teacher",
    "lr_g": 1e-4,  # ours (toy, = every toy preset): the paper's 1e-6 / 1e-7 are for SDXL over 8K x 128 images
    "lr_d": 2e-4,  # ours (toy)
    "lr_fake": 1e-4,  # ours (toy)
    **TOY_BUDGET_HALF,  # ADP and ADM each get half the shared toy budget: the same images seen in total
    "latent_taps": _UNET7,
    # ours (toy): the heads shrink most toy maps to 1x1, where GroupNorm(32) sees channels/32 values per
    # group; 128 channels keep 4 per group (<= 32 channels would normalise every logit to a constant)
    "head_width": 128,
}

# CogVideoX (Table 3, Sec. 5.2, appendix B): ADM only (no ADP stage for video), from the teacher, in its own
# v-prediction DDIM parameterisation; 8-step student; real CFG ~ U[5, 7]; lr_g 1e-7 for 2B and 5B; 8K iterations
# of 8 videos; 3D heads on every 3rd DiT block (10 heads for 2B, 14 for 5B, the base's feature_taps). Prompts:
# the paper's come from OpenVid-1M, Vript and Open-Sora-Plan v1.1.0 (set prompts=<file>). Budgets count videos.
# Not in the paper: the head width, and the CFG of the exported "w/ CFG" sampler (see student_cfg above).
# Paper, not here: context / sequence parallelism and FSDP CPU offload (appendix B); one process trains 2B.
_COGVIDEOX = {
    **_OPT,
    "init": "teacher",
    "readout": "base",
    "real_guidance": [5.0, 7.0],
    "student_cfg": False,  # True: "ADM w/ CFG" (16 NFE at 8 steps)
    "student_cfg_offset": 2.0,
    "dt_fraction": 1 / 64,
    "gen_steps": 8,
    "grad_through_fake": True,
    "lr_g": 1e-7,
    "batch": 8,
    "budget_images": 8 * 8000,
    "resolution": [480, 720],
    "frames": 49,
    "latent_taps": "base",
    # ours (the paper gives no width): the features' own width C (1920 for 2B, 3072 for 5B) would give each head
    # 3 x 27 C^2 + 3 x 16 C^2 weights: 0.48 B (2B) / 1.2 B (5B) per head, 4.8 B / 17 B for the 10 / 14 heads
    "head_width": 256,
    "precision": "bf16",
    "grad_checkpointing": True,
}

ADP_PRESETS: dict[str, dict] = {
    "toy": {
        **_TOY,
        "readout": "flow",
        "lambda_latent": 0.85,
        "lambda_pixel": 0.15,
        # ours, toy-val winner of four trials (distillers/TUNING.md): the Rectified-Flow velocity MSE added to the
        # paper's GAN-only ADP (not in DMDX; its Table 4 A1 is this loss alone): toy-val FID 66.6 vs 105.3 without
        # it at 0.25x budget. The paper's value is lambda_velocity=0.
        "lambda_velocity": 1.0,
        # Ours: the toy world's pixel network is the frozen toy teacher's encoder taps (down blocks + mid) on
        # clean images at t = 0. SAM has no offline weights and would see a 32x32 image as a blur of
        # 1024 px; the toy CLIP / attribute classifier are the toy suite's metric networks, and a
        # discriminator on them would optimise the very features the toy scores read. The teacher was
        # trained on exactly these 32x32 images; 4 taps of increasing depth mirror SAM's layers 3/6/9/12,
        # and at t = 0 (clean input) it differs from D_τ1, whose inputs are diffused at t' ~ U(0, T].
        "pixel_backbone": "teacher",
        "ode_pairs": "",
        "sampler_steps": 1,
    },
    "sdxl": {
        **_OPT,
        "init": "teacher",
        "readout": "flow",
        "lambda_latent": 0.85,
        "lambda_pixel": 0.15,
        "lambda_velocity": 0.0,
        "lr_g": 1e-6,
        "batch": 128,
        "budget_images": 128 * 8000,
        "resolution": 1024,
        "latent_taps": _UNET7,
        "head_width": 0,
        "pixel_backbone": "sam:",  # set sam:<dir of a transformers SamVisionModel (ViT-B, 12 blocks)>
        "ode_pairs": "",
        "sampler_steps": 1,
        "precision": "bf16",
        "grad_checkpointing": True,
    },
}

ADM_PRESETS: dict[str, dict] = {
    "toy": {
        **_TOY,
        "init": "teacher",  # set init=<ADP checkpoint dir> (DMDX); teacher + readout=base = Table 4 B1
        "readout": "flow",
        "real_guidance": [2.5, 3.5],  # ours: around the toy teacher's default CFG 3 (paper: recommended ± 1)
        # ours, toy-val winner of four trials (distillers/TUNING.md): ADM fine-tunes the ADP student at 1/10 of
        # ADP's generator lr, as the paper's SDXL runs (1e-7 vs 1e-6): toy-val FID 84.4 (lr 1e-6: 94.2, 1e-7:
        # 104.0, CFG [1.5, 2.5]: 97.5) from the 0.25x ADP preset checkpoint (105.3).
        "lr_g": 1e-5,
        "dt_fraction": 1 / 64,
        "gen_steps": 1,
        "grad_through_fake": True,
    },
    "sdxl": {
        **_OPT,
        "init": "teacher",
        "readout": "flow",
        "real_guidance": [6.0, 8.0],
        "dt_fraction": 1 / 64,
        "gen_steps": 1,
        "grad_through_fake": True,
        "lr_g": 1e-7,
        "batch": 128,
        "budget_images": 128 * 8000,
        "resolution": 1024,
        "latent_taps": _UNET7,
        "head_width": 0,
        "precision": "bf16",
        "grad_checkpointing": True,
    },
    # CogVideoX-2b / -5b, 8-step ADM with full fine-tuning (Table 3, Sec. 5.2, appendix B); see _COGVIDEOX.
    "cogvideox": _COGVIDEOX,
    "cogvideox-2b": _COGVIDEOX,
    "cogvideox-5b": _COGVIDEOX,
    # SD3-Medium multi-step ADM (LoRA in the paper; full fine-tuning here), every DiT block a head.
    "sd3": {
        **_OPT,
        "init": "teacher",
        "readout": "base",
        "real_guidance": [6.0, 8.0],
        "dt_fraction": 1 / 64,
        # ours: the SD3 runs' step count is not in our copy of the DMDX text; 4 as DMD2's SDXL multi-step generator
        "gen_steps": 4,
        "grad_through_fake": True,
        "lr_g": 1e-6,
        "batch": 128,
        "budget_images": 128 * 8000,
        "resolution": 1024,
        "latent_taps": "base",
        "head_width": 0,
        "precision": "bf16",
        "grad_checkpointing": True,
    },
}

# The unit world (base gmm, addbench/gmm): a 2-D class-conditional mixture whose law is known exactly;
# tests/gmm/test_distillers_exact.py trains these presets in seconds on one CPU thread and scores them exactly.
from addbench.gmm import GMM_BUDGET  # noqa: E402  (light: numpy only)

_GMM = {
    **_OPT,
    **GMM_BUDGET,  # ours, gmm: batch 128 (addbench/gmm/__init__.py)
    "init": "teacher",
    "readout": "flow",  # paper (Sec. 4.2); well conditioned at t = T (gain t/T = 1)
    "latent_taps": "base",  # ours, gmm: the MLP blocks of the teacher (VectorHeads)
    "head_width": 128,  # ours, gmm: = the MLP width
    "lr_d": 1e-3,  # ours, gmm: the 2-D MLPs learn at ~1e-3 (paper's 5e-6 is for SDXL over 8K x 128 images)
    "lr_fake": 3e-3,  # ours, gmm: the fake score must track the generator (see distillers/dmd/presets.py gmm)
}
ADP_PRESETS["gmm"] = {
    **_GMM,
    "lambda_latent": 0.85,  # paper
    "lambda_pixel": 0.15,  # paper
    "pixel_backbone": "teacher",  # ours (as toy): the teacher's MLP taps on clean points, null class
    # ours, gmm: the hinge GAN alone collapses the 2-mode classes in this budget (measured: 1-step ED 0.66-0.76,
    # 1-2 of 8 modes, at lr_g 1e-4 / 1e-3, 200 steps; 600 steps: 0.61, 2 modes); the Rectified-Flow velocity MSE on
    # the same pairs (Table 4 A1) at weight 10 leads and the GAN terms are kept (measured: ED 0.030 with them,
    # 0.033 without)
    "lambda_velocity": 10.0,
    "lr_g": 3e-3,  # ours, gmm: 1e-3 ends at ED 0.083 / class accuracy 0.82 in 200 steps, 3e-3 at 0.030 / 0.92
    # ours, gmm: 300 steps; at 200 the 1-step class accuracy was 0.93 / 0.88 (training seeds 0 / 1), at 300
    # 0.95 / 0.95 (λ_velocity 30: 0.94 / 0.94)
    "budget_images": 128 * 300,
    "ode_pairs": "",  # set ode_pairs=<dir> (addbench.train.odepairs on the gmm base)
    "sampler_steps": 1,
}
ADM_PRESETS["gmm"] = {
    **_GMM,
    "budget_images": 128 * 100,  # ours, gmm: 100 steps of fine-tuning from the ADP student
    # set init=<ADP checkpoint dir> (DMDX); teacher + readout=base = Table 4 B1
    "real_guidance": [1.0, 1.0],  # ours, gmm: the target is the conditional law the metrics score against
    # ours, gmm: ADM fine-tunes ADP at 1/30 of its lr (paper SDXL: 1/10); 1e-3 collapsed the ADP student in 100
    # steps (ED 0.030 -> 0.34, 3 of 8 modes), 1e-4 keeps it (0.038)
    "lr_g": 1e-4,
    "dt_fraction": 1 / 64,  # paper
    "gen_steps": 1,  # paper (SDXL); --set gen_steps=4 for the 4-step student
    "grad_through_fake": True,
}
