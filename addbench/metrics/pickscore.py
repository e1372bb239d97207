"""PickScore v1 (Kirstain et al. 2023): a CLIP-H fine-tuned on Pick-a-Pic human preferences.

Score of an image for its prompt, as in the model card's reference snippet::

    score = logit_scale.exp() * cos(image_embeds, text_embeds)

with the projected pooled embeddings of transformers' ``CLIPModel`` (``yuvalkirstain/PickScore_v1``) and the
processor of ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` (resize shortest side to 224 bicubic, centre crop,
CLIP mean/std; text padded/truncated to 77 tokens). ``logit_scale.exp()`` is about 100, so scores are
around 20-23 for good SDXL-class samples. Images arrive as uint8 tensors and go through PIL, as the
snippet's images do; the PIL image processor is used where transformers ships one. For square images with the
standard CLIP processor config, its PIL resize is the shared view of :mod:`addbench.metrics.views` (computed
once for CLIP score, PickScore and MPS) and its rescale + normalise are redone on the device in the same
arithmetic (float64 ``x * rescale_factor`` cast to float32, then ``(x - mean) / std``): the same pixels, bit for bit.

Weights load with ``from_pretrained`` from a local directory or the Hugging Face cache (``HF_HUB_OFFLINE=1``
is respected); a missing one raises :class:`AddbenchError` naming it.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from addbench.errors import AddbenchError
from addbench.metrics.base import Key, Metric
from addbench.metrics.views import ImageBatch, PilResize, as_batch

PICKSCORE_MODEL = "yuvalkirstain/PickScore_v1"
CLIP_H_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"


def _looks_local(name: str) -> bool:
    """A path (absolute, relative with ./, ~, existing, or with more than one '/') rather than a hub id."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or Path(name).exists()


def from_pretrained_or_error(cls, name_or_path: str | os.PathLike, what: str, **kwargs):
    """``cls.from_pretrained(name_or_path)``; a missing local dir or uncached hub id -> one-line AddbenchError."""
    name = str(name_or_path)
    if _looks_local(name) and not Path(name).expanduser().is_dir():
        raise AddbenchError(f"{what}: directory {name} not found; pass a local save_pretrained directory or a "
                            f"hub id that is in the Hugging Face cache")
    try:
        return cls.from_pretrained(str(Path(name).expanduser()) if _looks_local(name) else name, **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AddbenchError(f"{what}: could not load {name!r} ({first}); download it once with "
                            f"`hf download {name}` (or pass a local directory)") from None


def load_clip_processor(name_or_path: str, what: str):
    """(image processor, tokenizer) of a CLIP checkpoint directory or hub id; PIL image processor when available."""
    import transformers

    image_cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    return (from_pretrained_or_error(image_cls, name_or_path, what),
            from_pretrained_or_error(transformers.AutoTokenizer, name_or_path, what))


class ClipPixels:
    """CLIP ``pixel_values`` of uint8 images: transformers' PIL processor per image, or, for square images and
    the standard config (see :func:`processor_view`), the shared PIL resize view + the processor's arithmetic."""

    def __init__(self, image_processor, device, dtype):
        self.processor, self.device, self.dtype = image_processor, torch.device(device), dtype
        found = processor_view(image_processor)
        self.view = found[0] if found else None
        self._rescale, self._mean, self._std = found[1:] if found else (None, None, None)

    def __call__(self, batch: ImageBatch, start: int, stop: int) -> torch.Tensor:
        if self.view is not None and batch.square:
            x = (batch.get(self.view)[start:stop].double() * self._rescale).float()
            mean, std = (torch.tensor(v, dtype=torch.float32, device=self.device).view(3, 1, 1)
                         for v in (self._mean, self._std))
            return ((x - mean) / std).to(self.dtype)
        pix = self.processor(images=to_pil(batch.images[start:stop]), return_tensors="pt")
        return pix["pixel_values"].to(self.device, self.dtype)


def processor_view(p) -> tuple[PilResize, float, tuple, tuple] | None:
    """(view, rescale_factor, mean, std) when ``p`` is transformers' PIL CLIP processor in its standard config
    (bicubic resize of the shortest edge to S, centre crop S×S, rescale, normalise, no pad); else None."""
    if type(p).__name__ != "CLIPImageProcessorPil":
        return None
    size, crop = getattr(p, "size", None), getattr(p, "crop_size", None)
    edge = getattr(size, "shortest_edge", None)
    if edge is None or getattr(size, "longest_edge", None) is not None or crop is None:
        return None
    standard = (p.do_resize and p.do_center_crop and p.do_rescale and p.do_normalize and not getattr(p, "do_pad", None)
                and int(p.resample) == int(Image.BICUBIC) and (crop.height, crop.width) == (edge, edge))
    if not standard:
        return None
    return PilResize(int(edge)), float(p.rescale_factor), tuple(p.image_mean), tuple(p.image_std)


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise AddbenchError(f"expected uint8 images (N,3,H,W), got {images.dtype} {tuple(images.shape)}")
    return [Image.fromarray(im.permute(1, 2, 0).contiguous().cpu().numpy()) for im in images]


def _short(name: str) -> str:
    return Path(str(name).rstrip("/")).name or str(name)


def pretrained_weight_files(model) -> list[Path]:
    """The weight files a ``from_pretrained`` model was read from (its local folder or hub-cache snapshot)."""
    folder = Path(getattr(model, "name_or_path", "") or "")
    if not folder.is_dir():
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(str(model.name_or_path), local_files_only=True))
        except Exception:  # noqa: BLE001 - provenance only: no folder found, nothing to hash
            return []
    found = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    return [p.resolve() for p in found]


