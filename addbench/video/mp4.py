"""MP4 files for video samples: H.264 through imageio's ffmpeg (the ``video`` extra), written atomically."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from addbench.errors import AddbenchError


def _imageio():
    try:
        import imageio.v2 as iio
        import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary ships in this wheel)
    except ImportError:
        raise AddbenchError("writing videos needs imageio and imageio-ffmpeg: pip install -e '.[video]'") from None
    return iio


def write_mp4(path: Path, video: torch.Tensor, fps: int, tmp_dir: Path) -> None:
    """video: uint8 (F, 3, H, W). Written under ``tmp_dir`` then renamed, so ``path`` is never half a file."""
    if video.dtype != torch.uint8 or video.ndim != 4 or video.shape[1] != 3:
        raise AddbenchError(f"video generator returned {tuple(video.shape)} {video.dtype} per sample; "
                            "expected uint8 (F, 3, H, W)")
    iio = _imageio()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{os.getpid()}.mp4"
    frames = video.permute(0, 2, 3, 1).contiguous().numpy()
    # yuv420p at high quality, the usual for generated videos; one thread keeps the bytes reproducible
    with iio.get_writer(tmp, fps=fps, codec="libx264", quality=9, pixelformat="yuv420p", macro_block_size=2,
                        ffmpeg_log_level="error", output_params=["-threads", "1"]) as w:
        for f in frames:
            w.append_data(f)
    os.replace(tmp, path)


def read_mp4(path: Path) -> torch.Tensor:
    """uint8 (F, 3, H, W)."""
    iio = _imageio()
    with iio.get_reader(path) as r:
        frames = [np.asarray(f) for f in r]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()
