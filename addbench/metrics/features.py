"""Feature extractors and resizing for FID/KID, following clean-fid.

clean-fid's one idea (Parmar et al., "On Aliased Resizing and Surprising Subtleties in GAN Evaluation"):
the resize that brings images to the feature network's input size changes FID more than many method
differences, and most libraries' resizes alias. "clean" mode resizes each channel as a float image with
PIL's antialiased bicubic filter (no uint8 quantisation in between), so FID depends on the images and not
on the library. We call clean-fid's own resizer (``cleanfid.resize.make_resizer``) so our numbers are
clean-fid's numbers. ``legacy_pytorch`` (torch bilinear, no antialias) and ``legacy_tensorflow``
(the Inception graph's own resize, as in TTUR/StyleGAN) are opt-in for comparing with old papers; the
mode is part of every FID id.

Extractors (``features=`` kwarg of FID/KID):

* ``"inception"``: clean-fid's InceptionV3 torchscript (``inception-2015-12-05.pt``, 2048-d pool features).
  Looked for in: the ``weights`` kwarg (file or folder), ``$ADDBENCH_WEIGHTS/``, and clean-fid's cache
  folder ``/tmp`` (where ``cleanfid`` saves it). Never downloaded.
* ``"open_clip:<model>"`` or ``"open_clip:<model>/<pretrained>"``: CLIP image embeddings (clean-fid's
  "clip" mode idea, via open_clip), e.g. ``open_clip:local-dir:/path/to/tiny_clip`` or
  ``open_clip:ViT-B-32/laion2b_s34b_b79k``. Images are clean-resized to the model's input size and
  normalised with its mean/std.
* any object with ``id``, ``input_size`` and ``__call__(x float (N,3,H,W) in [0,255]) -> (N, D)``
  (clean-fid's ``custom_feat_extractor`` protocol plus an id for caching).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from addbench.errors import AddbenchError

RESIZE_MODES = ("clean", "legacy_pytorch", "legacy_tensorflow")
INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"


def find_inception(weights: str | os.PathLike | None = None) -> Path:
    """Path of ``inception-2015-12-05.pt`` from the kwarg, ``$ADDBENCH_WEIGHTS`` or clean-fid's ``/tmp``."""
    places = []
    if weights:
        w = Path(weights).expanduser()
        places.append(w if w.suffix == ".pt" else w / INCEPTION_FILE)
    if os.environ.get("ADDBENCH_WEIGHTS"):
        places.append(Path(os.environ["ADDBENCH_WEIGHTS"]).expanduser() / INCEPTION_FILE)
    places.append(Path("/tmp") / INCEPTION_FILE)  # clean-fid's download folder on Linux/macOS
    for p in places:
        if p.is_file():
            return p
    raise AddbenchError(f"FID inception weights {INCEPTION_FILE} not found in {', '.join(map(str, places))}; "
                        f"download {INCEPTION_URL} into $ADDBENCH_WEIGHTS (or /tmp) on a machine with network")


class InceptionFeatures:
    """clean-fid's InceptionV3W (torchscript) loaded from a local file; 2048-d features."""

    def __init__(self, device="cpu", weights=None, resize_inside: bool = False):
        from cleanfid.inception_torchscript import InceptionV3W

        path = find_inception(weights)
        if path.name != INCEPTION_FILE:
            raise AddbenchError(f"inception weights must be named {INCEPTION_FILE} (got {path}); rename the file")
        self.device = torch.device(device)
        self.model = InceptionV3W(str(path.parent), download=False, resize_inside=resize_inside).to(self.device)
        self.model.eval()
        self.id = "inception-2015-12-05"
        self.weight_files = [("inception", path)]
        self.input_size = None if resize_inside else (299, 299)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self.device))


class OpenClipFeatures:
    """open_clip image embeddings (not normalised), input float [0,255] at the model's input size."""

    def __init__(self, spec: str, device="cpu"):
        from addbench.metrics.openclip_loading import load_open_clip

        if spec.startswith(("local-dir:", "hf-hub:")):
            model, pretrained = spec, None
        else:
            model, _, pretrained = spec.partition("/")
        self.bundle = load_open_clip(model, pretrained or None, device=device)
        self._spec = (model, pretrained or None)
        self.device = torch.device(device)
        self.id = f"open_clip:{self.bundle.id}"
        from addbench.metrics.openclip_loading import weight_files

        self.weight_files = [("open_clip", p) for p in weight_files(*self._spec)]
        self.input_size = self.bundle.image_size
        self._mean = torch.tensor(self.bundle.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.bundle.std, device=self.device).view(1, 3, 1, 1)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.to(self.device, torch.float32) / 255.0 - self._mean) / self._std
        return self.bundle.model.encode_image(x).float()


def build_extractor(features="inception", device="cpu", weights=None, resize: str = "clean"):
    """``features`` string (or ready extractor object) -> extractor with ``id``, ``input_size``, ``__call__``."""
    if resize not in RESIZE_MODES:
        raise AddbenchError(f"resize={resize!r} unknown; use one of {', '.join(RESIZE_MODES)}")
    if not isinstance(features, str):
        if not (hasattr(features, "id") and hasattr(features, "input_size") and callable(features)):
            raise AddbenchError("a custom feature extractor needs .id, .input_size and __call__(x float [0,255])")
        return features
    if features == "inception":
        return InceptionFeatures(device, weights, resize_inside=resize == "legacy_tensorflow")
    if resize == "legacy_tensorflow":
        raise AddbenchError("resize='legacy_tensorflow' exists only for features='inception'")
    if features.startswith("open_clip:"):
        return OpenClipFeatures(features[len("open_clip:"):], device)
    raise AddbenchError(f"features={features!r} unknown; use 'inception' or 'open_clip:<model>[/<pretrained>]'")


def make_resizer(mode: str, size):
    """clean-fid's resize function for ``mode`` at ``size`` (H, W): HWC uint8 numpy -> HWC float32 [0,255]."""
    from cleanfid.resize import make_resizer as cf_make_resizer

    if mode == "legacy_tensorflow":  # the inception graph resizes inside
        return lambda x: x.astype(np.float32)
    out = (size[1], size[0])  # PIL / clean-fid take (W, H)
    if mode == "clean":
        return cf_make_resizer("PIL", False, "bicubic", out)
    if mode == "legacy_pytorch":
        return cf_make_resizer("PyTorch", False, "bilinear", out)
    raise AddbenchError(f"resize={mode!r} unknown; use one of {', '.join(RESIZE_MODES)}")


def resize_batch(images: torch.Tensor, resizer) -> torch.Tensor:
    """uint8 (N,3,H,W) -> float32 (N,3,h,w) in [0,255], image by image with a clean-fid resizer."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise AddbenchError(f"images must be uint8 (N,3,H,W); got {tuple(images.shape)} {images.dtype}")
    arrays = images.permute(0, 2, 3, 1).cpu().numpy()
    out = [np.asarray(resizer(a), dtype=np.float32).transpose(2, 0, 1) for a in arrays]
    return torch.from_numpy(np.stack(out))


def extract(images: torch.Tensor, extractor, resizer, batch_size: int = 64) -> torch.Tensor:
    """Features (N, D) float32 on CPU of uint8 images."""
    feats = []
    for i in range(0, images.shape[0], batch_size):
        x = resize_batch(images[i:i + batch_size], resizer)
        with torch.no_grad():
            feats.append(torch.as_tensor(extractor(x)).detach().float().cpu())
    return torch.cat(feats) if feats else torch.zeros(0)
