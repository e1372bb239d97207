"""CogVideoX text-to-video (Yang et al. 2024): expert-transformer DiT on 3D-VAE latents, T5 text, v-prediction.

- latents (N, F', C, h, w) as diffusers' ``CogVideoXTransformer3DModel`` takes them; F' = (F - 1) / 4 + 1 latent
  frames for F pixel frames (49 -> 13; F' must be odd, so F = 8k + 1), h, w = H / 8, W / 8; the VAE (``AutoencoderKLCogVideoX``) works on
  (N, C, F, H, W), so ``decode`` / ``encode`` permute. ``decode`` gives clips (N, F, 3, H, W) in [-1, 1].
- text: T5 (v1.1 XXL) last hidden state of ``max_text_seq_length`` (226) tokens; the null condition is the
  empty prompt encoded (as the pipeline's default negative prompt).
- noise: ``CogVideoXDDIMScheduler``'s VP schedule: scaled-linear betas, SNR divided by ``snr_shift_scale``
  (3.0 for 2B, 1.0 for 5B), zero terminal SNR, v-prediction, trailing timesteps; its step is our DDIM step
  and never clips x0 (whatever ``clip_sample`` says).
- 5B: 3D rotary position embeddings, built per latent shape exactly as ``CogVideoXPipeline`` does; 2B:
  sinusoidal position embeddings inside the transformer. CogVideoX 1.5 (``patch_size_t``) is not supported.
- discriminator taps (DMDX appendix B): the image-token output of every 3rd DiT block (10 for 2B's 30
  blocks, 14 for 5B's 42), reshaped to (N, C, F', h/2, w/2) by ``feature_map``.
"""
from __future__ import annotations

import json
from importlib import resources

import torch

from addbench.bases.components import build_component
from addbench.bases.cond import Cond
from addbench.bases.diffusers_base import DiffusersBase
from addbench.errors import AddbenchError

TAP_EVERY = 3  # DMDX appendix B: "every 3 DiT blocks" (3D heads are costly)

# scheduler/scheduler_config.json of THUDM/CogVideoX-2b and -5b (they differ only in snr_shift_scale)
SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "prediction_type": "v_prediction", "rescale_betas_zero_snr": True, "snr_shift_scale": 3.0,
             "set_alpha_to_one": True, "clip_sample": False, "steps_offset": 0, "timestep_spacing": "trailing"}
SCHEDULER_5B = dict(SCHEDULER, snr_shift_scale=1.0)


