"""Attention checks: a real sample against a known-bad control, and the raters who fail too many.

Controls are made on the fly from the run's own image, deterministically (same pixels on every request):

- ``blur``: Gaussian blur of radius 1/8 of the image side. The sharp image wins on quality.
- ``noise``: uniform RGB noise, seeded by the (prompt_index, seed) key. The real image wins on both questions.
- ``other_prompt``: the same run's image of another prompt. The real image wins on alignment.

A check is passed when every expected answer names the real side (a tie fails it). A rater whose failed share of
answered checks exceeds ``max_fail`` is flagged, and none of their votes count.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

KINDS = ("blur", "noise", "other_prompt")  # other_prompt last: it needs a second prompt
EXPECTED = {"blur": ("quality",), "noise": ("quality", "alignment"), "other_prompt": ("alignment",)}
MAX_FAIL = 0.25


def control_image(image: Image.Image, kind: str | None, key: tuple[int, int]) -> Image.Image:
    """``image`` made known-bad by ``kind`` (None, other_prompt: unchanged; that control swaps the source image)."""
    image = image.convert("RGB")
    if kind == "blur":
        return image.filter(ImageFilter.GaussianBlur(radius=max(2.0, max(image.size) / 8)))
    if kind == "noise":
        digest = hashlib.sha256(f"addbench-arena-noise\0{key[0]}\0{key[1]}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        return Image.fromarray(rng.integers(0, 256, (image.height, image.width, 3), dtype=np.uint8))
    if kind in (None, "other_prompt"):
        return image
    raise ValueError(f"unknown control kind {kind!r}")


def control_png(path: Path, kind: str | None, key: tuple[int, int]) -> bytes:
    """PNG bytes of the image at ``path`` as the rater sees it (the real image's own bytes when no control)."""
    if kind in (None, "other_prompt"):
        return Path(path).read_bytes()
    with Image.open(path) as im:
        out = control_image(im, kind, key)
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()


def passed(kind: str, control_side: str, answers: dict[str, str]) -> bool:
    """Whether ``answers`` ({question: left|right|tie}) pick the real side on every question ``kind`` checks."""
    good = "right" if control_side == "left" else "left"
    return all(answers[q] == good for q in EXPECTED[kind])


def rater_stats(votes: list[dict], max_fail: float = MAX_FAIL) -> dict[str, dict]:
    """``{rater: {votes, controls, failed, fail_rate, flagged}}`` from vote rows (``control``, ``passed``)."""
    out: dict[str, dict] = {}
    for v in votes:
        s = out.setdefault(v["rater"], {"votes": 0, "controls": 0, "failed": 0})
        s["votes"] += 1
        if v["control"]:
            s["controls"] += 1
            s["failed"] += not v["passed"]
    for s in out.values():
        s["fail_rate"] = s["failed"] / s["controls"] if s["controls"] else None
        s["flagged"] = bool(s["controls"]) and s["fail_rate"] > max_fail
    return dict(sorted(out.items()))
