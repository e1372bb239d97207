"""Captions of the unit world: ``"class <k>"`` for class k (0-based, e.g. ``"class 2"``); ``""`` = unconditional.

Parsing ignores case and surrounding / repeated whitespace; anything else is refused with an AddbenchError.
Class ids are ints 0..K-1 and :data:`UNCOND` (-1) for the empty caption.
"""
from __future__ import annotations

import re

import numpy as np

from addbench.errors import AddbenchError
from addbench.gmm.mixture import make_mixture

UNCOND = -1
_PATTERN = re.compile(r"^\s*class\s+(\d+)\s*$", re.IGNORECASE)


def caption(k: int) -> str:
    return "" if k == UNCOND else f"class {int(k)}"


def parse_caption(text: str, n_classes: int | None = None) -> int:
    """Class id of a caption (``UNCOND`` for ""); ``n_classes`` bounds-checks it."""
    if not text.strip():
        return UNCOND
    m = _PATTERN.match(text)
    if m is None or (n_classes is not None and int(m.group(1)) >= n_classes):
        bound = f" with 0 <= k < {n_classes}" if n_classes is not None else ""
        raise AddbenchError(f"gmm caption {text!r} is not 'class <k>'{bound} or '' (unconditional); "
                            "use addbench.gmm.prompts(n) or prompts=gmm:N")
    return int(m.group(1))


def parse_captions(texts: list[str], n_classes: int | None = None) -> np.ndarray:
    return np.array([parse_caption(t, n_classes) for t in texts], dtype=np.int64)


def draw_classes(n: int, seed: int = 0, mixture=None) -> np.ndarray:
    """(n,) class ids drawn from the class prior (the default world's when ``mixture`` is None)."""
    prior = (mixture or make_mixture()).class_prior
    return np.random.default_rng(seed).choice(len(prior), size=n, p=prior).astype(np.int64)


def prompts(n: int, seed: int = 0, mixture=None) -> list[str]:
    """``n`` captions with classes drawn from the class prior, deterministic from ``seed``."""
    return [caption(k) for k in draw_classes(n, seed, mixture)]
