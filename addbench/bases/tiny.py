"""Tiny random-weight pipelines of every family, saved in the real diffusers layout.

For tests and CPU smoke runs (no download): the configs follow diffusers' own pipeline tests
(``get_dummy_components``) with the real CLIP tokenizer built offline (:mod:`addbench.bases.tokenizer`).
``write_pipeline_dir`` is also how the toy world writes its ``AddbenchToyPipeline`` directory.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from addbench.bases.tokenizer import VOCAB_SIZE, build_clip_tokenizer

FAMILY_PIPELINES = {"sd15": "StableDiffusionPipeline", "sd21": "StableDiffusionPipeline",
                    "sdxl": "StableDiffusionXLPipeline", "sd3": "StableDiffusion3Pipeline",
                    "cogvideox": "CogVideoXPipeline", "toy": "AddbenchToyPipeline"}


def write_pipeline_dir(out_dir: str | os.PathLike, class_name: str, components: dict, extra_index: dict | None = None) -> Path:
    """Save each component (``save_pretrained``; the scheduler as a config) and a ``model_index.json``.

    ``components``: name -> module / tokenizer / scheduler, or None for an absent optional component.
    """
    import diffusers

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = {"_class_name": class_name, "_diffusers_version": diffusers.__version__}
    for name, comp in components.items():
        if comp is None:
            index[name] = [None, None]
            continue
        comp.save_pretrained(str(out / name))
        index[name] = [type(comp).__module__.split(".")[0], type(comp).__name__]
    index.update(extra_index or {})
    (out / "model_index.json").write_text(json.dumps(index, indent=2))
    return out


def _clip_text(cls_name: str = "CLIPTextModel", hidden: int = 32, projection_dim: int | None = None):
    import transformers

    kw = dict(bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, hidden_size=hidden, intermediate_size=37,
              layer_norm_eps=1e-5, num_attention_heads=4, num_hidden_layers=2, vocab_size=VOCAB_SIZE,
              max_position_embeddings=77, hidden_act="gelu")
    if projection_dim:
        kw["projection_dim"] = projection_dim
    return getattr(transformers, cls_name)(transformers.CLIPTextConfig(**kw))


def _tiny_t5(tok_dir: Path, sub: str = "tokenizer_3"):
    from transformers import T5Config, T5EncoderModel

    from addbench.bases.tokenizer import build_tiny_t5_tokenizer

    tok = build_tiny_t5_tokenizer(tok_dir / sub)
    cfg = T5Config(vocab_size=len(tok), d_model=32, d_ff=37, d_kv=8, num_heads=4, num_layers=2,
                   relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return T5EncoderModel(cfg), tok


def _tiny_cogvideox(tok_dir: Path, rotary: bool) -> dict:
    """6 DiT blocks (taps 2 and 5), 32x32 px / 4x4 latents, 9 frames / 3 latent frames, a 4-block 3D VAE
    (f8, temporal 4); ``rotary``: 5B-like (3D RoPE, SNR shift 1), else 2B-like (sinusoidal, SNR shift 3)."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel

    from addbench.bases.cogvideox import SCHEDULER, SCHEDULER_5B

    transformer = CogVideoXTransformer3DModel(num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4,
                                              time_embed_dim=8, text_embed_dim=32, num_layers=6, sample_width=4,
                                              sample_height=4, sample_frames=9, patch_size=2, temporal_compression_ratio=4,
                                              max_text_seq_length=16, use_rotary_positional_embeddings=rotary)
    vae = AutoencoderKLCogVideoX(block_out_channels=(8, 8, 8, 8), latent_channels=4, layers_per_block=1, norm_num_groups=2,
                                 temporal_compression_ratio=4, sample_height=32, sample_width=32,
                                 scaling_factor=0.7 if rotary else 1.15258426)
    text_encoder, tok = _tiny_t5(tok_dir, "tokenizer")
    return {"transformer": transformer, "vae": vae, "text_encoder": text_encoder, "tokenizer": tok,
            "scheduler": CogVideoXDDIMScheduler(**(SCHEDULER_5B if rotary else SCHEDULER))}


