"""Sample grids for eyeballing: rows = (model,) step counts, columns = (prompt, seed) pairs.

:func:`labelled_tile` draws the caption above each column (wrapped to the cell), a label before each row and
upscales small images with nearest-neighbour, so a 32×32 toy sample reads as a 256 px cell. :func:`sample_grid`
generates exactly the images a grid shows: each row runs as one micro-batch of its own size (at most the
model's), never padded to the base's batch size (the toy base's CPU micro-batch is 32: a 4-image row padded to
it did 8× the work). A grid row is therefore deterministic per command, but may differ from an eval run's PNG of
the same (prompt, seed) by float rounding (other kernel shapes): use the run's own PNGs where pixels matter.
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from addbench.errors import AddbenchError

MIN_CELL = 256  # labelled grids: small images are upscaled (nearest) until a cell is at least this many pixels


def tile(rows: list[torch.Tensor], pad: int = 2) -> Image.Image:
    """rows: uint8 (N,3,H,W) tensors of equal shape -> one white-padded PIL image (no labels, no upscaling)."""
    n, _, h, w = rows[0].shape
    canvas = Image.new("RGB", (n * (w + pad) + pad, len(rows) * (h + pad) + pad), "white")
    for r, imgs in enumerate(rows):
        for c, img in enumerate(imgs):
            canvas.paste(Image.fromarray(img.permute(1, 2, 0).numpy()), (pad + c * (w + pad), pad + r * (h + pad)))
    return canvas


def to_pil(image) -> Image.Image:
    """A uint8 (3,H,W) tensor, an (H,W,3) array or a PIL image -> an RGB PIL image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, torch.Tensor):
        image = image.permute(1, 2, 0).numpy()
    return Image.fromarray(np.asarray(image, dtype=np.uint8))


def font(size: int) -> ImageFont.ImageFont:
    """Pillow's bundled scalable font (no system font needed); its bitmap font where FreeType is missing."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def wrap(text: str, fnt, width: int, max_lines: int = 4) -> list[str]:
    """Greedy word wrap to ``width`` pixels; a word wider than a line is cut; an overflow ends in "…"."""
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def fits(s: str) -> bool:
        return draw.textlength(s, font=fnt) <= width

    lines: list[str] = []
    line = ""
    for word in str(text).split():
        while not fits(word) and len(word) > 1:  # hard break: the longest prefix that fits (at least 1 char)
            cut = next((i for i in range(len(word) - 1, 0, -1) if fits(word[:i])), 1)
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:cut])
            word = word[cut:]
        if line and fits(f"{line} {word}"):
            line = f"{line} {word}"
        else:
            if line:
                lines.append(line)
            line = word
    lines.append(line)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and not fits(last + "…"):
            last = last[:-1]
        lines = lines[:max_lines - 1] + [last + "…"]
    return lines


def labelled_tile(rows: list, row_labels: list[str] | None = None, col_labels: list[str] | None = None,
                  min_cell: int = MIN_CELL, pad: int = 6, caption_lines: int = 4) -> Image.Image:
    """rows: per row a sequence of images (uint8 (N,3,H,W) tensor, or tensors / arrays / PIL images) of one size.
    ``col_labels`` are drawn above each column (wrapped; "\\n" starts a new line, e.g. the seed), ``row_labels`` in a
    column on the left. Images smaller than ``min_cell`` are upscaled by an integer factor, nearest-neighbour."""
    cells = [[to_pil(img) for img in row] for row in rows]
    if not cells or not cells[0]:
        raise AddbenchError("a grid needs at least one image")
    w, h = cells[0][0].size
    scale = max(1, math.ceil(min_cell / max(w, h)))
    cw, ch = w * scale, h * scale
    fnt = font(max(12, min(20, cw // 14)))
    _, top, _, bottom = fnt.getbbox("Ág")
    line_h = int(bottom - top) + 4
    ncols = max(len(r) for r in cells)
    col_text = [[ln for part in str(lab).split("\n") for ln in wrap(part, fnt, cw, caption_lines)]
                for lab in (col_labels or [])]
    head = (max(map(len, col_text)) * line_h + pad) if col_text else 0
    label_w = min(cw, 240)
    row_text = [[ln for part in str(lab).split("\n") for ln in wrap(part, fnt, label_w, 3)]
                for lab in (row_labels or [])]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    widest = max((measure.textlength(ln, font=fnt) for t in row_text for ln in t), default=0)
    left = int(math.ceil(widest + 2 * pad)) if row_text else 0
    canvas = Image.new("RGB", (left + ncols * (cw + pad) + pad, head + len(cells) * (ch + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for c, lines in enumerate(col_text):
        x = left + pad + c * (cw + pad)
        for i, ln in enumerate(lines):
            draw.text((x, pad + i * line_h), ln, fill="black", font=fnt)
    for r, row in enumerate(cells):
        y = head + pad + r * (ch + pad)
        if r < len(row_text):
            top = y + max(0, (ch - len(row_text[r]) * line_h) // 2)
            for i, ln in enumerate(row_text[r]):
                draw.text((pad, top + i * line_h), ln, fill="black", font=fnt)
        for c, img in enumerate(row):
            if img.size != (w, h):
                raise AddbenchError(f"grid images differ in size: {img.size} vs {(w, h)}")
            canvas.paste(img.resize((cw, ch), Image.NEAREST) if scale > 1 else img, (left + pad + c * (cw + pad), y))
    return canvas


def column_labels(prompts: list[str], seeds: list[int]) -> list[str]:
    """One label per (prompt, seed) column, in the grid's order: the caption, then "seed s" on a line of its own."""
    return [f"{p}\nseed {s}" for p in prompts for s in seeds]


