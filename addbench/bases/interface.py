"""The contract between generators, the eval runner and the distillers.

A *generator* turns (prompt, seed) pairs into uint8 images deterministically: the same pair gives
the same image whatever the batch size, the shard or the restart (noise is drawn per sample from
``torch.Generator().manual_seed(seed)`` on the CPU, then moved to the device). Video generators
(``Base.video``, e.g. CogVideoX) return clips: uint8 (N, F, 3, H, W), F frames per sample.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field

import torch


@dataclass(frozen=True)
class Sampler:
    """How a generator samples: NFE, explicit timesteps, CFG, solver. Saved in checkpoints."""

    steps: int = 25
    timesteps: tuple[float, ...] | None = None  # explicit model timesteps, high to low; overrides steps
    guidance: float = 1.0  # classifier-free guidance scale; 1.0 = no CFG
    solver: str = "ddim"  # "ddim" (VP, deterministic) | "euler" (flow) -- same x0/eps update
    spacing: str = "trailing"
    height: int | None = None
    width: int | None = None
    frames: int | None = None  # video bases: frames per clip (pixel frames, e.g. 49); None = the base's default

    @property
    def nfe(self) -> int:
        n = len(self.timesteps) if self.timesteps else self.steps
        return n * (2 if self.guidance != 1.0 else 1)

    @property
    def label(self) -> str:
        """Short name for model names and table rows: steps, and CFG when used (``25step-cfg3``)."""
        n = len(self.timesteps) if self.timesteps else self.steps
        return f"{n}step" + (f"-cfg{self.guidance:g}" if self.guidance != 1.0 else "")

    def to_dict(self) -> dict:
        """JSON-able; ``frames`` only when set, so image samplers (and their model hashes) are unchanged."""
        d = asdict(self)
        d["timesteps"] = list(self.timesteps) if self.timesteps else None
        if d["frames"] is None:
            del d["frames"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Sampler":
        d = dict(d)
        if d.get("timesteps") is not None:
            d["timesteps"] = tuple(float(t) for t in d["timesteps"])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class Generator(ABC):
    """What ``addbench eval`` needs from a model."""

    name: str  # human-readable, e.g. "toy@25" or a checkpoint dir name
    model_hash: str  # sha256 over weights + sampler (provenance)
    sampler: Sampler  # default sampler
    base_name: str  # registered base it belongs to ("toy", "sdxl", ...)

    @abstractmethod
    def generate(self, prompts: list[str], seeds: list[int], sampler: Sampler | None = None) -> torch.Tensor:
        """uint8 images (N, 3, H, W) on the CPU, one per (prompt, seed) pair; a video generator gives
        uint8 clips (N, F, 3, H, W)."""

    def describe(self) -> dict:
        return {"name": self.name, "model_hash": self.model_hash, "base": self.base_name,
                "sampler": self.sampler.to_dict()}


class Base(ABC):
    """A model-family adapter for distillers (DESIGN.md "Base adapters"); one class per family.

    Everything family-specific (conditioning, parameterisation, VAE, feature taps) lives behind this, so
    losses never branch on the family. ``cond`` objects are opaque to callers except that they support
    ``len``, indexing/slicing and ``cat`` (see :class:`addbench.bases.cond.Cond`).
    """

    name: str  # registered family name ("toy", "sd15", "sd21", "sdxl", "sd3", "cogvideox")
    video: bool = False  # True: latents (N, F, C, h, w), decode -> (N, F, 3, H, W), generate -> uint8 (N, F, 3, H, W)
    network: torch.nn.Module  # the denoiser (UNet / transformer)
    schedule: "object"  # addbench.schedules.NoiseSchedule
    feature_taps: list[str]  # module names of ``network`` whose outputs feed discriminator heads
    default_sampler: Sampler
    device: torch.device
    dtype: torch.dtype

    @abstractmethod
    def encode_prompts(self, prompts: list[str]): ...

    @abstractmethod
    def null_cond(self, n: int): ...

    @abstractmethod
    def predict(self, x_t: torch.Tensor, t, cond, network: torch.nn.Module | None = None) -> torch.Tensor: ...

    @abstractmethod
    def x0(self, x_t: torch.Tensor, t, cond, guidance: float = 1.0, network: torch.nn.Module | None = None,
           null=None) -> torch.Tensor: ...

    @abstractmethod
    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def encode(self, images: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def latent_shape(self, height: int, width: int, frames: int = 1) -> tuple[int, ...]:
        """Per-sample latent shape: (C, h, w) for image bases (``frames`` must be 1); (F', C, h, w) for video
        bases, F' latent frames for ``frames`` pixel frames."""

    @abstractmethod
    def copy_network(self) -> torch.nn.Module: ...

    def feature_map(self, feature: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        """A tapped network feature (``feature_taps``) as a discriminator-head input, given the network's
        input ``x_t``: (N, C, h, w) maps for images, (N, C, F, h, w) for video. Default: maps pass
        through, (N, L, C) tokens become a square (N, C, √L, √L) map (DiT blocks)."""
        from addbench.discriminators.backbones import tokens_to_map

        return tokens_to_map(feature) if feature.ndim == 3 else feature
