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
  classifier head with one "guidance" optimiser; betas (0.9, 0.999), weight decay 0.01, eps the torch default:
  tianweiy/DMD2 main/train_sd.py:191-202, the same in main/edm/train_edm.py:97-108). DMD2 also warms each lr up
  linearly over 500 steps (train_sd.py:205-216, ``--warmup_step`` default 500 at :633); we do not.
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
    "betas": [0.9, 0.999],  # DMD2 main/train_sd.py:194,200 (AdamW, generator and guidance)
    "weight_decay": 0.01,  # DMD2 main/train_sd.py:195,201 (torch's AdamW default, passed explicitly)
    "grad_clip": 10.0,
    "seed": 0,
}

PRESETS: dict[str, dict] = {
    # Ours: trains in minutes on 2 CPU cores under the shared toy budget (distillers/BUDGET.md).
    "toy": {
        **_COMMON,
        **TOY_BUDGET,
        # ours, toy-val winner of eight trials in two rounds (distillers/TUNING.md): conditioning timestep 399
        # (DMD2's SDXL 1-step script; at 999 toy-val FID 193.7 vs 129.1) and the real score at the teacher's own
        # sampling CFG 3 (95.9; CFG 2: 129.1, 1.5: 156.2), at 0.25x budget.
        "gen_t": 399.0,
        "real_guidance": 3.0,
        # paper (SDXL script): λ_G = 5e-3, unscaled. Round 2 winner: toy-val FID 40.5 vs 95.9 for 0.107 (SDXL's
        # 5e-3 rescaled by the dimension ratio 65,536 / 3,072, which we used before: the DM loss is a mean over
        # the D values, the GAN term is not; measured at init λ_G·|∇GAN| = 0.6% of |∇DM| at 5e-3). At 0.107 the GAN
        # term led the update (1x: generator grad norm 7.1 vs 1.0 at 5e-3, toy-2k FID 86.1 vs 26.9). A 0.25-budget
        # ODE-regression stage before DMD2 (its SDXL 1-step init) did not help at 5e-3 (42.3) or 0.02 (53.2).
        "lambda_gan_g": 5e-3,
        "lambda_gan_d": 1e-2,
        # the toy bottleneck has 128 channels: GroupNorm(32) would see 4 per group on the head's 1x1 map
        # (SDXL: 1280 / 32 = 40); 1024 keeps 32 per group
        "head_width": 1024,
        "fake_per_g": 5,
        "lr_g": 1e-4,  # ours (toy): the same toy lr_g as every method (see the ADD toy preset)
        "lr_fake": 1e-4,
        "lr_disc": 1e-4,
    },
    # SD1.5, LAION aesthetics 6.25: DMD2's stage 2 (experiments/sdv1.5/laion6.25_..._gan1e-3_noode_resume_fixdata.sh).
    # It is NOT trained from the teacher: it resumes (--ckpt_only_path, script line 38) the stage-1 checkpoint of
    # laion6.25_..._lr1e-5_..._from_scratch.sh (no GAN, lr 1e-5, 39k iterations; experiments/sdv1.5/README.md
    # model zoo). Stage 1 here: --set lr_g=1e-5 lr_fake=1e-5 lr_disc=1e-5 lambda_gan_g=0 lambda_gan_d=0
    # budget_images=<2048*39000>; then stage 2 (this preset) with --set init=<stage-1 ckpt dir>.
    "sd15": {
        **_COMMON,
        "real_guidance": 1.75,
        "lambda_gan_g": 1e-3,
        "lambda_gan_d": 1e-2,
        "fake_per_g": 10,
        "lr_g": 5e-7, "lr_fake": 5e-7, "lr_disc": 5e-7,
        "batch": 32 * 64,  # --batch_size 32 per GPU (script line 13) x 8 nodes x 8 GPUs (line 6), no accumulation
        # experiments/sdv1.5/README.md model zoo: this script's released checkpoint (FID 8.35) is 2k iterations on
        # top of stage 1 (the scripts themselves set --train_iters 1e8). Was 2048 * 20000 (unsourced): changed.
        "budget_images": 32 * 64 * 2000,
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
        # Table 7 of DMDX: 20K iterations (kept). DMD2's own model zoo (experiments/sdxl/README.md) releases this
        # script's checkpoint at 24k iterations (the 4-step backsim one at 19k); the script sets --train_iters 1e8.
        "budget_images": 128 * 20000,
        "resolution": 1024,
        "precision": "bf16",
        "grad_checkpointing": True,
    },
}
# SDXL 4-step (denoising4step_..._backsim script): --set gen_steps=4 gen_t=999 init=teacher
# (timesteps 999/749/499/249, backward simulation).

# The unit world (base gmm, addbench/gmm): a 2-D class-conditional mixture whose law is known exactly;
# tests/gmm/test_distillers_exact.py trains this preset in seconds on one CPU thread and scores it exactly.
# 1 step: init from an ODE-pair pre-regressed generator told t = 399, as DMD2's SDXL 1-step recipe
# (--set init=<ckpt dir>, e.g. the dmd gmm preset's student); from the teacher the DM + GAN terms alone do not
# reach the exact law in this budget (measured: class accuracy 0.55-0.9, ED 0.09-0.2 at every lr / dm_t tried).
# 4 steps: --set gen_steps=4 (timesteps 999/749/499/249, backward simulation) from the teacher.
from addbench.gmm import GMM_BUDGET  # noqa: E402  (light: numpy only)

PRESETS["gmm"] = {
    **_COMMON,
    **GMM_BUDGET,  # ours, gmm: batch 128 (addbench/gmm/__init__.py)
    "budget_images": 128 * 100,  # ours, gmm: 100 steps of fine-tuning (fake_per_g x 100 fake-score steps)
    "gen_t": 399.0,  # paper (SDXL 1-step script: conditioning timestep 399); at 999 the ε-readout gain is 14.6
    "real_guidance": 1.0,  # ours, gmm: the target is the conditional law the metrics score against (no CFG)
    # ours, gmm: the fake score's x0 error exceeds the DM signal above ~0.5T (see the dmd gmm preset)
    "dm_t": [0.02, 0.5],
    # ours, gmm: measured no different from 0 at this budget (ED 0.0207 vs 0.0205); kept small so the GAN term
    # is present without dominating the per-value-normalised DM term on D = 2
    "lambda_gan_g": 0.1,
    "lambda_gan_d": 1e-2,  # paper (SDXL / SD1.5 scripts)
    "head_width": 0,  # the fake MLP's 128 channels (a VectorHead: LayerNorm, no GroupNorm issue)
    "fake_per_g": 3,  # ours, gmm: 5 (paper, SDXL) costs 1.6x the time for no measured gain
    # ours, gmm: a fine-tune of the regressed generator; lr_g 1e-3 lowered class accuracy 0.95 -> 0.85 in 100
    # steps, 1e-4 keeps it (0.93); the fake score needs ~3e-3 to track the generator (see the dmd gmm preset)
    "lr_g": 1e-4,
    "lr_fake": 3e-3,
    "lr_disc": 1e-3,
}
