"""Training data: prompt lists, captioned real images and ODE pairs, sampled deterministically.

Every batch is a pure function of (seed, step, call): the global batch indices are drawn with
replacement from ``torch.Generator().manual_seed(mix(seed, step, call))`` and rank r takes its slice,
so a resumed run (or one with a different number of ranks) sees exactly the same samples.

Sources (config keys):
- ``prompts``: ``.txt`` (one per line) | ``.jsonl`` ({"prompt"|"caption"|"text": ...}) | ``toy[:N]`` | ``gmm[:N]``.
- ``real_images``: a folder of ``*.png|jpg|jpeg|webp`` with same-name ``.txt`` captions | a ``.jsonl``
  manifest ({"image": path relative to the manifest, "caption": ...}) | ``toy[:N]`` | ``gmm[:N]`` (the unit world:
  exact (D,) samples of the default mixture with their ``"class k"`` captions, ``addbench.gmm.data``).
- ``ode_pairs``: a directory written by :mod:`addbench.train.odepairs`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from addbench.errors import AddbenchError
from addbench.rng import BatchRandom, mix  # noqa: F401  (mix: imported from here by other modules)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp")


def _toy_n(spec: str, default: int) -> int:
    return int(spec.split(":", 1)[1]) if ":" in spec else default


def _is_gmm(spec: str) -> bool:
    return spec == "gmm" or spec.startswith("gmm:")


def load_prompts(spec: str, seed: int = 0) -> list[str]:
    if _is_gmm(spec):
        from addbench.gmm.captions import prompts

        return prompts(_toy_n(spec, 10_000), seed=seed)
    if spec.startswith("toy"):
        from addbench.toy import data as toy

        return toy.prompts(_toy_n(spec, 10_000), seed=seed)
    path = Path(spec)
    if not path.is_file():
        raise AddbenchError(f"prompt file {path} not found; set prompts=<file.txt|file.jsonl|toy>")
    if path.suffix == ".jsonl":
        out = []
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                out.append(next(rec[k] for k in ("prompt", "caption", "text") if k in rec))
    else:
        out = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if not out:
        raise AddbenchError(f"prompt file {path} holds no prompts")
    return out


class ImageCaptionDataset:
    """Captioned real images, loaded lazily, returned as float (3, R, R) in [-1, 1]."""

    def __init__(self, spec: str, resolution: int, seed: int = 0):
        self.resolution = resolution
        self._toy = self._points = None
        if spec.startswith("toy"):
            from addbench.toy import data as toy

            imgs, caps, _ = toy.sample(_toy_n(spec, 10_000), seed=seed)
            self._toy, self.captions, self.paths = imgs, caps, []
            return
        if _is_gmm(spec):  # (D,) points, returned as they are (no resize, no [0, 255] scaling)
            from addbench.gmm.data import exact_dataset

            self._points, self.captions = exact_dataset(_toy_n(spec, 10_000), seed=seed)
            self.paths = []
            return
        path = Path(spec)
        if path.is_dir():
            self.paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS)
            missing = [p for p in self.paths if not p.with_suffix(".txt").is_file()]
            if missing:
                raise AddbenchError(f"image {missing[0]} has no caption file {missing[0].with_suffix('.txt').name}")
            self.captions = [p.with_suffix(".txt").read_text().strip() for p in self.paths]
        elif path.suffix == ".jsonl" and path.is_file():
            recs = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
            self.paths = [path.parent / r["image"] for r in recs]
            self.captions = [r.get("caption", r.get("text", "")) for r in recs]
        else:
            raise AddbenchError(f"real_images {spec!r} is neither a folder of images + .txt captions nor a .jsonl manifest")
        if not self.paths:
            raise AddbenchError(f"no images ({', '.join(IMAGE_EXTS)}) in {spec}")

    def __len__(self) -> int:
        return len(self.captions)

    def image(self, i: int) -> torch.Tensor:
        if self._points is not None:
            return self._points[i]
        if self._toy is not None:
            x = self._toy[i].float()
        else:
            from PIL import Image

            with Image.open(self.paths[i]) as im:
                im = im.convert("RGB")
                s = min(im.size)  # centre crop then resize (bicubic)
                left, top = (im.width - s) // 2, (im.height - s) // 2
                im = im.crop((left, top, left + s, top + s)).resize((self.resolution,) * 2, Image.BICUBIC)
                x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float()
        if x.shape[-1] != self.resolution:
            x = torch.nn.functional.interpolate(x[None], size=(self.resolution,) * 2, mode="bicubic",
                                                antialias=True)[0].clamp(0, 255)
        return x / 127.5 - 1


class TrainData:
    """Batches for the plug-in's ``data_needs``; ``batch(step, call)`` is this rank's share."""

    def __init__(self, cfg: dict, needs, rank: int = 0, world_size: int = 1, device="cpu"):
        self.seed, self.global_batch = int(cfg["seed"]), int(cfg["batch"])
        if self.global_batch % world_size:
            raise AddbenchError(f"batch={self.global_batch} is not divisible by the {world_size} processes")
        self.rank, self.world, self.device = rank, world_size, torch.device(device)
        self.local_batch = self.global_batch // world_size
        self.prompts = self.images = self.pairs = None
        needs = set(needs)
        if "images" in needs:
            if not cfg.get("real_images"):
                raise AddbenchError("this distiller needs real images; set real_images=<folder|manifest.jsonl|toy>")
            self.images = ImageCaptionDataset(cfg["real_images"], int(cfg["resolution"]), self.seed)
        if "prompts" in needs:
            if cfg.get("prompts"):
                self.prompts = load_prompts(cfg["prompts"], self.seed)
            elif self.images is None:
                raise AddbenchError("this distiller needs prompts; set prompts=<file.txt|file.jsonl|toy>")
        if "ode_pairs" in needs:
            if not cfg.get("ode_pairs"):
                raise AddbenchError("this distiller needs teacher ODE pairs; run addbench.train.odepairs first "
                                    "and set ode_pairs=<dir>")
            from addbench.train.odepairs import OdePairs

            self.pairs = OdePairs(cfg["ode_pairs"])

    def _indices(self, n: int, step: int, call: int, salt: int) -> list[int]:
        g = torch.Generator().manual_seed(mix(self.seed, step, call, salt))
        idx = torch.randint(n, (self.global_batch,), generator=g)
        lo = self.rank * self.local_batch
        return idx[lo: lo + self.local_batch].tolist()

    def batch(self, step: int, call: int = 0, turn: str = "") -> dict:
        lo = self.rank * self.local_batch
        seeds = [mix(self.seed, step, call, 7, lo + i) for i in range(self.local_batch)]
        gen = torch.Generator(self.device).manual_seed(mix(self.seed, step, call, 11, self.rank))
        # random: per-sample and whole-batch draws that do not depend on ranks or micro-batches (addbench.rng);
        # generator: a cheaper per-rank stream, which does
        out = {"step": step, "call": call, "turn": turn, "rank": self.rank, "world_size": self.world,
               "sample_seeds": seeds, "generator": gen,
               "random": BatchRandom(seeds, mix(self.seed, step, call, 13), self.device)}
        if self.images is not None:
            idx = self._indices(len(self.images), step, call, 2)
            out["images"] = torch.stack([self.images.image(i) for i in idx]).to(self.device)
            out["captions"] = [self.images.captions[i] for i in idx]
        if self.prompts is not None:
            out["prompts"] = [self.prompts[i] for i in self._indices(len(self.prompts), step, call, 1)]
        elif self.images is not None:
            out["prompts"] = out["captions"]
        if self.pairs is not None:
            idx = self._indices(len(self.pairs), step, call, 3)
            noise, target, prompts = self.pairs.get(idx)
            out.update(ode_noise=noise.to(self.device), ode_target=target.to(self.device), ode_prompts=prompts)
        return out
