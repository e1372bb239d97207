"""Sample files: one PNG per (prompt index, seed), written once (tmp + rename) with provenance in a text chunk.

:class:`SampleWriter` writes them from background threads (PNG encoding costs more CPU than anything else the
runner does per image, and PIL releases the GIL while it compresses), so generation and scoring go on meanwhile.
"""
from __future__ import annotations

import json
import os
import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from addbench.errors import AddbenchError

CHUNK = "addbench"


def sample_name(prompt_index: int, seed: int) -> str:
    return f"{prompt_index:06d}_s{seed}.png"


def write_png(path: Path, image: torch.Tensor, provenance: dict, compress_level: int = 6) -> None:
    """image: uint8 (3, H, W). Atomic: a killed writer leaves only a hidden tmp file, never a half PNG.
    ``compress_level`` (zlib 0-9) changes the file size and the CPU time, never the pixels."""
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise AddbenchError(f"generator returned {tuple(image.shape)} {image.dtype}; expected uint8 (3, H, W) per sample")
    info = PngInfo()
    info.add_text(CHUNK, json.dumps(provenance, sort_keys=True))
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp, format="PNG", pnginfo=info, compress_level=compress_level)
    os.replace(tmp, path)


def read_png(path: Path) -> tuple[torch.Tensor, dict]:
    with Image.open(path) as im:
        im.load()
        meta = json.loads(im.text.get(CHUNK, "{}")) if hasattr(im, "text") else {}
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1), meta


def resize(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """Square-resize uint8 (N,3,H,W) with PIL bicubic (clean-fid's choice) when the size differs."""
    if size is None or (images.shape[-1] == size and images.shape[-2] == size):
        return images
    out = []
    for img in images:
        pil = Image.fromarray(img.permute(1, 2, 0).numpy()).resize((size, size), Image.BICUBIC)
        out.append(torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1))
    return torch.stack(out)


def clean_tmp(folder: Path) -> None:
    for p in folder.glob(".*.tmp*"):
        p.unlink(missing_ok=True)


class InlineExecutor(Executor):
    """Runs each task at once in the calling thread. For CPU runs: threads beside torch's own CPU threads
    only contend with them (and its OpenMP threads spin-wait), so there the runner does everything in turn."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever reads the future, like a thread pool
            fut.set_exception(exc)
        return fut


class SampleWriter:
    """Writes sample PNGs on ``workers`` threads (0: in the caller, at once); at most ``max_pending`` images
    wait in memory (``submit`` blocks).

    A failed write is raised by the next ``submit`` or by ``close``; ``close`` returns once every PNG is on disk.
    Leaving the ``with`` block on an exception drops the writes not yet started (as a kill would: resuming
    regenerates exactly the missing samples). ``crash_after`` (test hook): the writes after that many raise
    ``RuntimeError``, so exactly that many PNGs exist.
    """

    def __init__(self, workers: int = 2, max_pending: int = 256, compress_level: int = 6, crash_after: int = 0):
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="addbench-png") if workers > 0 else InlineExecutor()
        self._slots = threading.BoundedSemaphore(max(1, max_pending))
        self._lock = threading.Lock()
        self._futures: set = set()
        self._error: BaseException | None = None
        self._started = 0
        self.written = 0
        self.compress_level, self.crash_after = compress_level, crash_after

    def submit(self, path: Path, image: torch.Tensor, provenance: dict) -> None:
        self.check()
        self._slots.acquire()
        fut = self._pool.submit(self._write, path, image, provenance)
        with self._lock:
            self._futures.add(fut)
        fut.add_done_callback(self._done)

    def _write(self, path: Path, image: torch.Tensor, provenance: dict) -> None:
        with self._lock:
            if self.crash_after and self._started >= self.crash_after:
                raise RuntimeError(f"simulated crash after {self.crash_after} samples (test hook)")
            self._started += 1
        write_png(path, image, provenance, self.compress_level)
        with self._lock:
            self.written += 1

    def _done(self, fut) -> None:
        self._slots.release()
        with self._lock:
            self._futures.discard(fut)
            if not fut.cancelled() and fut.exception() is not None and self._error is None:
                self._error = fut.exception()

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Wait until every submitted PNG is written; raise the first failure."""
        self._pool.shutdown(wait=True)
        self.check()

    def __enter__(self) -> "SampleWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._pool.shutdown(wait=True, cancel_futures=True)