def row_micro_batch(n: int, model_batch: int) -> int:
    """The micro-batch that generates ``n`` images in the fewest network calls with the least padding: ``n`` itself
    up to the model's micro-batch, else the even split (40 images at 32: 2 calls of 20, not 32 + 32)."""
    calls = math.ceil(n / max(1, model_batch))
    return max(1, math.ceil(n / calls))


@contextlib.contextmanager
def exact_micro_batch(gen, n: int):
    """While inside: ``gen`` (a generator with a ``micro_batch`` setting) runs ``n`` images unpadded."""
    model_batch = getattr(gen, "effective_micro_batch", None)
    if model_batch is None or not hasattr(gen, "micro_batch"):
        yield
        return
    old, gen.micro_batch = gen.micro_batch, row_micro_batch(n, model_batch)
    try:
        yield
    finally:
        gen.micro_batch = old


def sample_grid(model, prompts: list[str], seeds: list[int], out: str | Path, steps: list[int] | None = None,
                guidance: float | None = None, device: str = "cpu", dtype: str | None = None,
                labels: bool = True, min_cell: int = MIN_CELL) -> int:
    """Write the grid PNG; returns the number of rows. ``model`` is a model string or a Generator, or a list of them
    (rows: each model at each step count). ``labels``: captions above the columns, (model, NFE) before the rows,
    cells upscaled to ``min_cell`` px; ``labels=False`` gives the bare tile at native size."""
    from addbench.bases.interface import Generator
    from addbench.eval import run as lifecycle
    from addbench.eval.run import apply_sampler_overrides

    if not prompts or not seeds:
        raise AddbenchError("samples needs at least one prompt and one seed")
    overrides = {"guidance": guidance} if guidance is not None else {}
    models = model if isinstance(model, (list, tuple)) else [model]
    pairs = [(p, s) for p in prompts for s in seeds]
    rows, row_labels = [], []
    for m in models:
        gen = m if isinstance(m, Generator) else lifecycle.load_generator(m, device, dtype, overrides)
        for n in steps or [None]:
            sampler = apply_sampler_overrides(gen.sampler, {**overrides, **({"steps": n} if n else {})})
            with exact_micro_batch(gen, len(pairs)):
                rows.append(gen.generate([p for p, _ in pairs], [s for _, s in pairs], sampler).cpu())
            row_labels.append(f"{str(gen.name).split('@')[0]}\n{sampler.label}\nNFE {sampler.nfe}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    image = labelled_tile(rows, row_labels, column_labels(prompts, seeds), min_cell) if labels else tile(rows)
    image.save(out)
    return len(rows)
