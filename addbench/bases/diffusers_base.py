"""Shared code of the diffusers-backed bases: loading, CFG, x0, VAE, copies. Families override hooks."""
from __future__ import annotations

import contextlib
import copy
import json
import os
from pathlib import Path

import torch

from addbench.bases.cond import Cond
from addbench.bases.components import (load_component, read_model_index, read_scheduler_config,
                                       resolve_device, resolve_dtype, resolve_pipeline_dir)
from addbench.bases.interface import Base, Sampler
from addbench.errors import AddbenchError

SAMPLER_FILE = "addbench_sampler.json"  # optional: a pipeline dir's default Sampler.to_dict()


@contextlib.contextmanager
def _quiet_diffusers():
    """Hide diffusers' "modules that should be kept in float32: []" warning on ``.to(dtype)``."""
    from diffusers.utils import logging as dlog

    level = dlog.get_verbosity()
    dlog.set_verbosity_error()
    try:
        yield
    finally:
        dlog.set_verbosity(level)


class DiffusersBase(Base):
    """A base built from a diffusers pipeline directory (or from in-memory ``components``).

    ``Cls(source=None, device=None, dtype=None, components=None)``: ``source`` is a pipeline directory or
    hub id (default ``default_source``); ``components`` (dict name -> module, plus ``"scheduler_config"``
    and optionally ``"model_index"``) skips the disk, e.g. for random-weight latency runs.
    """

    name = "?"
    default_source: str | None = None
    network_key = "unet"
    resolution = 512
    sampler_defaults: dict = {"steps": 25, "guidance": 7.5, "solver": "ddim"}
    optional_components: tuple[str, ...] = ()
    required_components: tuple[str, ...] = ()
    missing_hint = ""  # shown when the default local source does not exist
    x0_clip: float | None = None  # sampling clamps x0 to [-c, c] before each ODE step (scheduler clip_sample)

    def __init__(self, source: str | os.PathLike | None = None, device=None, dtype=None, components: dict | None = None):
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.source = None
        self.model_index: dict = {}
        sampler_file = None
        if components is None:
            src = source if source is not None else self.default_source
            if src is None:
                raise AddbenchError(f"base {self.name!r} needs a pipeline directory or hub id")
            if source is None and self.missing_hint and not Path(src).exists():
                raise AddbenchError(f"{self.name} weights not found at {src}; {self.missing_hint}")
            self.source = resolve_pipeline_dir(src)
            self.model_index = read_model_index(self.source)
            components = {k: load_component(self.source, self.model_index, k, required=True)
                          for k in self.required_components}
            components.update({k: load_component(self.source, self.model_index, k, required=False)
                               for k in self.optional_components})
            components["scheduler_config"] = read_scheduler_config(self.source)
            sampler_file = self.source / SAMPLER_FILE
        else:
            self.source = Path(source) if source is not None else None
            self.model_index = components.get("model_index", {})
        self.scheduler_config = dict(components["scheduler_config"])
        self.schedule = self.make_schedule(self.scheduler_config)
        if self.x0_clip is None and self.scheduler_config.get("clip_sample", False):
            self.x0_clip = float(self.scheduler_config.get("clip_sample_range", 1.0))
        with _quiet_diffusers():
            self.setup(components)
            self.network.to(self.device, self.dtype).eval().requires_grad_(False)
            self.vae = components.get("vae")
            if self.vae is not None:
                upcast = self.dtype == torch.float16 and getattr(self.vae.config, "force_upcast", False)
                self.vae_dtype = torch.float32 if upcast else self.dtype
                self.vae.to(self.device, self.vae_dtype).eval().requires_grad_(False)
        sampler = dict(self.sampler_defaults, **self.default_size())
        if sampler_file is not None and sampler_file.is_file():
            sampler.update(json.loads(sampler_file.read_text()))
        self.default_sampler = Sampler.from_dict(sampler)
        self._null: Cond | None = None

    # ---- family hooks -------------------------------------------------------------------------------
    def make_schedule(self, scheduler_config: dict):
        from addbench.schedules import VPSchedule

        return VPSchedule.from_diffusers_config(scheduler_config)

    def setup(self, components: dict) -> None:
        """Take the components (set ``self.network`` and the text encoders)."""
        raise NotImplementedError

    def _encode(self, prompts: list[str]) -> Cond:
        raise NotImplementedError

    def _network_call(self, net, x, t, cond: Cond) -> torch.Tensor:
        raise NotImplementedError

    def _empty_cond(self, n: int) -> Cond:
        return self._encode([""] * n)

    def default_size(self) -> dict:
        """The default sampler's size (``height``, ``width``; video bases add ``frames``)."""
        return {"height": self.resolution, "width": self.resolution}

    # ---- shared -------------------------------------------------------------------------------------
    def _text_module(self, module):
        if module is not None:
            module.to(self.device, self.dtype).eval().requires_grad_(False)
        return module

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> Cond:
        return self._encode(list(prompts))

    def null_cond(self, n: int) -> Cond:
        if self._null is None:
            with torch.no_grad():
                self._null = self._empty_cond(1)
        return self._null.repeat(n)

    def _t(self, t, x: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device, dtype=torch.float32)
        return t.expand(x.shape[0]) if t.ndim == 0 else t

    def predict(self, x_t: torch.Tensor, t, cond: Cond, network: torch.nn.Module | None = None) -> torch.Tensor:
        """Raw network output (epsilon / v / flow velocity) in ``x_t``'s dtype."""
        net = self.network if network is None else network
        dt = next(net.parameters()).dtype
        out = self._network_call(net, x_t.to(dt), self._t(t, x_t), cond.to(x_t.device, dt))
        return out.to(x_t.dtype)

    def predict_cfg(self, x_t: torch.Tensor, t, cond: Cond, guidance: float = 1.0,
                    network: torch.nn.Module | None = None, null: Cond | None = None) -> torch.Tensor:
        """Raw network output; with ``guidance != 1`` classifier-free guidance on it (one batched call on
        [null, cond], like diffusers). ``null`` defaults to ``null_cond``."""
        t = self._t(t, x_t)
        if guidance == 1.0:
            return self.predict(x_t, t, cond, network)
        null = self.null_cond(len(cond)) if null is None else null
        both = self.predict(torch.cat([x_t, x_t]), torch.cat([t, t]), Cond.cat([null.to(x_t.device), cond.to(x_t.device)]),
                            network)
        out_u, out_c = both.chunk(2)
        return out_u + guidance * (out_c - out_u)

    def x0(self, x_t: torch.Tensor, t, cond: Cond, guidance: float = 1.0, network: torch.nn.Module | None = None,
           null: Cond | None = None) -> torch.Tensor:
        """x0 prediction from :meth:`predict_cfg` (CFG on the raw output when ``guidance != 1``)."""
        t = self._t(t, x_t)
        return self.schedule.to_x0(self.predict_cfg(x_t, t, cond, guidance, network, null), x_t, t)

    @property
    def vae_scale(self) -> tuple[float, float]:
        cfg = self.vae.config
        return float(cfg.scaling_factor), float(getattr(cfg, "shift_factor", None) or 0.0)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (not clamped), fp32."""
        if self.vae is None:
            return latents.float()
        scale, shift = self.vae_scale
        z = latents.to(self.vae_dtype) / scale + shift
        return self.vae.decode(z, return_dict=False)[0].float()

    def encode(self, images: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latents (fp32) of images in [-1, 1]; the posterior mean unless ``sample``."""
        if self.vae is None:
            return images.float()
        scale, shift = self.vae_scale
        dist = self.vae.encode(images.to(self.device, self.vae_dtype)).latent_dist
        z = dist.sample(generator) if sample else dist.mode()
        return ((z.float() - shift) * scale)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels) if self.vae is not None else int(self.network.config.in_channels)

    @property
    def vae_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1) if self.vae is not None else 1

    def latent_shape(self, height: int, width: int, frames: int = 1) -> tuple[int, ...]:
        if frames != 1:
            raise AddbenchError(f"{self.name} is an image base; frames must be 1, got {frames}")
        f = self.vae_factor
        if height % f or width % f:
            raise AddbenchError(f"{self.name}: height/width must be multiples of {f}, got {height}x{width}")
        return (self.latent_channels, height // f, width // f)

    def copy_network(self) -> torch.nn.Module:
        return copy.deepcopy(self.network)

    def network_files(self) -> list[Path]:
        """Weight files of the (loaded) network on disk, for hashing; [] for in-memory components."""
        if self.source is None:
            return []
        d = self.source / self.network_key
        return sorted(p for p in d.iterdir() if p.suffix in (".safetensors", ".bin", ".json")) if d.is_dir() else []
