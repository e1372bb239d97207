"""Toy reference images for FID: ``n`` real toy images from ``seed``, written once as PNGs to the cache.

``reference_dir(n, seed)`` -> ``$ADDBENCH_CACHE/toy-reference/n{n}-s{seed}`` (default ``~/.cache/addbench``),
deterministic, built atomically (temp folder + rename) on first use; FID statistics are then cached by
``addbench.metrics.refstats`` like any image folder.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from PIL import Image

from addbench.toy import data

CLIP_DIR = Path(__file__).parent / "assets" / "clip"


def cache_root() -> Path:
    from addbench.cache import addbench_cache

    return addbench_cache()


def reference_dir(n: int = 10000, seed: int = 12345, root: str | os.PathLike | None = None, chunk: int = 2000) -> Path:
    out = Path(root) if root else cache_root() / "toy-reference" / f"n{n}-s{seed}"
    if (out / "DONE").is_file():
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    images = data.sample(n, seed)[0]
    for i in range(n):
        Image.fromarray(images[i].permute(1, 2, 0).numpy()).save(tmp / f"{i:06d}.png")
    (tmp / "DONE").write_text(f"{n} toy images, seed {seed}\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
