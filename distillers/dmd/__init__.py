"""DMD (v1): Distribution Matching Distillation (Yin, Gharbi, Zhang, Shechtman, Durand, Freeman, Park 2024).

Recipe (values per base in ``presets.py``, each with its source or "ours" + reason; table in
``distillers/PRESET_SOURCES.md``. DMD released no training code and its appendix was not available to us):

Networks
- generator G: one-step, a copy of the teacher called at t = T on pure noise z (x̂ = x0 prediction).
- real score μ_real: the frozen teacher WITH classifier-free guidance (scale ``real_guidance``).
- fake score μ_fake: a second copy of the teacher, trained online, no CFG.

Generator loss: L_G = λ_dm · L_DM + λ_reg · L_reg
- L_DM (DM gradient; DMD Eq. 7-8, in the form of tianweiy/DMD2 sd_guidance.py): t ~ U[0.02T, 0.98T],
  x_t = α_t x̂ + σ_t ε; p_real = x̂ - μ_real(x_t, t), p_fake = x̂ - μ_fake(x_t, t) (x0 predictions);
  grad = (p_real - p_fake) / mean_{C,H,W}|p_real| (per sample); L_DM = 0.5·||x̂ - sg(x̂ - grad)||²  (mean),
  whose gradient w.r.t. x̂ is grad / numel: it pulls x̂ towards the teacher's denoised guess and away from
  the fake score's.
- L_reg (DMD Eq. 9): LPIPS(G(z_ref), y_ref) on teacher ODE pairs (z_ref, y_ref) collected offline with a
  deterministic multi-step teacher sampler (``addbench/train/odepairs.py``), λ_reg = 0.25 (ours: unconfirmed
  DMD paper value, ../shared/papers/NOTES.md). On latent bases LPIPS is taken on decoded images, as DMD2's
  reimplementation of this regression does (LPIPS-VGG via piq, main/train_sd_ode.py:159-161, 270-283).

Fake-score loss (DMD Eq. 6): the base's own denoising loss on sg(x̂): t ~ U[0, T), ||net(x_t, t) - target||²
  (ε, v or flow target from the schedule), plain conditional, no CFG, no dropout. One fake update per
  generator update (DMD2 raises it to 5).

Optimisers: AdamW for G and μ_fake; betas (0.9, 0.999), weight decay 0.01 as DMD2's trainers
(main/train_sd_ode.py:80-85, main/train_sd.py:191-202); lrs per preset (SD1.5 1e-5: ours, DMD2's GAN-free
SD1.5 script). Inference: one step, no CFG.
"""
from .distiller import DMD

__all__ = ["DMD"]
