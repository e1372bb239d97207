"""DMDX: Adversarial Distribution Matching for diffusion distillation (Lu et al. 2025) = ADP then ADM.
Equation / table numbers from the paper (``shared/papers/dmdx_adversarial_distribution_matching.zh.txt``);
values per base in ``presets.py``.

Stage 1, ADP (Sec. 4.2, Eq. 9-10; ``addbench train dmdx.adp``)
- offline teacher ODE pairs (z, y) (``addbench.train.odepairs``: N-step deterministic teacher solve, CFG).
- noisy input = linear interpolation x_t = (1 - t/T) y + (t/T) z (Rectified Flow), t = (1 - u³)·T, u ~ U[0,1)
  (cubic schedule, Sec. 4.2.1); the generator's raw output is read as the pair's velocity v = z - y
  (readout = flow) and x̂0 = x_t - (t/T) v̂.
- D_τ1 (latent): frozen teacher + trainable heads on every down / mid / up block output; inputs x̂0 and y
  diffused with the teacher's q(x_t'|x0), t' ~ U(0, T], teacher called at t' with the text condition.
- D_τ2 (pixel): SAM ViT image encoder + heads on layers 3, 6, 9, 12 of VAE-decoded images (DINOv2 worse,
  Table 4 A2). Toy world: the teacher's encoder taps at t = 0 (why: ``presets.py``).
- Heads (appendix B, after SDXL-Lightning): 4 × [4×4 conv stride 2, GroupNorm(32), SiLU] + 1×1 conv.
- hinge: L_G = -[λ1 D_τ1(x̃_t', t') + λ2 D_τ2(x̃0)]; L_D = λ1[max(0, 1 + D_τ1(fake)) + max(0, 1 - D_τ1(real))]
  + λ2[same for D_τ2]; λ1 = 0.85, λ2 = 0.15. Turns g, d alternate (1:1).

Stage 2, ADM (Sec. 4.1, Eq. 7-8, Algorithm 1; ``addbench train dmdx.adm --set init=<ADP checkpoint>``)
- fake score f_ψ ← teacher, updated every iteration (TTUR = 1) with the base's pretraining loss on detached
  N-step student samples, no CFG, no dropout (appendix B).
- generator: n ~ U{1..N}; no-grad student PF-ODE t_N → t_n; x̂0 = G(x_{t_n}, t_n) with grad (1 step: n = N).
- x_t = q(x_t | x̂0), t ~ U(Δt, T] (our bound keeps t - Δt ≥ 0), Δt = T/64; one PF-ODE step (DDIM / Euler)
  with the fake score (no CFG) and the real score (teacher, CFG ~ U[6, 8] for SDXL) gives x^fake_{t-Δt},
  x^real_{t-Δt}; D_τ = frozen teacher + heads on its block outputs, evaluated at t - Δt with the text.
- L_G = -D_τ(x^fake_{t-Δt}) (Eq. 7), gradient through the fake score's input (our reading; the paper gives
  no code); L_D = max(0, 1 + D_τ(x^fake)) + max(0, 1 - D_τ(x^real)) (Eq. 8) on the pairs of this step's
  generator turn, as Algorithm 1 line 26.

Video, CogVideoX-2b / -5b (Table 3, Sec. 5.2, appendix B; ``addbench train dmdx.adm --base cogvideox-2b``)
- ADM only, from the teacher, in its v-prediction DDIM parameterisation; 8-step student; real CFG ~ U[5, 7];
  lr_g 1e-7; 8K iterations of 8 videos (49 frames, 480x720).
- D_τ: 3D heads (3 × [3×3×3 conv] + 3 × [4×4 conv stride 2], GroupNorm(32), SiLU) on the image tokens of every
  3rd DiT block, laid out (N, C, F', h, w) by the base adapter (10 heads for 2B, 14 for 5B). The losses and
  this plug-in are the image ones: the head kind follows the feature's rank.
- ``student_cfg=true`` ("ADM w/ CFG"): the student runs CFG at the real scale minus 2.0 in training; the
  exported sampler uses 6 - 2 = 4 (ours: the paper does not give the inference scale), 16 NFE.
- Ours, not the paper's: head width 256 (none given); no context / sequence parallelism or FSDP CPU offload.

Optimisation (appendix B): AdamW, no weight decay, betas (0, 0.99); lr D 5e-6, fake 1e-6 always; SDXL
generator 1e-6 (ADP) / 1e-7 (ADM); 8K iterations each, batch 128, bf16, FSDP, gradient checkpointing.
Inference: no CFG (except video "w/ CFG"); Euler on the straight path for flow students (the checkpoint's config records
readout = flow and ``addbench.bases.checkpoint`` loads the student with that schedule).
"""
from .adm import ADM
from .adp import ADP

__all__ = ["ADP", "ADM"]
