"""ADD hyper-parameters per base (Sauer et al. 2023; section / table numbers refer to the paper).

A preset is a flat dict; ``addbench train add --base B --set key=value`` overrides any key. Values the
paper gives are marked (paper); values it does not give are ours and marked (ours) with the reason.

Keys
- ``init``: "teacher" (Sec. 3.1, student = copy of the pretrained UNet) | "random" (Table 1c ablation).
- ``student_steps`` N (Sec. 3.1: N = 4, τ_n = 1000).
- ``readout`` (``addbench/readout.py``): how the student's output becomes x̂_θ. Paper: "we set τ_n = 1000 and
  enforce zero-terminal SNR"; at zero terminal SNR α_T = 0, so an ε-prediction is undefined at τ_n and Lin et
  al. switch to v-prediction: ``v_prediction+ztsnr`` (SD2.1, ADD-M's base, is a v-prediction model already;
  for ε-prediction bases it re-reads the teacher's output head, which the student must re-learn).
- ``lambda_distill`` λ (Eq. 1, 2.5 in all experiments) and ``lambda_adv`` (1; 0 gives the Table 1d
  "L_distill alone" ablation).
- ``distill_reduction``: d of Eq. 4 is the squared L2 norm ||·||²₂ ("sum" over pixel values, paper; "mean"
  divides by the D values and makes L_distill D times weaker against L_adv: 1/3072 on the toy).
- ``weighting``: "exponential" c(t)=α_t (default in ablations) | "sds" c(t)=α_t/(2σ_t)·w(t) (appendix A) |
  "nfsd" (Katzir et al., used for the final ADD-XL model, Table 1d).
- ``distill_t``: [lo, hi] fractions of T for the teacher timestep t of Eq. 4 (not in the paper; ours,
  the usual SDS range).
- ``teacher_guidance``: CFG of the teacher target x̂_ψ. Ours: the paper never gives one. Sec. 3.3 writes the
  target with a single teacher prediction, x̂_ψ = (x̂_θ,t - σ_t ε̂_ψ(x̂_θ,t, t))/α_t, appendix A (SDS
  equivalence) uses the same ε̂_ψ, and CFG is mentioned only to say that ADD samples without it (Sec. 1).
  Hence 1 (plain conditional ε̂_ψ) for the exponential / SDS weightings. NFSD (``weighting=nfsd``, ADD-XL)
  carries its own scale s on δ_C; ADD does not give it, so the sdxl preset takes NFSD's (Katzir et al.
  2023: 7.5, also ``nfsd_target``'s default).
- ``r1_gamma`` γ (Sec. 4: 1e-5, R1 on the inputs of each head).
- ``feature_net``: the frozen discriminator feature network F (Table 1a: DINOv2 ViT-S best): a DINOv2
  directory / HF-cache id (c_img = its CLS embedding; ADD used a separate ViT-L for c_img, ours: the same
  ViT-S), or "teacher" = the frozen teacher network's ``base.feature_taps`` (LADD-style).
- ``head_blocks`` / ``head_width``: the light trainable heads (``DMDXHead`` conv blocks; ours).
- ``cond_text`` / ``cond_img``: projection conditioning of the heads (Table 1b: both best).
- ``lr_g`` / ``lr_d`` / ``betas`` / ``weight_decay``: not in the ADD paper; ours (StyleGAN-T-like
  AdamW betas (0, 0.99) for both players, a small generator lr as for fine-tuning a pretrained UNet).
- ``batch`` / ``budget_images``: the budget in images seen (Table 1: 4000 iterations × batch 128).
- ``resolution``: training resolution in pixels.
"""
from __future__ import annotations

from distillers.budget import TOY_BUDGET

_COMMON = {
    "init": "teacher",
    "student_steps": 4,
    "readout": "v_prediction+ztsnr",
    "lambda_distill": 2.5,
    "lambda_adv": 1.0,
    "weighting": "exponential",
    "distill_reduction": "sum",
    "distill_t": [0.02, 0.98],
    "teacher_guidance": 1.0,
    "r1_gamma": 1e-5,
    "cond_text": True,
    "cond_img": True,
    "betas": [0.0, 0.99],
    "weight_decay": 0.0,
    "seed": 0,
}

