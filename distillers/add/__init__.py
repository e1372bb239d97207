"""ADD: Adversarial Diffusion Distillation (Sauer, Lorenz, Blattmann, Rombach 2023).

Recipe (equation / table numbers from the paper; values per base in ``presets.py``):

Networks (Sec. 3.1)
- student θ: a copy of the pretrained teacher network (``init=teacher``; ``init=random`` re-initialises it,
  Table 1c: collapses, FID 293.6); teacher ψ frozen; discriminator = frozen feature network F + trainable
  light heads D_φ,k on the features of several layers of F (Sec. 3.2).
- F: DINOv2 ViT-S (Table 1a, best; ViT-L and CLIP worse). Heads are conditioned by projection (Miyato &
  Koyama) on a text embedding c_text (CLIP ViT-g-14 text encoder) and an image embedding c_img (DINOv2
  ViT-L CLS of the real x0 the student input was made from); both together best (Table 1b).
  Toy world (ours): F = the toy CLIP image tower, c_text / c_img = toy CLIP text / image embeddings. The
  toy CLIP was trained on these 32×32 images and captions, so its features separate real from generated
  toy images; DINOv2 would see a 32×32 image as 2×2 patches of 14 px (after an upsample that only adds
  blur) and has no weights offline anyway.

Student input (Sec. 3.1)
- s ~ uniform over T_student = {τ1..τN}, N = 4, τ_n = 1000 (the top timestep); x_s = α_s x0 + σ_s ε from
  REAL images x0 (the toy dataset on the toy world). Zero-terminal SNR during training: the schedule
  is rescaled (Lin et al.) so that at τ = 1000 the input is pure noise, as at inference.
- x̂_θ = x0 prediction of the student at (x_s, s).

Loss (Eq. 1): L_G = λ_adv · L_adv^G + λ · L_distill, λ = 2.5 (all experiments); λ_adv = 1 (ours: the
  knob for the Table 1d ablation "L_distill alone", FID 315.6).
- Eq. 2 (generator, hinge): L_adv^G = -E Σ_k D_k(F_k(x̂_θ)).
- Eq. 3 (discriminator, hinge): E Σ_k max(0, 1 - D_k(F_k(x0))) + max(0, 1 + D_k(F_k(sg(x̂_θ))))
  + γ·R1, γ = 1e-5, R1 = ||∇ D_k(f)||² with respect to the INPUT f = F_k(x0) of each head (not pixels).
- Eq. 4 (distillation): E_{t,ε'} c(t)·||x̂_θ - x̂_ψ(sg(x̂_θ,t); t)||², x̂_θ,t = α_t x̂_θ + σ_t ε', one teacher
  step (Table 1f), in PIXEL space (decode latents first; Sec. 3.1). c(t): exponential α_t (default,
  Table 1d best FID), SDS α_t/(2σ_t)·w(t) (appendix A), NFSD (final model). t ~ U[0.02T, 0.98T] (ours: the
  paper gives no range). The teacher target uses the teacher schedule WITHOUT the zero-terminal rescale.
  Teacher CFG in x̂_ψ (``teacher_guidance``): the paper states none (Sec. 3.3 and appendix A use one ε̂_ψ);
  ours: 1 for exponential / SDS, NFSD's own scale 7.5 for NFSD (sdxl preset), 3 on the toy (its sampling CFG).

Training (Sec. 4): ablations 4000 iterations × batch 128 at 512²; the optimiser, learning rates and
update ratio are not given in the paper: ours are AdamW betas (0, 0.99), one D update per G update
(presets). Inference: no CFG, 1-4 steps on the student timesteps (1 step: τ = 1000).
"""
from .distiller import ADD

__all__ = ["ADD"]
