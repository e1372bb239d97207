"""HPSv2 / HPSv2.1 (Wu et al. 2023): open_clip ViT-H-14 fine-tuned on human preference pairs (HPD v2).

We do not depend on the ``hpsv2`` wheel (it ships without its BPE vocab and pins protobuf<4 and pytest).
Instead its checkpoint (``HPS_v2_compressed.pt`` for v2.0, ``HPS_v2.1_compressed.pt`` for v2.1, from the
hub repo ``xswu/HPSv2``; a dict whose ``"state_dict"`` holds every weight of the CLIP model) is loaded into
``open_clip.create_model("ViT-H-14")`` and scored like hpsv2's ``img_score.py``:

* image: hpsv2's evaluation transform, which ``create_model_and_transforms(..., light_augmentation=True)``
  builds (``hpsv2/img_score.py``, ``evaluation.py``) as ``image_transform(is_train=False,
  resize_longest_max=True)`` of its vendored open_clip (``hpsv2/src/open_clip/transform.py``): PIL ->
  ``ToTensor`` -> ``ResizeMaxSize(224, fill=0)`` -> normalise with OpenAI CLIP mean/std. ``ResizeMaxSize``
  resizes the float tensor (bicubic) so its *longest* side is 224, the other ``round(side * 224 / longest)``,
  then pads the short side with 0 (black, before normalising) to 224 x 224: ``pad // 2`` before,
  the rest after. Nothing is cropped, so a non-square image is seen whole, letterboxed. (It is not open_clip's
  default "shortest side + centre crop", which addbench used until the id gained ``longest+pad``: the same
  numbers on square images, different ones on non-square images.) When the longest side already is 224, hpsv2
  neither resizes nor pads and its ViT then fails on a non-square input; we pad. Today's open_clip names the
  same geometry ``image_transform(is_train=False, resize_mode="longest", fill_color=0)``, but resizes the PIL
  image in uint8 instead of the float tensor.
  We resize the float tensor as hpsv2 does; ``antialias`` follows today's torchvision default (True); the
  torchvision of hpsv2's time did not antialias tensors, so pass ``antialias=False`` to reproduce that
  (the id then says ``noaa``). The resize runs batched on the metric device (all images of a batch share a
  size) as a shared :class:`~addbench.metrics.views.TorchResize` view: the same ``F.interpolate`` call
  torchvision makes; for square images it is the 224 x 224 view other metrics may share.
* text: open_clip's ``ViT-H-14`` tokenizer (77 tokens).
* score: ``image_features @ text_features.T`` of the *normalised* features, diagonal: a plain cosine,
  no ``logit_scale``. Papers (HPSv2 leaderboard, DMD2 / DMDX tables, e.g. 27.70) report it x100, so by
  default ``scale=100`` and the id carries the convention (``cos*100``).
* hpsv2 runs under CUDA fp16 autocast; we use fp32 unless ``amp=True`` on CUDA.

``arch`` and ``arch_overrides`` (open_clip ``create_model`` config overrides) exist for tests with tiny
models; leave them at their defaults for real scoring.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from addbench.errors import AddbenchError
from addbench.metrics.base import Key, Metric
from addbench.metrics.views import ImageBatch, TorchResize, as_batch

HPS_FILES = {"v2.0": "HPS_v2_compressed.pt", "v2.1": "HPS_v2.1_compressed.pt"}
HPS_REPO = "xswu/HPSv2"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def find_checkpoint(version: str, checkpoint: str | os.PathLike | None) -> Path:
    """Local file if given, else the file in the Hugging Face cache (downloads only when online and allowed)."""
    if version not in HPS_FILES:
        raise AddbenchError(f"unknown HPSv2 version {version!r}; use one of {', '.join(HPS_FILES)}")
    fname = HPS_FILES[version]
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise AddbenchError(f"HPSv2 checkpoint {path} not found; download {fname} from the hub repo {HPS_REPO}")
        return path
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(HPS_REPO, fname))
    except Exception as exc:  # offline / not cached / no network: one line for the user
        raise AddbenchError(f"HPSv2 {version}: {fname} is not in the Hugging Face cache ({type(exc).__name__}); "
                            f"run `hf download {HPS_REPO} {fname}` or pass checkpoint=/path/{fname}") from None


def checkpoint_state_dict(obj) -> dict[str, torch.Tensor]:
    """The CLIP state dict inside an HPSv2 checkpoint: ``obj["state_dict"]``, minus a DDP ``module.`` prefix."""
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise AddbenchError("HPSv2 checkpoint has no tensor 'state_dict'; is it HPS_v2*_compressed.pt?")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def load_hps_model(path: Path, arch: str = "ViT-H-14", arch_overrides: dict | None = None, device="cpu"):
    import open_clip

    from addbench.metrics.openclip_loading import built_on

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise AddbenchError(f"HPSv2 checkpoint {path} could not be read as tensors only ({type(exc).__name__}); "
                            f"re-download it") from None
    sd = checkpoint_state_dict(obj)
    with built_on(device):
        model = open_clip.create_model(arch, pretrained=None, device=device, **(arch_overrides or {}))
    try:
        missing, unexpected = model.load_state_dict(sd, strict=False)
    except RuntimeError as exc:  # shape mismatches
        detail = str(exc).strip().splitlines()[-1].strip()
        raise AddbenchError(f"HPSv2 checkpoint {path} does not fit open_clip {arch}: {detail}") from None
    if missing or unexpected:
        raise AddbenchError(f"HPSv2 checkpoint {path} does not fit open_clip {arch}: "
                            f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected "
                            f"(e.g. {unexpected[:2]})")
    return model.eval().requires_grad_(False), open_clip.get_tokenizer(arch)


def resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) after hpsv2's ``ResizeMaxSize(size)``: the longest side to ``size``, the other in proportion
    (Python ``round``, as hpsv2); unchanged when the longest side already is ``size``."""
    scale = size / float(max(height, width))
    if scale == 1.0:
        return height, width
    return round(height * scale), round(width * scale)