PRESETS: dict[str, dict] = {
    # Our toy-world values: train in minutes on 2 CPU cores; see distillers/BUDGET.md for the shared budget.
    "toy": {
        **_COMMON,
        **TOY_BUDGET,
        # Ours: F = the frozen toy teacher's own UNet taps (down blocks + mid block, at t = 0), heads =
        # 2-block conv heads; c_text = mean-pooled teacher text tokens, c_img = pooled mid-block feature of
        # x0. Why not the toy CLIP image tower: it is the toy suite's metric network, so a discriminator on
        # its features would optimise the very features the toy FID / CLIP score read (the student would
        # game the metric); the teacher was trained on exactly these 32x32 images and captions, and is the
        # one backbone every base has. DINOv2 sees a 32x32 image as 2x2 patches and has no offline weights.
        "feature_net": "teacher",
        "feature_t": 0.0,  # timestep the teacher taps run at (clean images, as DMD2's classifier)
        "head_blocks": 2,
        "head_width": 64,
        # ours (every toy preset uses the same lr_g): a 1-step ε-prediction student reads x0 = (x - σ_T ε̂)/α_T
        # with α_T ≈ 0.068 on the toy (SD1.5) schedule, so x0 moves ~15x as much as ε̂. Measured on 2 CPU cores
        # (x0 MSE of a 1-step student regressed on 8-step teacher samples, batch 32, 100 steps): lr 1e-4
        # 0.258 -> 0.185; 3e-4 and 1e-3 first blow the teacher init up (0.49 / 0.74 at step 25) and end worse.
        "lr_g": 1e-4,
        "lr_d": 2e-4,
        # ours: the teacher target of Eq. 4 with the toy teacher's own sampling CFG (the paper does not state
        # the target's CFG; its NFSD final model uses guidance). Unguided, the toy teacher reaches FID 21.4
        # at 25 steps vs 7.1 with CFG 3, so an unguided target caps the student far from the CFG samples.
        "teacher_guidance": 3.0,
        # ours, toy-val winner of four trials (distillers/TUNING.md): γ = 1e-5 was tuned for DINOv2 features; on
        # the toy teacher's taps γ·R1 is ~1e-5 of the hinge loss. γ = 0.1: toy-val FID 90.2 vs 92.6 at 0.25x budget
        "r1_gamma": 0.1,
    },
    # ADD-M ablations (Table 1): SD2.1, 512 px, 4000 iterations, batch 128.
    "sd21": {
        **_COMMON,
        # DINOv2 ViT-S/14: a local save_pretrained dir or HF-cache id (nothing is downloaded); --set feature_net=<dir>
        "feature_net": "facebook/dinov2-small",
        # ours: ADD Sec. 3.2 only says "features F_k at different layers" and defers to StyleGAN-T [54]; these
        # are DMDX appendix B's taps for DINOv2 / SAM (layers 3, 6, 9, 12; ../shared/papers/NOTES.md)
        "feature_layers": [3, 6, 9, 12],
        "feature_t": 0.0,
        "head_blocks": 2,
        "head_width": 256,
        "lr_g": 1e-5,
        "lr_d": 1e-4,
        "batch": 128,
        "budget_images": 128 * 4000,
        "resolution": 512,
    },
}
# ADD-M in Table 2 is SD1.5 with the same recipe.
PRESETS["sd15"] = {**PRESETS["sd21"]}
# ADD-XL: SDXL backbone, 512 px comparisons, NFSD weighting for the final model (Sec. 4.1). teacher_guidance is
# NFSD's scale s on δ_C here: ours, NFSD's own 7.5 (ADD does not state it). It was 1.0 (inherited from _COMMON),
# which scales δ_C by 1 instead of NFSD's 7.5: changed.
PRESETS["sdxl"] = {**PRESETS["sd21"], "weighting": "nfsd", "teacher_guidance": 7.5}


# The unit world (base gmm, addbench/gmm): a 2-D class-conditional mixture whose law is known exactly;
# tests/gmm/test_distillers_exact.py trains this preset in seconds on one CPU thread and scores it exactly.
# Measured: the 4-step student (--set +sampler.steps=4, or the sampler override {"steps": 4}) keeps the
# teacher's 4-step DDIM quality; the 1-step student does NOT reach the exact law with any readout tried (each
# class collapses onto one of its two modes: ED 0.6-1.2; see the test module's docstring for the table).
from addbench.gmm import GMM_BUDGET  # noqa: E402  (light: numpy only)

PRESETS["gmm"] = {
    **_COMMON,
    **GMM_BUDGET,  # ours, gmm: batch 128, 200 steps (addbench/gmm/__init__.py)
    # ours, gmm: the teacher's own ε-readout. v_prediction+ztsnr (paper) re-reads the teacher's ε head and
    # starts every τ from garbage: measured 1-step ED 0.65 / 4-step 0.24 (5 of 8 modes); sample(+ztsnr),
    # v_prediction+ztsnr and flow all end at 4-step ED 0.24-0.57, while base keeps 0.12 with all 8 modes
    "readout": "base",
    "feature_net": "teacher",  # ours (as toy): the frozen teacher's MLP taps at t = 0 (VectorHeads)
    "feature_t": 0.0,
    "head_blocks": 2,  # ours (as toy)
    "head_width": 64,  # ours (as toy)
    "lr_g": 1e-3,  # ours, gmm: the 2-D MLP learns at ~1e-3 (1e-4: 4-step ED 0.13-0.29 in 200 steps)
    "lr_d": 1e-3,  # ours, gmm
}
