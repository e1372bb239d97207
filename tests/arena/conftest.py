"""Tiny fake eval runs for the arena tests: a few PNGs, per_sample.parquet and record.json written directly."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

PROMPTS = ["a red circle on a dark background", "a blue square at the top left", "a green triangle in the middle"]
SEEDS = (0, 1)
COLORS = {0: (220, 40, 40), 1: (40, 80, 220), 2: (40, 180, 60)}


def _shape(draw: ImageDraw.ImageDraw, kind: int, box: tuple, fill: tuple) -> None:
    if kind == 0:
        draw.ellipse(box, fill=fill)
    elif kind == 1:
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=fill)


def make_run(root: Path, model: str, quality: int, score_offset: float = 0.0, size: int = 96,
             higher_is_better: bool = True) -> Path:
    """A run dir of ``model``: one PNG per (prompt, seed); ``quality`` 0..2 sets how clean the shapes are."""
    run = root / model
    (run / "samples").mkdir(parents=True)
    rows = []
    for pi, prompt in enumerate(PROMPTS):
        for seed in SEEDS:
            rng = np.random.default_rng([pi, seed, quality])
            bg = rng.integers(10, 40 + 40 * (2 - quality), (size, size, 3)).astype(np.uint8)
            im = Image.fromarray(bg)
            d = ImageDraw.Draw(im)
            box = (size // 4, size // 4, 3 * size // 4, 3 * size // 4)
            _shape(d, pi, box, COLORS[pi])
            rel = f"samples/{pi:05d}_{seed}.png"
            im.save(run / rel)
            rows.append({"prompt_index": pi, "seed": seed, "prompt": prompt, "image": rel,
                         "pickscore[fake]": 20.0 + quality + score_offset + 0.1 * pi, "hpsv2": float(quality)})
    pd.DataFrame(rows).to_parquet(run / "per_sample.parquet", index=False)
    record = {"format": "addbench-record/2", "complete": True, "model": {"name": model, "nfe": 1},
              "metrics": {"pickscore[fake]": {"name": "pickscore", "higher_is_better": higher_is_better},
                          "hpsv2": {"name": "hpsv2", "higher_is_better": True}}}
    (run / "record.json").write_text(json.dumps(record))
    return run


@pytest.fixture
def new_run():
    """``new_run(root, model, quality, ...)``: :func:`make_run` for tests that build their own runs."""
    return make_run


@pytest.fixture
def run_dirs(tmp_path) -> list[Path]:
    """Three runs: good (quality 2), mid (1), bad (0)."""
    return [make_run(tmp_path / "runs", m, q) for m, q in (("good", 2), ("mid", 1), ("bad", 0))]
