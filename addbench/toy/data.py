"""The toy world's data: procedural caption -> 32x32 RGB image pairs, deterministic from a seed.

A sample is one shape on a background::

    "a red circle at the top left on a dark background"
    "a large blue cross at the center on a striped background"

Captioned attributes (``SCHEMA``): colour (5), shape (5), position (5), background (4) and, in about
half the captions, size (2). Within one caption the image still varies: position jitter (±2.5 px),
radius inside its size class (and the size class itself when the caption does not name it),
rotation, colour tint, a lighting gradient over the shape, background brightness, gradient, noise and
stripe angle/period. So a model that collapses to one image per caption loses measurable diversity.

Rendering is vectorised torch on the CPU (float32, deterministic); parameters come from one
``numpy.random.default_rng(seed)``. Public API: ``SCHEMA``, ``sample(n, seed)``, ``prompts(n, seed)``,
``parse_caption(caption)``, ``render(params)``.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch

SIZE = 32

COLOURS = {  # RGB in [0, 1]
    "red": (0.90, 0.12, 0.12),
    "green": (0.12, 0.72, 0.20),
    "blue": (0.12, 0.30, 0.95),
    "yellow": (0.95, 0.85, 0.10),
    "purple": (0.62, 0.18, 0.82),
}
SHAPES = ("circle", "square", "triangle", "cross", "diamond")
POSITIONS = {  # phrase -> (x, y) centre in pixels
    "top left": (9.0, 9.0),
    "top right": (23.0, 9.0),
    "bottom left": (9.0, 23.0),
    "bottom right": (23.0, 23.0),
    "center": (16.0, 16.0),
}
BACKGROUNDS = ("dark", "light", "gray", "striped")
SIZES = {"small": (4.5, 6.0), "large": (8.0, 10.5)}  # radius range in pixels

SCHEMA: dict[str, tuple[str, ...]] = {
    "colour": tuple(COLOURS),
    "shape": SHAPES,
    "position": tuple(POSITIONS),
    "background": BACKGROUNDS,
    "size": tuple(SIZES),
}
SIZE_IN_CAPTION_P = 0.5
JITTER = 2.5


def caption(attrs: dict, with_size: bool) -> str:
    size = f"{attrs['size']} " if with_size else ""
    where = "at the center" if attrs["position"] == "center" else f"at the {attrs['position']}"
    return f"a {size}{attrs['colour']} {attrs['shape']} {where} on a {attrs['background']} background"


def parse_caption(text: str) -> dict[str, str]:
    """The attributes a caption names (size only when it says small/large). Unknown words are ignored."""
    t = " " + text.lower().strip().rstrip(".") + " "
    out: dict[str, str] = {}
    for c in COLOURS:
        if f" {c} " in t:
            out["colour"] = c
    for s in SHAPES:
        if f" {s} " in t:
            out["shape"] = s
    for p in sorted(POSITIONS, key=len, reverse=True):  # "top left" before "left"
        if f" {p} " in t:
            out["position"] = p
            break
    for b in BACKGROUNDS:
        if f" {b} background" in t:
            out["background"] = b
    for z in SIZES:
        if f" {z} " in t:
            out["size"] = z
    return out


def _draw_attrs(rng: np.random.Generator, n: int) -> tuple[list[dict], np.ndarray]:
    idx = {k: rng.integers(0, len(v), n) for k, v in SCHEMA.items()}
    with_size = rng.random(n) < SIZE_IN_CAPTION_P
    attrs = [{k: SCHEMA[k][int(idx[k][i])] for k in SCHEMA} for i in range(n)]
    return attrs, with_size


def prompts(n: int, seed: int = 0, exclude: dict | list[dict] | None = None) -> list[str]:
    """``n`` captions drawn from the caption distribution (the eval prompt source).

    ``exclude``: the kwargs of other prompt sets (``{n: 500, seed: 0}`` or a list of them) whose captions must not
    appear: draws that hit one are dropped and drawing goes on from the same generator until ``n`` are kept (so the
    result is the caption distribution conditioned on avoiding them; a split disjoint from toy-2k, say). Without
    ``exclude`` the list is one draw of ``n``, as it always was.
    """
    rng = np.random.default_rng([seed, 1])
    attrs, with_size = _draw_attrs(rng, n)
    out = [caption(a, bool(w)) for a, w in zip(attrs, with_size)]
    if not exclude:
        return out
    banned = {c for kw in ([exclude] if isinstance(exclude, dict) else exclude) for c in prompts(**kw)}
    if len(banned) >= len(all_captions()):
        raise ValueError("exclude covers every toy caption; nothing left to draw")
    out = [c for c in out if c not in banned]
    while len(out) < n:
        attrs, with_size = _draw_attrs(rng, n)
        out += [c for a, w in zip(attrs, with_size) if (c := caption(a, bool(w))) not in banned]
    return out[:n]


def all_captions() -> list[str]:
    """Every caption the toy world can draw (5 colours x 5 shapes x 5 positions x 4 backgrounds x 3 sizes = 1,500)."""
    keys = ("colour", "shape", "position", "background", "size")
    combos = [dict(zip(keys, v)) for v in itertools.product(*(SCHEMA[k] for k in keys))]
    return sorted({caption(a, w) for a in combos for w in (False, True)})


def draw_params(attrs: list[dict], rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Per-sample nuisance parameters (the variation within a caption)."""
    n = len(attrs)
    u = lambda lo, hi: torch.from_numpy(rng.uniform(lo, hi, n)).float()  # noqa: E731
    cx = torch.tensor([POSITIONS[a["position"]][0] for a in attrs]) + u(-JITTER, JITTER)
    cy = torch.tensor([POSITIONS[a["position"]][1] for a in attrs]) + u(-JITTER, JITTER)
    r_lo = torch.tensor([SIZES[a["size"]][0] for a in attrs])
    r_hi = torch.tensor([SIZES[a["size"]][1] for a in attrs])
    radius = r_lo + (r_hi - r_lo) * u(0, 1)
    colour = torch.tensor([COLOURS[a["colour"]] for a in attrs]) * torch.from_numpy(rng.uniform(0.85, 1.08, (n, 3))).float()
    return {
        "cx": cx, "cy": cy, "radius": radius,
        "angle": u(-0.3, 0.3),  # radians
        "colour": colour.clamp(0, 1),
        "light_dir": u(0, 2 * math.pi), "light_amp": u(0.05, 0.3),
        "shape": torch.tensor([SHAPES.index(a["shape"]) for a in attrs]),
        "bg": torch.tensor([BACKGROUNDS.index(a["background"]) for a in attrs]),
        "bg_level": u(0, 1), "bg_grad_dir": u(0, 2 * math.pi), "bg_grad_amp": u(0.0, 0.08),
        "stripe_angle": u(0, math.pi), "stripe_period": u(4.0, 7.0), "stripe_phase": u(0, 2 * math.pi),
        "noise_seed": torch.from_numpy(rng.integers(0, 2**31 - 1, n)),
    }


