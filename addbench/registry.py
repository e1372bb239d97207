"""Name -> lazy ``"package.module:Object"`` registries for bases, metrics and distillers.

Nothing heavy is imported until ``get`` is called, so ``addbench ls`` stays instant. Third-party
packages add entries through the entry-point groups ``addbench.bases``, ``addbench.metrics`` and
``addbench.distillers`` (value: ``"package.module:Object"``). Suites are YAML files, discovered by
:mod:`addbench.suites`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata


class RegistryError(KeyError):
    """Unknown name or a target that cannot be imported; the message is one line for the CLI."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "package.module:Object"
    help: str = ""


class Registry:
    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._group = entry_point_group
        self._loaded_entry_points = False

    def register(self, name: str, target: str, help: str = "") -> None:
        if ":" not in target:
            raise ValueError(f"{self.kind} {name!r}: target must be 'package.module:Object', got {target!r}")
        self._entries[name] = Entry(name, target, help)

    def _load_entry_points(self) -> None:
        if self._loaded_entry_points or not self._group:
            return
        self._loaded_entry_points = True
        for ep in metadata.entry_points(group=self._group):
            if ep.name not in self._entries:
                self._entries[ep.name] = Entry(ep.name, ep.value, f"(plug-in {ep.value})")

    def entries(self) -> list[Entry]:
        self._load_entry_points()
        return sorted(self._entries.values(), key=lambda e: e.name)

    def names(self) -> list[str]:
        return [e.name for e in self.entries()]

    def __contains__(self, name: str) -> bool:
        self._load_entry_points()
        return name in self._entries

    def canonical(self, name: str, stage: str | None = None) -> str:
        """Accept ``distillers.dmdx`` / ``dmdx`` + ``stage`` as spellings of ``dmdx.adp``; return the entry name."""
        self._load_entry_points()
        short = name.split(".", 1)[1] if name.startswith(("distillers.", "addbench.")) else name
        if stage:
            short = f"{short}.{stage}"
        if short not in self._entries:
            stages = [n.split(".", 1)[1] for n in self._entries if n.startswith(short + ".")]
            if stages:
                raise RegistryError(f"{self.kind} {short!r} has stages {', '.join(stages)}: pass --stage {'|'.join(stages)}")
        self.entry(short)
        return short

    def entry(self, name: str) -> Entry:
        self._load_entry_points()
        if name not in self._entries:
            known = ", ".join(self.names()) or "none"
            raise RegistryError(f"unknown {self.kind} {name!r}; known {self.kind}s: {known} (see `addbench ls`)")
        return self._entries[name]

    def get(self, name: str):
        entry = self.entry(name)
        module_name, _, attr = entry.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise RegistryError(
                f"{self.kind} {name!r} needs {exc.name or module_name!r}, which is not installed: "
                f"pip install 'addbench[metrics,train]'"
            ) from exc
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj


BASES = Registry("base", "addbench.bases")
METRICS = Registry("metric", "addbench.metrics")
DISTILLERS = Registry("distiller", "addbench.distillers")

# ---- built-in bases: model-family adapters (addbench/bases/) -------------------------------------
BASES.register("toy", "addbench.bases.toy:ToyBase", "shipped 32x32 pixel-space text-to-image model (the toy world)")
BASES.register("gmm", "addbench.gmm.base:GMMBase", "the unit world: 2-D class-conditional Gaussian mixture with an exact teacher (addbench.gmm)")
BASES.register("sd15", "addbench.bases.sd:SD15Base", "Stable Diffusion 1.5 (VP, epsilon, 512px)")
BASES.register("sd21", "addbench.bases.sd:SD21Base", "Stable Diffusion 2.1 (VP, v-prediction, 768px)")
BASES.register("sdxl", "addbench.bases.sd:SDXLBase", "Stable Diffusion XL (VP, epsilon, two text encoders, 1024px)")
BASES.register("sd3", "addbench.bases.sd3:SD3Base", "Stable Diffusion 3 (flow matching, MMDiT transformer)")
BASES.register("cogvideox", "addbench.bases.cogvideox:CogVideoXBase", "CogVideoX text-to-video pipeline dir (v-prediction DDIM, 3D VAE, T5)")
BASES.register("cogvideox-2b", "addbench.bases.cogvideox:CogVideoX2BBase", "CogVideoX-2b (THUDM/CogVideoX-2b, 49 frames 480x720)")
BASES.register("cogvideox-5b", "addbench.bases.cogvideox:CogVideoX5BBase", "CogVideoX-5b (THUDM/CogVideoX-5b, 3D RoPE, 49 frames 480x720)")

# ---- built-in metrics (addbench/metrics/, one file each) ----------------------------------------
METRICS.register("fid", "addbench.metrics.fid:FID", "Frechet distance of clean-fid features to cached reference stats (lower better)")
METRICS.register("kid", "addbench.metrics.fid:KID", "kernel inception distance, clean-fid features (lower better)")
METRICS.register("clip_score", "addbench.metrics.clip_score:CLIPScore", "open_clip image-text cosine, convention in the id")
METRICS.register("pickscore", "addbench.metrics.pickscore:PickScore", "PickScore v1 (CLIP-H, transformers), higher better")
METRICS.register("hpsv2", "addbench.metrics.hpsv2:HPSv2", "HPSv2 v2.0/v2.1 via open_clip ViT-H-14, higher better")
METRICS.register("mps", "addbench.metrics.mps:MPS", "Multi-dimensional Preference Score (safe tensor loader), higher better")
METRICS.register("lpips_diversity", "addbench.metrics.lpips_diversity:LPIPSDiversity", "mean pairwise LPIPS over seeds of a prompt (higher = more diverse)")
METRICS.register("caption_accuracy", "addbench.toy.caption_accuracy:CaptionAccuracy", "toy world: every attribute the caption names is classified right")
METRICS.register("toy_fid", "addbench.toy.metrics:ToyFID", "toy world: FID on toy-CLIP features vs real toy images (lower better)")
METRICS.register("toy_clip_score", "addbench.toy.metrics:ToyCLIPScore", "toy world: CLIP score with the shipped toy CLIP")

# ---- built-in distillers (distillers/, one package each) ---------------------------------------
DISTILLERS.register("add", "distillers.add:ADD", "Adversarial Diffusion Distillation (Sauer et al. 2023)")
DISTILLERS.register("dmd", "distillers.dmd:DMD", "Distribution Matching Distillation + LPIPS ODE-pair regression (Yin et al. 2024)")
DISTILLERS.register("dmd2", "distillers.dmd2:DMD2", "DMD2: TTUR, GAN head on the fake UNet, backward simulation")
DISTILLERS.register("dmdx.adp", "distillers.dmdx:ADP", "DMDX stage 1: adversarial distillation pretraining on ODE pairs")
DISTILLERS.register("dmdx.adm", "distillers.dmdx:ADM", "DMDX stage 2: adversarial distribution matching")