def pad_to_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """Pad (..., h, w) with 0 to (..., size, size): ``pad // 2`` left/top, the rest right/bottom, as hpsv2."""
    pad_h, pad_w = size - x.shape[-2], size - x.shape[-1]
    if pad_h == 0 and pad_w == 0:
        return x
    return torch.nn.functional.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=0.0)


def hps_preprocess(images: torch.Tensor, size: int, antialias: bool = True) -> torch.Tensor:
    """uint8 (N,3,H,W) -> normalised float (N,3,size,size), as hpsv2's evaluation transform, image by image
    (the metric's batched path computes the same numbers through a shared view)."""
    from torchvision.transforms import InterpolationMode, Normalize
    from torchvision.transforms import functional as TF

    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise AddbenchError(f"expected uint8 images (N,3,H,W), got {images.dtype} {tuple(images.shape)}")
    norm = Normalize(OPENAI_MEAN, OPENAI_STD)
    out = []
    for im in images:
        x = im.float() / 255.0  # ToTensor
        new = resized_size(x.shape[-2], x.shape[-1], size)
        if new != tuple(x.shape[-2:]):
            x = TF.resize(x, list(new), interpolation=InterpolationMode.BICUBIC, antialias=antialias)
        out.append(norm(pad_to_square(x, size)))
    return torch.stack(out)


class HPSv2(Metric):
    name = "hpsv2"
    higher_is_better = True

    def __init__(self, device: str | torch.device = "cpu", version: str = "v2.1", checkpoint: str | None = None,
                 scale: float = 100.0, batch_size: int = 32, antialias: bool = True, amp: bool = False,
                 arch: str = "ViT-H-14", arch_overrides: dict | None = None):
        super().__init__(device)
        self.version, self.scale, self.batch_size = version, float(scale), int(batch_size)
        self.antialias, self.amp, self.arch = bool(antialias), bool(amp), arch
        self.checkpoint = find_checkpoint(version, checkpoint)
        self.weight_files = lambda: [("hps", Path(self.checkpoint))]  # hashed into the record's provenance
        self.model, self.tokenizer = load_hps_model(self.checkpoint, arch, arch_overrides, self.device)
        self.model.to(self.device)
        size = self.model.visual.image_size
        self.image_size = size[0] if isinstance(size, (tuple, list)) else int(size)
        self.view = TorchResize((self.image_size, self.image_size), "bicubic", self.antialias, divide=255.0)
        self.views = (self.view,)
        self._mean = torch.tensor(OPENAI_MEAN, dtype=torch.float32, device=self.device).view(3, 1, 1)
        self._std = torch.tensor(OPENAI_STD, dtype=torch.float32, device=self.device).view(3, 1, 1)

    def convention(self) -> str:
        scale = "" if self.scale == 1 else f"*{self.scale:g}"
        # longest+pad: hpsv2's ResizeMaxSize (ids without it resized the shortest side and centre-cropped)
        return f"{self.version},{self.arch},cos{scale},longest+pad" + ("" if self.antialias else ",noaa")

    def _pixels(self, batch: ImageBatch, start: int, stop: int) -> torch.Tensor:
        if self.view is None:  # image by image (no shared view)
            return hps_preprocess(batch.images[start:stop], self.image_size, self.antialias).to(self.device)
        new = resized_size(*batch.images.shape[-2:], self.image_size)  # one size for the whole batch
        view = self.view if new == tuple(self.view.size) else dataclasses.replace(self.view, size=new)
        return (pad_to_square(batch.get(view)[start:stop], self.image_size) - self._mean) / self._std

    @torch.no_grad()
    def score(self, images: torch.Tensor | ImageBatch, prompts: list[str]) -> torch.Tensor:
        batch = as_batch(images, self.device)
        if len(batch) != len(prompts):
            raise AddbenchError(f"{len(batch)} images but {len(prompts)} prompts")
        out = []
        use_amp = self.amp and self.device.type == "cuda"
        for s in range(0, len(prompts), self.batch_size):
            pix = self._pixels(batch, s, s + self.batch_size)
            tok = self.tokenizer(list(prompts[s:s + self.batch_size])).to(self.device)
            with torch.autocast("cuda", enabled=use_amp):
                img = self.model.encode_image(pix, normalize=True)
                txt = self.model.encode_text(tok, normalize=True)
            out.append((img.float() * txt.float()).sum(-1).cpu() * self.scale)
        return torch.cat(out) if out else torch.zeros(0)

    def update(self, images: torch.Tensor, prompts: list[str], keys: list[Key]) -> None:
        self.update_batch(ImageBatch(images, self.device), prompts, keys)

    def update_batch(self, batch: ImageBatch, prompts: list[str], keys: list[Key]) -> None:
        self._record(keys, self.score(batch, prompts))

    def compute(self) -> float:
        return float(np.mean(self.scores)) if self.scores else float("nan")
