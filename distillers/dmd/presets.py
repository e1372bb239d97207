"""DMD (v1) hyper-parameters per base (Yin et al. 2024, "One-step Diffusion with Distribution Matching
Distillation"; the DM-gradient formula is checked against tianweiy/DMD2 main/sd_guidance.py).

A preset is a flat dict; ``addbench train dmd --base B --set key=value`` overrides any key. DMD released no
training code, and the paper's appendix (hyper-parameters) was not available to us, so each value names its
source: the tianweiy/DMD2 code where it reimplements a part of DMD's recipe (same first author), or "ours"
with the reason; "unconfirmed paper value" marks a number recorded from the DMD paper earlier that we could
not re-read. Full table: distillers/PRESET_SOURCES.md.

Keys
- ``real_guidance``: CFG of the real score (frozen teacher): 3 (ours: unconfirmed paper value, DMD's
  SD1.5 FID model at CFG 3, a higher-quality one at 8; DMD2 uses 1.75 for SD1.5 and 8 for SDXL,
  ``--real_guidance_scale`` in its sdv1.5 / sdxl scripts).
- ``dm_t``: [lo, hi] fractions of T for the DM-gradient timestep: U[0.02T, 0.98T] (paper / DMD2 code).
- ``lambda_reg``: weight of the LPIPS ODE-pair regression loss, 0.25 (ours: unconfirmed paper value, as
  ../shared/papers/NOTES.md records it; DMD2 has no joint regression term to compare, its ODE-pair
  pretraining uses the LPIPS loss alone, main/train_sd_ode.py:277-283).
- ``lambda_dm``: weight of the DM loss (1).
- ``fake_per_g``: fake-score updates per generator update (DMD v1: 1; DMD2 raises it to 5).
- ``gen_t`` / ``readout``: the one-step generator is fed pure noise, told timestep ``gen_t`` and its output read
  as x0 by ``readout`` (``addbench/readout.py``). DMD: t = T (999) in the teacher's own ε-parameterisation
  ("base"). At T an ε-readout amplifies the output 1/α_T = 14.6x on SD1.5's schedule; DMD2's SDXL 1-step
  script tells the generator 399 instead (``--conditioning_timestep 399``).
- ``ode_pairs``: directory of teacher ODE pairs collected offline (``addbench/train/odepairs.py``), made with
  ``reg_pairs`` pairs and ``reg_pair_steps`` teacher steps (recorded here for the collection script); each
  generator step regresses ``batch`` pairs.
- ``lpips_net``: LPIPS backbone or "mse". "vgg": DMD2's reimplementation of the ODE-pair regression uses
  ``piq.LPIPS`` (VGG16 is the only backbone piq ships; MaxPool replaced by AvgPool, inputs in [0, 1]) on
  VAE-decoded images (main/train_sd_ode.py:159-161, 270-283). Ours: the ``lpips`` package's VGG (max pooling,
  inputs in [-1, 1]); on latent bases LPIPS runs on decoded images, as in DMD2.
- ``lr_g`` / ``lr_fake`` / ``betas`` / ``weight_decay``: AdamW; betas (0.9, 0.999) and weight decay 0.01 as every
  DMD2 trainer, including its ODE-pair regression trainer (main/train_sd_ode.py:80-85, train_sd.py:191-202).
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
    "lambda_reg": 0.25,  # ours: unconfirmed DMD paper value (NOTES.md); no official DMD code
    "fake_per_g": 1,
    "lpips_net": "vgg",  # DMD2 main/train_sd_ode.py:159-161 (piq.LPIPS: VGG16 only)
    "betas": [0.9, 0.999],  # DMD2 main/train_sd_ode.py:83 (and train_sd.py:194,200); DMD's own: not published
    "weight_decay": 0.01,  # DMD2 main/train_sd_ode.py:84 (and train_sd.py:195,201); DMD's own: not published
    "seed": 0,
}

PRESETS: dict[str, dict] = {
    # Ours: trains in minutes on 2 CPU cores; shared budget in distillers/BUDGET.md.
    "toy": {
        **_COMMON,
        **TOY_BUDGET,
        # ours, toy-val winner of four trials (distillers/TUNING.md): the generator is told t = 399 (DMD2's SDXL
        # 1-step conditioning timestep): at 999 an ε-readout amplifies the output 14.6x and the student stays near
        # the teacher's 1-step blur (toy-val FID 182.9 vs 100.4 at 0.25x budget). Real-score CFG 2, below the
        # teacher's sampling CFG 3, as DMD2 runs SD1.5 at 1.75 against ~7.5 (CFG 3: 104.2, 1.5: 109.7).
        "gen_t": 399.0,
        "real_guidance": 2.0,
        "lr_g": 1e-4,  # ours: the same toy lr_g as every method (see the ADD toy preset for the measurement)
        "lr_fake": 1e-4,
        "reg_pairs": 8192,  # ours: 600 steps x 128 regress each pair ~9 times
        "reg_pair_steps": 25,
        # Ours: LPIPS needs ImageNet backbone weights, which the offline toy world does not ship; the toy
        # regression uses the per-pixel MSE instead (DMD2's ODE-pair pretraining uses LPIPS-VGG,
        # main/train_sd_ode.py:159-161). With the VGG weights in torch's hub cache, --set lpips_net=vgg gives LPIPS.
        "lpips_net": "mse",
    },
    # Text-to-image DMD on SD1.5 / LAION-Aesthetics. The DMD appendix was not available to us: every number
    # below is ours, taken from DMD2's closest official script where one exists (distillers/PRESET_SOURCES.md).
    "sd15": {
        **_COMMON,
        # ours: DMD2's GAN-free SD1.5 run (DMD without the regression term) uses lr 1e-5 for generator and fake
        # score (experiments/sdv1.5/laion6.25_..._lr1e-5_..._from_scratch.sh lines 9-10); DMD2's SDXL ODE-pair
        # regression also 1e-5 (experiments/sdxl/sdxl_lr1e-5_8node_ode_pretraining_10k_cond399.sh line 9)
        "lr_g": 1e-5,
        "lr_fake": 1e-5,
        # ours: DMD2's SD1.5 batch, --batch_size 32 per GPU x 64 GPUs (same script, lines 6 and 13)
        "batch": 2048,
        # ours: 20k generator steps, DMD2's SDXL length (DMDX Table 7); DMD2's GAN-free SD1.5 run above reached
        # its best checkpoint at 39k (experiments/sdv1.5/README.md model zoo)
        "budget_images": 2048 * 20000,
        # ours: DMD's pair count is an unconfirmed paper value; DMD2's SDXL regression used 10k pairs
        # (sdxl_lr1e-5_8node_ode_pretraining_10k_cond399.sh line 22, --num_ode_pairs 10000)
        "reg_pairs": 500_000,
        # ours: "PNDM 50 steps" is an unconfirmed paper value; DMD2 makes its SDXL pairs with the diffusers
        # pipeline's default 50 steps (Euler, trailing spacing) at CFG 8 (main/sdxl/
        # generate_noise_image_pairs_laion_sdxl.py:21, 53, 111-119)
        "reg_pair_steps": 50,
        "resolution": 512,
    },
}


# The unit world (base gmm, addbench/gmm): a 2-D class-conditional mixture whose law is known exactly;
# tests/gmm/test_distillers_exact.py trains this preset in seconds on one CPU thread and scores it exactly.
from addbench.gmm import GMM_BUDGET  # noqa: E402  (light: numpy only)

PRESETS["gmm"] = {
    **_COMMON,
    **GMM_BUDGET,  # ours, gmm: batch 128 (addbench/gmm/__init__.py)
    "budget_images": 128 * 300,  # ours, gmm: 300 steps; 200 steps leave class accuracy at 0.93-0.95, 300 at 0.96
    "warmup_images": 128 * 20,  # ours, gmm (= GMM_BUDGET)
    # ours, gmm: the generator is told t = 399 (DMD2's SDXL 1-step conditioning timestep) on pure noise, read as
    # ε. At 999 the ε-readout multiplies the output by σ/α = 14.6 and the same budget ends far worse (measured,
    # test_eps_readout_at_T_is_ill_conditioned); at 399 the gain is 1.16.
    "gen_t": 399.0,
    # ours, gmm: the exact world's target is the conditional law itself (metrics score against it); any CFG > 1
    # would sharpen the real score away from it
    "real_guidance": 1.0,
    # ours, gmm: the MSE regression on the 2-D ODE pairs is ~100x smaller than the per-value normalised DM term;
    # at λ_reg = 0.25 (paper, LPIPS scale) the DM term dominates and the student loses its classes (class
    # accuracy 0.2-0.7 at every lr tried: in D = 2 the DM gradient's normaliser mean_D |x - x̂_real| is a mean of
    # 2 values, so a few samples per batch carry most of the gradient, measured with exact real and fake scores:
    # the top 1% hold 60% of Σ|grad|²). λ_reg = 10: regression-led, the DM term is kept (measured: ED 0.028 with
    # it, 0.026 without, at 200 steps)
    "lambda_reg": 10.0,
    # ours, gmm: the fake score's x0 error exceeds the DM signal above t ~ 0.5T (measured on a known law after
    # 500 steps at lr 1e-3: error 0.26 / 0.71 vs signal 0.06 / 0.02 at t = 750 / 950; below 0.5T the error is
    # 0.03-0.1 vs 0.2 signal); [0.4, 0.98] diverged (ED 2.05)
    "dm_t": [0.02, 0.5],
    # ours, gmm: the 2-D MLP learns at lr ~1e-3; the toy lr 1e-4 leaves the fake score's error at the size of
    # the DM signal after 500 steps (measured), 1e-2 on the generator was worse than 3e-3 (ED 0.025 vs 0.026 at
    # 200 steps, class accuracy 0.93 vs 0.95)
    "lr_g": 3e-3,
    "lr_fake": 3e-3,
    "lpips_net": "mse",  # ours, gmm: points, not images (LPIPS needs RGB images; DMD2 itself uses LPIPS-VGG)
    "reg_pairs": 4096,  # ours, gmm: 300 steps x 128 regress each pair ~9 times
    "reg_pair_steps": 25,  # ours, gmm: 25-step teacher DDIM endpoints score ED 0.010 against the exact law
}