def _shape_mask(p: dict, xx: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
    """Anti-aliased coverage in [0, 1] of each sample's shape, (N, H, W)."""
    dx = xx[None] - p["cx"][:, None, None]
    dy = yy[None] - p["cy"][:, None, None]
    a = p["angle"][:, None, None]
    ca, sa = torch.cos(a), torch.sin(a)
    rx, ry = ca * dx + sa * dy, -sa * dx + ca * dy  # rotated coordinates
    r = p["radius"][:, None, None]
    # signed distances (negative inside), one per shape family
    d_circle = torch.sqrt(dx ** 2 + dy ** 2) - r
    d_square = torch.maximum(rx.abs(), ry.abs()) - 0.8 * r
    d_diamond = (rx.abs() + ry.abs()) / math.sqrt(2) - 0.75 * r
    arm = 0.35 * r
    d_cross = torch.minimum(torch.maximum(rx.abs() - r, ry.abs() - arm), torch.maximum(rx.abs() - arm, ry.abs() - r))
    # equilateral triangle pointing up (in rotated frame), circumradius r
    k, rt = math.sqrt(3.0), 1.35 * r
    ty = ry - 0.25 * rt
    d_tri = torch.maximum(torch.maximum((k * rx + ty) / 2, (-k * rx + ty) / 2), -ty - 0.5 * rt) - 0.25 * rt
    stack = torch.stack([d_circle, d_square, d_tri, d_cross, d_diamond], 1)  # (N, 5, H, W)
    d = stack.gather(1, p["shape"][:, None, None, None].expand(-1, 1, *d_circle.shape[1:]))[:, 0]
    return (0.5 - d).clamp(0, 1)


def _background(p: dict, xx: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
    n = p["bg"].shape[0]
    lvl = p["bg_level"][:, None, None]
    base = torch.stack([0.04 + 0.14 * lvl, 0.80 + 0.15 * lvl, 0.40 + 0.15 * lvl, 0.25 + 0.1 * lvl], 1)  # (N,4,1,1)
    ang = p["stripe_angle"][:, None, None]
    coord = torch.cos(ang) * xx[None] + torch.sin(ang) * yy[None]
    stripes = torch.sin(2 * math.pi * coord / p["stripe_period"][:, None, None] + p["stripe_phase"][:, None, None])
    striped = base[:, 3] + 0.35 * (stripes > 0).float()
    grad_dir = p["bg_grad_dir"][:, None, None]
    grad = p["bg_grad_amp"][:, None, None] * (torch.cos(grad_dir) * (xx[None] - 16) + torch.sin(grad_dir) * (yy[None] - 16)) / 16
    plain = base[:, :3].expand(-1, -1, SIZE, SIZE).clone()
    all_bg = torch.cat([plain, striped[:, None]], 1)  # (N, 4, H, W)
    grey = all_bg.gather(1, p["bg"][:, None, None, None].expand(-1, 1, SIZE, SIZE))[:, 0] + grad
    noise = torch.stack([torch.randn(SIZE, SIZE, generator=torch.Generator().manual_seed(int(s))) for s in p["noise_seed"]])
    tint = 0.02 * noise
    return (grey + tint)[:, None].expand(n, 3, SIZE, SIZE)


def render(p: dict) -> torch.Tensor:
    """uint8 images (N, 3, 32, 32) from ``draw_params`` output."""
    ys, xs = torch.meshgrid(torch.arange(SIZE, dtype=torch.float32) + 0.5, torch.arange(SIZE, dtype=torch.float32) + 0.5, indexing="ij")
    bg = _background(p, xs, ys)
    mask = _shape_mask(p, xs, ys)[:, None]
    ld = p["light_dir"][:, None, None]
    light = 1 + p["light_amp"][:, None, None] * (
        (torch.cos(ld) * (xs[None] - p["cx"][:, None, None]) + torch.sin(ld) * (ys[None] - p["cy"][:, None, None]))
        / p["radius"][:, None, None]
    )
    fg = p["colour"][:, :, None, None] * light[:, None]
    img = (mask * fg + (1 - mask) * bg).clamp(0, 1)
    return (img * 255).round().to(torch.uint8)


def sample(n: int, seed: int = 0) -> tuple[torch.Tensor, list[str], list[dict]]:
    """``n`` (image, caption, attributes) triples: uint8 (N,3,32,32), captions, full attribute dicts.

    The attribute dicts hold every attribute (size too, even when the caption leaves it out);
    ``parse_caption(caption)`` gives only the captioned ones.
    """
    rng = np.random.default_rng([seed, 2])
    attrs, with_size = _draw_attrs(rng, n)
    images = render(draw_params(attrs, rng)) if n else torch.zeros(0, 3, SIZE, SIZE, dtype=torch.uint8)
    return images, [caption(a, bool(w)) for a, w in zip(attrs, with_size)], attrs


def images_for_captions(captions: list[str], seed: int = 0) -> torch.Tensor:
    """Real images for given captions (attributes the caption omits are drawn at random)."""
    rng = np.random.default_rng([seed, 3])
    attrs, _ = _draw_attrs(rng, len(captions))
    for a, c in zip(attrs, captions):
        a.update(parse_caption(c))
    return render(draw_params(attrs, rng))


def attr_labels(attrs: list[dict]) -> dict[str, torch.Tensor]:
    """Class indices per attribute (for the classifier)."""
    return {k: torch.tensor([SCHEMA[k].index(a[k]) for a in attrs]) for k in SCHEMA}