class PickScore(Metric):
    name = "pickscore"
    higher_is_better = True

    def __init__(self, device: str | torch.device = "cpu", model: str = PICKSCORE_MODEL,
                 processor: str = CLIP_H_PROCESSOR, batch_size: int = 32, dtype: str = "float32"):
        super().__init__(device)
        from transformers import CLIPModel

        self.model_name, self.processor_name, self.batch_size = str(model), str(processor), int(batch_size)
        self.dtype = getattr(torch, dtype)
        self.image_processor, self.tokenizer = load_clip_processor(processor, "PickScore processor")
        self.model = from_pretrained_or_error(CLIPModel, model, "PickScore model").eval()
        self.weight_files = lambda: [("pickscore", p) for p in pretrained_weight_files(self.model)]
        self.model.to(device=self.device, dtype=self.dtype).requires_grad_(False)
        self.pixels = ClipPixels(self.image_processor, self.device, self.dtype)
        self.views = (self.pixels.view,) if self.pixels.view else ()

    def convention(self) -> str:
        return f"{_short(self.model_name)},logit_scale*cos"

    @torch.no_grad()
    def score(self, images: torch.Tensor | ImageBatch, prompts: list[str]) -> torch.Tensor:
        """Per-pair PickScore of image i with prompt i (float32 CPU tensor)."""
        batch = as_batch(images, self.device)
        if len(batch) != len(prompts):
            raise AddbenchError(f"{len(batch)} images but {len(prompts)} prompts")
        out = []
        for s in range(0, len(prompts), self.batch_size):
            pix = self.pixels(batch, s, s + self.batch_size)
            tok = self.tokenizer(list(prompts[s:s + self.batch_size]), padding=True, truncation=True,
                                 max_length=77, return_tensors="pt").to(self.device)
            m = self.model
            img = m.visual_projection(m.vision_model(pixel_values=pix).pooler_output)
            txt = m.text_projection(m.text_model(input_ids=tok["input_ids"],
                                                 attention_mask=tok["attention_mask"]).pooler_output)
            cos = (F.normalize(img.float(), dim=-1) * F.normalize(txt.float(), dim=-1)).sum(-1)
            out.append((m.logit_scale.float().exp() * cos).cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def update(self, images: torch.Tensor, prompts: list[str], keys: list[Key]) -> None:
        self.update_batch(ImageBatch(images, self.device), prompts, keys)

    def update_batch(self, batch: ImageBatch, prompts: list[str], keys: list[Key]) -> None:
        self._record(keys, self.score(batch, prompts))

    def compute(self) -> float:
        return float(np.mean(self.scores)) if self.scores else float("nan")
