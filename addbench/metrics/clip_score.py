"""CLIP score: image-prompt cosine similarity of open_clip embeddings, per sample.

Papers report three different numbers under one name, so the convention is an explicit kwarg and part of
the id (``clip_score[ViT-g-14/laion2b_s34b_b88k,x100]``):

* ``"cosine"``: the raw cosine in [-1, 1] (ADD Table 2 reports this, e.g. 0.326);
* ``"x100"``: 100·cosine (DMD2 / DMDX tables, e.g. 35.2); torchmetrics' CLIPScore is 100·max(cos, 0),
  the same number whenever the cosine is positive (always, for real models and prompts);
* ``"w2.5"``: Hessel et al.'s CLIP-S = 2.5·max(cos, 0).

Images go through the model's own open_clip eval transform (PIL bicubic resize of the short side, center
crop, mean/std), prompts through its tokenizer (truncated to the context length). For square images the
transform is one PIL bicubic resize, shared with the other CLIP-family metrics (:mod:`addbench.metrics.views`),
then ``ToTensor``'s ``/255`` and ``Normalize`` on the device: the same pixels, bit for bit. Default backbone
ViT-g-14 / laion2b_s34b_b88k (ADD's protocol); weights load from local files only
(:mod:`addbench.metrics.openclip_loading`).
"""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from addbench.errors import AddbenchError
from addbench.metrics.base import Key, Metric
from addbench.metrics.openclip_loading import load_open_clip
from addbench.metrics.views import ImageBatch, PilResize, as_batch

CONVENTIONS = ("cosine", "x100", "w2.5")


def open_clip_view(preprocess) -> tuple[PilResize, tuple, tuple] | None:
    """(view, mean, std) when ``preprocess`` is open_clip's standard eval transform (bicubic Resize(S) of a PIL
    image, CenterCrop(S), RGB, ToTensor, Normalize), so square images need only the shared resize; else None."""
    from torchvision import transforms as T

    steps = list(getattr(preprocess, "transforms", []))
    if len(steps) < 4:
        return None
    resize, crop, *middle, to_tensor, norm = steps
    if not (isinstance(resize, T.Resize) and isinstance(crop, T.CenterCrop) and isinstance(to_tensor, T.ToTensor)
            and isinstance(norm, T.Normalize)):
        return None
    size = resize.size if isinstance(resize.size, int) else (resize.size[0] if len(set(resize.size)) == 1 else None)
    rgb_only = all(type(t).__name__ == "MaybeConvertMode" or getattr(t, "__name__", "") == "_convert_to_rgb"
                   for t in middle)
    if (size is None or resize.interpolation != T.InterpolationMode.BICUBIC or resize.max_size is not None
            or tuple(crop.size) != (size, size) or not rgb_only):
        return None
    return PilResize(int(size)), tuple(norm.mean), tuple(norm.std)


def apply_convention(cos: torch.Tensor, convention: str) -> torch.Tensor:
    if convention == "cosine":
        return cos
    if convention == "x100":
        return 100.0 * cos
    if convention == "w2.5":
        return 2.5 * cos.clamp(min=0)
    raise AddbenchError(f"clip_score convention={convention!r} unknown; use one of {', '.join(CONVENTIONS)}")


class CLIPScore(Metric):
    name = "clip_score"
    higher_is_better = True

    def __init__(self, device="cpu", model: str = "ViT-g-14", pretrained: str | None = "laion2b_s34b_b88k",
                 convention: str | None = None, batch_size: int = 32, precision: str = "fp32"):
        super().__init__(device)
        if convention not in CONVENTIONS:
            raise AddbenchError(f"clip_score needs convention= one of {', '.join(CONVENTIONS)} "
                                f"(got {convention!r}); papers differ, so the suite must say which")
        self.conv = convention
        self.batch_size = batch_size
        self.bundle = load_open_clip(model, pretrained, self.device, precision)
        self._spec = (model, pretrained)
        found = open_clip_view(self.bundle.preprocess)
        self.view, self._norm = (found[0], found[1:]) if found else (None, None)
        self.views = (self.view,) if self.view else ()

    def convention(self) -> str:
        return f"{self.bundle.id},{self.conv}"

    def weight_files(self) -> list[tuple[str, Path]]:
        """(role, file) of every weights file this metric loaded (hashed into the record's provenance)."""
        from addbench.metrics.openclip_loading import weight_files

        return [("open_clip", p) for p in weight_files(*self._spec)]

    def _pixels(self, batch: ImageBatch, i: int, dtype) -> torch.Tensor:
        """Model input of images i..i+batch_size: the shared view + ToTensor/Normalize, or the transform per image."""
        if self.view is not None and batch.square:
            mean, std = (torch.tensor(v, dtype=torch.float32, device=self.device).view(3, 1, 1) for v in self._norm)
            x = batch.get(self.view)[i:i + self.batch_size].float().div(255)
            return ((x - mean) / std).to(dtype)
        pil = [Image.fromarray(a) for a in batch.images[i:i + self.batch_size].permute(0, 2, 3, 1).numpy()]
        return torch.stack([self.bundle.preprocess(p) for p in pil]).to(self.device, dtype)

    @torch.no_grad()
    def cosine(self, images: torch.Tensor | ImageBatch, prompts: list[str]) -> torch.Tensor:
        """Cosine similarity (N,) of each image with its prompt."""
        batch = as_batch(images, self.device)
        if len(prompts) != len(batch):
            raise AddbenchError(f"clip_score: need N uint8 (N,3,H,W) images and N prompts; got "
                                f"{tuple(batch.images.shape)} and {len(prompts)} prompts")
        model, dtype = self.bundle.model, next(self.bundle.model.parameters()).dtype
        out = []
        for i in range(0, len(prompts), self.batch_size):
            x = self._pixels(batch, i, dtype)
            t = self.bundle.tokenizer(prompts[i:i + self.batch_size]).to(self.device)
            img = torch.nn.functional.normalize(model.encode_image(x).float(), dim=-1)
            txt = torch.nn.functional.normalize(model.encode_text(t).float(), dim=-1)
            out.append((img * txt).sum(-1).cpu())
        return torch.cat(out)

    def update(self, images: torch.Tensor, prompts: list[str], keys: list[Key]) -> None:
        self.update_batch(ImageBatch(images, self.device), prompts, keys)

    def update_batch(self, batch: ImageBatch, prompts: list[str], keys: list[Key]) -> None:
        self._record(keys, apply_convention(self.cosine(batch, prompts), self.conv))

    def compute(self) -> float:
        if not self.scores:
            raise AddbenchError("clip_score: no images were scored")
        return float(sum(self.scores) / len(self.scores))