def tiny_components(family: str, tokenizer_dir: str | os.PathLike, seed: int = 0, t5: bool = False,
                    rotary: bool = False) -> dict:
    """Random-weight components of a tiny ``family`` pipeline (tokenizers are written to ``tokenizer_dir``);
    ``t5``: give SD3 a tiny T5 encoder (else none: diffusers then uses zeros for the T5 tokens);
    ``rotary``: CogVideoX like 5B (3D RoPE), else like 2B."""
    from diffusers import (AutoencoderKL, DDIMScheduler, DDPMScheduler, FlowMatchEulerDiscreteScheduler,
                           SD3Transformer2DModel, UNet2DConditionModel)

    torch.manual_seed(seed)
    tok_dir = Path(tokenizer_dir)
    if family == "cogvideox":
        return _tiny_cogvideox(tok_dir, rotary)
    tok = build_clip_tokenizer(tok_dir / "tokenizer")
    vae_kw = dict(block_out_channels=[4, 8], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=2,
                  down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2)
    vp = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
              set_alpha_to_one=True, timestep_spacing="trailing", steps_offset=1)
    if family in ("sd15", "sd21", "toy"):
        ch = 3 if family == "toy" else 4
        unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=32 if family == "toy" else 16,
                                    in_channels=ch, out_channels=ch, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                    norm_num_groups=4, attention_head_dim=4)
        pred = "v_prediction" if family == "sd21" else "epsilon"
        c = {"unet": unet, "text_encoder": _clip_text(), "tokenizer": tok}
        if family == "toy":
            c["scheduler"] = DDPMScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=0.02, prediction_type=pred,
                                           clip_sample=False, timestep_spacing="trailing")
            c["vae"] = None
        else:
            c["scheduler"] = DDIMScheduler(prediction_type=pred, **vp)
            c["vae"] = AutoencoderKL(**vae_kw)
        return c
    if family == "sdxl":
        unet = UNet2DConditionModel(block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4,
                                    out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
                                    use_linear_projection=True, addition_embed_type="text_time",
                                    addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
                                    projection_class_embeddings_input_dim=80, cross_attention_dim=64, norm_num_groups=1)
        return {"unet": unet, "text_encoder": _clip_text(), "tokenizer": tok,
                "text_encoder_2": _clip_text("CLIPTextModelWithProjection", projection_dim=32),
                "tokenizer_2": build_clip_tokenizer(tok_dir / "tokenizer_2", pad_token="!"),
                "vae": AutoencoderKL(**vae_kw), "scheduler": DDIMScheduler(prediction_type="epsilon", **vp)}
    if family == "sd3":
        transformer = SD3Transformer2DModel(sample_size=32, patch_size=1, in_channels=4, num_layers=1,
                                            attention_head_dim=8, num_attention_heads=4, caption_projection_dim=32,
                                            joint_attention_dim=32, pooled_projection_dim=64, out_channels=4)
        vae = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1,
                            latent_channels=4, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
                            shift_factor=0.0609, scaling_factor=1.5035)
        return {"transformer": transformer,
                "text_encoder": _clip_text("CLIPTextModelWithProjection", projection_dim=32), "tokenizer": tok,
                "text_encoder_2": _clip_text("CLIPTextModelWithProjection", projection_dim=32),
                "tokenizer_2": build_clip_tokenizer(tok_dir / "tokenizer_2"),
                **dict(zip(("text_encoder_3", "tokenizer_3"), _tiny_t5(tok_dir) if t5 else (None, None))), "vae": vae,
                "scheduler": FlowMatchEulerDiscreteScheduler(shift=3.0)}
    raise ValueError(f"no tiny config for family {family!r}; known: {', '.join(FAMILY_PIPELINES)}")


def save_tiny_pipeline(family: str, out_dir: str | os.PathLike, seed: int = 0, t5: bool = False,
                       rotary: bool = False) -> Path:
    """Build a tiny random-weight ``family`` pipeline and save it to ``out_dir`` (diffusers layout)."""
    out = Path(out_dir)
    comps = tiny_components(family, out, seed, t5=t5, rotary=rotary)
    extra = {"force_zeros_for_empty_prompt": True} if family == "sdxl" else None
    if family in ("sd15", "sd21"):
        comps.update(safety_checker=None, feature_extractor=None, image_encoder=None)
        extra = {"requires_safety_checker": False}
    return write_pipeline_dir(out, FAMILY_PIPELINES[family], comps, extra)