class CogVideoXBase(DiffusersBase):
    """A CogVideoX pipeline directory (``CogVideoXPipeline``: transformer, vae, text_encoder, tokenizer)."""

    name = "cogvideox"
    video = True
    network_key = "transformer"
    sampler_defaults = {"steps": 50, "guidance": 6.0, "solver": "ddim"}  # the model card's 50 steps, CFG 6
    required_components = ("transformer", "vae", "text_encoder", "tokenizer")
    x0_clip = 0.0  # CogVideoXDDIMScheduler.step never clips x0
    micro_batch_sizes = {"cuda": 1, "cpu": 1}  # one 49-frame clip (x2 with CFG) per network call
    fps = 8  # the clips' frame rate (49 frames = 6 s + 1, the model card's 8 fps): what video suites write

    def setup(self, c: dict) -> None:
        net = c["transformer"]
        if getattr(net.config, "patch_size_t", None) is not None:
            raise AddbenchError("CogVideoX 1.5 transformers (patch_size_t) are not supported; use CogVideoX-2b / -5b")
        self.network = net
        self.tokenizer = c["tokenizer"]
        self.text_encoder = self._text_module(c["text_encoder"])
        self._rope: dict = {}

    # ---- sizes ----------------------------------------------------------------------------------------
    @property
    def temporal_factor(self) -> int:
        return int(self.vae.config.temporal_compression_ratio)

    def default_size(self) -> dict:
        cfg, f = self.network.config, self.vae_factor
        return {"height": cfg.sample_height * f, "width": cfg.sample_width * f, "frames": cfg.sample_frames}

    def latent_shape(self, height: int, width: int, frames: int = 1) -> tuple[int, ...]:
        f, p, tf = self.vae_factor, self.network.config.patch_size, self.temporal_factor
        if height % (f * p) or width % (f * p):
            raise AddbenchError(f"{self.name}: height/width must be multiples of {f * p}, got {height}x{width}")
        if frames < 1 or (frames - 1) % (2 * tf):  # the VAE decodes an odd number of latent frames to 4k + 1
            raise AddbenchError(f"{self.name}: frames must be {2 * tf}k + 1 (1, 9, ..., 49), got {frames}")
        return ((frames - 1) // tf + 1, self.latent_channels, height // f, width // f)

    # ---- text and network -----------------------------------------------------------------------------
    def _encode(self, prompts: list[str]) -> Cond:
        ids = self.tokenizer(prompts, padding="max_length", max_length=self.network.config.max_text_seq_length,
                             truncation=True, add_special_tokens=True, return_tensors="pt").input_ids
        return Cond(self.text_encoder(ids.to(self.device))[0])

    def rotary(self, net, x: torch.Tensor):
        """(cos, sin) 3D RoPE for latents ``x`` (N, F', C, h, w), as ``CogVideoXPipeline`` builds it; None for 2B."""
        cfg = net.config
        if not cfg.use_rotary_positional_embeddings:
            return None
        key = (tuple(x.shape[1:]), str(x.device), cfg.attention_head_dim, cfg.sample_height, cfg.sample_width)
        if key not in self._rope:
            from diffusers.models.embeddings import get_3d_rotary_pos_embed
            from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

            p = cfg.patch_size
            grid = (x.shape[-2] // p, x.shape[-1] // p)
            crops = get_resize_crop_region_for_grid(grid, cfg.sample_width // p, cfg.sample_height // p)
            self._rope[key] = get_3d_rotary_pos_embed(embed_dim=cfg.attention_head_dim, crops_coords=crops,
                                                      grid_size=grid, temporal_size=x.shape[1], device=x.device)
        return self._rope[key]

    def _network_call(self, net, x, t, cond: Cond) -> torch.Tensor:
        return net(hidden_states=x, encoder_hidden_states=cond.hidden, timestep=t, image_rotary_emb=self.rotary(net, x),
                   return_dict=False)[0]

    # ---- VAE: (N, F', C, h, w) latents <-> (N, F, 3, H, W) clips ------------------------------------------
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Clips (N, F, 3, H, W) in [-1, 1] (not clamped), fp32."""
        return super().decode(latents.permute(0, 2, 1, 3, 4)).permute(0, 2, 1, 3, 4)

    def encode(self, videos: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latents (N, F', C, h, w) of clips (N, F, 3, H, W) in [-1, 1]."""
        return super().encode(videos.permute(0, 2, 1, 3, 4), sample, generator).permute(0, 2, 1, 3, 4)

    # ---- discriminator taps -----------------------------------------------------------------------------
    @property
    def feature_taps(self) -> list[str]:
        """Image tokens (output 0; output 1 is the text stream) of every 3rd block: 2, 5, ..., 29 for 2B."""
        n = len(self.network.transformer_blocks)
        return [f"transformer_blocks.{i}:0" for i in range(TAP_EVERY - 1, n, TAP_EVERY)]

    def feature_map(self, feature: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        """(N, F' h' w', C) block tokens -> (N, C, F', h', w') with h', w' = h / 2, w / 2 (patch 2)."""
        p = self.network.config.patch_size
        n, frames, _, h, w = x_t.shape
        return feature.reshape(n, frames, h // p, w // p, feature.shape[-1]).permute(0, 4, 1, 2, 3)


class CogVideoX2BBase(CogVideoXBase):
    name = "cogvideox-2b"
    default_source = "THUDM/CogVideoX-2b"


class CogVideoX5BBase(CogVideoXBase):
    name = "cogvideox-5b"
    default_source = "THUDM/CogVideoX-5b"


# ---- full-size architectures with random weights (speed / memory runs, parameter-count tests) -----------
ARCHS = ("cogvideox-2b", "cogvideox-5b")


def architecture(arch: str) -> dict:
    """``addbench/bases/architectures.json``'s entry: transformer, vae and text_encoder constructor arguments."""
    if arch not in ARCHS:
        raise AddbenchError(f"unknown CogVideoX architecture {arch!r}; use one of {', '.join(ARCHS)}")
    return json.loads(resources.files("addbench.bases").joinpath("architectures.json").read_text())[arch]


def random_weight_base(arch: str = "cogvideox-2b", device=None, dtype=None, seed: int = 0,
                       parts: tuple[str, ...] = ("transformer", "vae", "text_encoder")) -> CogVideoXBase:
    """The full-size ``arch`` with random weights, built on ``device`` (a tiny T5 tokenizer: prompts are padded
    to 226 tokens either way). ``parts`` may leave out the text encoder or VAE: a 1-layer stand-in is used."""
    import tempfile
    from pathlib import Path

    from addbench.bases.components import resolve_device, resolve_dtype
    from addbench.bases.tokenizer import build_tiny_t5_tokenizer

    spec = architecture(arch)
    device = resolve_device(device)
    torch.manual_seed(seed)
    comps = {}
    default = torch.get_default_dtype()
    torch.set_default_dtype(resolve_dtype(dtype, device))  # built in the target dtype: 5B + T5 in fp32 is 42 GB
    try:
        with torch.device(device):
            for k in ("transformer", "vae", "text_encoder"):
                s = spec[k] if k in parts else {**spec[k], "kwargs": {**spec[k]["kwargs"], **STAND_IN[k]}}
                comps[k] = build_component(s)
    finally:
        torch.set_default_dtype(default)
    with tempfile.TemporaryDirectory(prefix="addbench-t5tok-") as tmp:  # the tokenizer lives in memory
        comps["tokenizer"] = build_tiny_t5_tokenizer(Path(tmp) / "tokenizer")
    comps["scheduler_config"] = dict(SCHEDULER_5B if arch == "cogvideox-5b" else SCHEDULER)
    cls = CogVideoX5BBase if arch == "cogvideox-5b" else CogVideoX2BBase
    return cls(device=device, dtype=dtype, components=comps)


# smaller stand-ins for parts a measurement leaves out (same interfaces: 4096-wide T5 output, 16-channel VAE)
STAND_IN = {"transformer": {"num_layers": 1}, "vae": {"layers_per_block": 1, "block_out_channels": [32, 32, 32, 32]},
            "text_encoder": {"num_layers": 1, "d_ff": 256}}
