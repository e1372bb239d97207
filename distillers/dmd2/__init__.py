"""DMD2: Improved Distribution Matching Distillation (Yin, Gharbi, Park, Richardson, Shechtman, Durand,
Freeman 2024b). Formulas checked against tianweiy/DMD2 ``main/sd_guidance.py`` / ``main/sd_unified_model.py``
and its launch scripts; values per base in ``presets.py``.

Networks
- generator G: copy of the teacher (``init=teacher``) or of an earlier checkpoint (``init=<ckpt dir>``: the
  SDXL 1-step recipe first pre-regresses G on 10k teacher ODE pairs; run ``addbench train dmd --set
  lambda_dm=0`` or any regression run and pass its checkpoint). 1 step on pure noise at ``gen_t``, or N
  steps {999, 749, 499, 249} with backward simulation.
- real score: the frozen teacher WITH CFG (``real_guidance``: SDXL 8, SD1.5 1.75).
- fake score: a copy of the teacher trained online with the plain denoising loss (no CFG, no dropout).
- classifier: ``DMD2Head`` (stride-2 4x4 conv + GroupNorm(32) + SiLU down to 1x1, then a 1x1 conv) on the
  fake network's bottleneck (the base's deepest ``feature_taps`` entry, the UNet mid block). The fake
  network is the classifier's trunk: it is trained by the classification loss too.

Losses (per sample, mean over the batch)
- generator: λ_dm · L_DM + λ_G · softplus(-D(x̂_t')), L_DM = DMD loss (DMDX Eq. 5-6; t ~ U{0.02T..0.98T}
  integer; grad = (p_real - p_fake)/mean|p_real|; 0.5·||x̂ - sg(x̂ - grad)||²). NO regression loss.
- fake + classifier turn: ||ε_fake(x_t, t) - ε||² on sg(x̂) (t ~ U{0..T}) + λ_D · [softplus(-D(x_t'))
  + softplus(D(x̂_t'))] with x real images (the base's ``encode``), conditioned on their captions.
- "diffusion GAN": every classifier input is diffused at its own integer t' ~ U{0..999} (gan_t_max = 1).
- weights: SDXL λ_G = 5e-3, λ_D = 1e-2; SD1.5 λ_G = 1e-3, λ_D = 1e-2.

Schedule and optimisation
- TTUR: ``fake_per_g`` = 5 (fake score + head) updates per generator update (10 in the SD1.5 script);
  one loop step = 1 generator update + 5 fake updates, each fake update on freshly generated samples.
- AdamW, generator and guidance lr 5e-7 (SDXL, SD1.5 fine-tuning stage), betas (0.9, 0.999), weight decay 0.01
  (torch's defaults, passed explicitly in main/train_sd.py:191-202), max grad norm 10 (train_sd.py:375,404;
  ``--max_grad_norm 10.0`` in every script), bf16 autocast; SDXL batch 128 (``--batch_size 2`` x 64 GPUs,
  experiments/sdxl/README.md "training with 64 gpu"; gradient accumulation is asserted off, train_sd.py:689),
  1024 px.
- Multi-step backward simulation (sd_unified_model.sample_backward): pick n, run the student without grad
  from pure noise n steps (x0 prediction, re-noise with FRESH noise to the next timestep), then the grad
  step at t_n; input at t = 999 is pure noise.

Where we differ (said in code): the exported sampler of an N-step student uses the harness's
deterministic DDIM steps between the same timesteps, not DMD2's re-noising sampler (same for 1 step);
only backward simulation is wired for multi-step (DMD2's "denoising real images" variant is not).
"""
from .distiller import DMD2

__all__ = ["DMD2"]
