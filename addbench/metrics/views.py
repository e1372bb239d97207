"""Preprocessed views of one batch of images, each computed once and shared by every metric that reads it.

Each metric resizes the scored uint8 images to its network's input. Several ask for the same pixels: CLIP score
(open_clip's eval transform), PickScore and MPS (transformers' PIL CLIP processor) all start with a PIL bicubic
resize to 224². So the runner hands every metric one :class:`ImageBatch`, and a metric reads
``batch.get(view)``: the first request computes the view, later ones reuse it. Views are frozen dataclasses, so
equal views are one cache entry.

* :class:`PilResize` (``on_cpu``): PIL's bicubic resize of square uint8 images, uint8 out: the exact pixels PIL
  gives open_clip and transformers (for square images their "shortest side to S, centre-crop S" is this
  resize). The runner starts it per image in a thread pool (PIL releases the GIL) while the GPU works.
* :class:`TorchResize`: ``F.interpolate`` of the float images on the metric device, one batched call. With
  ``mode="bicubic", antialias=True`` this is PIL's bicubic filter (a = -0.5, support widened when
  downsampling) on float images: HPSv2's torchvision ``Resize`` of float tensors is this very call, and
  clean-fid's "clean" resize (PIL, per channel in float "F" mode) agrees with it to 5e-4 of 255 on smooth 512²
  images and 3e-3 on uniform noise (512 -> 299; tests/metrics/test_views.py).

A metric that reads views keeps its old per-image path for the cases a view does not cover (non-square
images, a preprocessing config that is not the standard one); ``update(images, ...)`` goes through a private
``ImageBatch``, so direct calls and runner calls compute the same numbers.
"""
from __future__ import annotations

from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from addbench.errors import AddbenchError


@dataclass(frozen=True)
class PilResize:
    """PIL bicubic resize of square uint8 (3, H, H) images to (3, size, size), uint8; on the CPU, per image."""

    size: int
    on_cpu: ClassVar[bool] = True

    def one(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[-1] == self.size and image.shape[-2] == self.size:
            return image  # PIL returns a copy at the same size
        pil = Image.fromarray(image.permute(1, 2, 0).numpy()).resize((self.size, self.size), Image.BICUBIC)
        return torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1)

    def __call__(self, batch: "ImageBatch") -> torch.Tensor:
        return torch.stack([self.one(im) for im in batch.images]).to(batch.device)


@dataclass(frozen=True)
class TorchResize:
    """float (N, 3, h, w) on the device: ``x.float()``, ``/ divide`` (if set), ``F.interpolate`` to ``size``, clamp."""

    size: tuple[int, int]
    mode: str = "bicubic"
    antialias: bool = True
    divide: float | None = None
    clamp: tuple[float, float] | None = None
    on_cpu: ClassVar[bool] = False

    def __call__(self, batch: "ImageBatch") -> torch.Tensor:
        x = batch.on_device().float()
        if self.divide is not None:
            x = x / self.divide
        if tuple(x.shape[-2:]) != tuple(self.size):
            x = F.interpolate(x, size=tuple(self.size), mode=self.mode, align_corners=False, antialias=self.antialias)
        return x.clamp(*self.clamp) if self.clamp is not None else x


class ImageBatch:
    """uint8 (N, 3, H, W) CPU images plus their views on ``device``, each computed at most once.

    ``pool``: an executor for the CPU views; :meth:`prefetch` starts them there (per image) ahead of use.
    """

    def __init__(self, images: torch.Tensor, device: str | torch.device = "cpu", pool: Executor | None = None):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise AddbenchError(f"images must be uint8 (N,3,H,W); got {tuple(images.shape)} {images.dtype}")
        self.images = images
        self.device = torch.device(device)
        self.pool = pool
        self._views: dict = {}
        self._on_device: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def square(self) -> bool:
        return self.images.shape[-1] == self.images.shape[-2]

    def on_device(self) -> torch.Tensor:
        """The uint8 images on the device (one copy, shared)."""
        if self._on_device is None:
            self._on_device = self.images.to(self.device)
        return self._on_device

    def prefetch(self, views) -> None:
        """Start the CPU views in ``pool``, one task per image (no-op without a pool)."""
        if self.pool is None:
            return
        for v in views:
            if v.on_cpu and v not in self._views:
                self._views[v] = [self.pool.submit(v.one, im) for im in self.images]

    def get(self, view) -> torch.Tensor:
        out = self._views.get(view)
        if out is None:
            out = view(self)
        elif isinstance(out, list):  # prefetched per image
            out = torch.stack([f.result() if isinstance(f, Future) else f for f in out]).to(self.device)
        self._views[view] = out
        return out


def as_batch(images, device) -> ImageBatch:
    """``images`` as an ImageBatch (a plain uint8 tensor gets a private one)."""
    return images if isinstance(images, ImageBatch) else ImageBatch(images, device)
