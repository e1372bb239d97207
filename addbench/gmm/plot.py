"""Scatter PNGs of unit-world samples, drawn with PIL (matplotlib is not a dependency).

``scatter_png(path, {name: (samples, classes)}, mixture)`` draws one square panel per entry, side by side,
after a first ``exact`` panel of exact samples of the first entry's classes. Points are coloured by their
conditioning class (grey: unconditional); each mode's 2σ ellipse is outlined in its class colour. D > 2 is
shown on the two principal axes of the mode means. Points outside the view are counted in the title.

``python -m addbench.gmm.plot --model gmm|CKPT --steps 1,200 --n 1000 --out scatter.png`` samples a model
(``n`` points per class, seeds 0..n-1) at each step count and writes the panels.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from addbench.gmm.mixture import Mixture

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (188, 189, 34), (23, 190, 207), (127, 127, 127)]
UNCOND_COLOUR = (60, 60, 60)
TITLE = 18


def _projection(mixture: Mixture) -> np.ndarray:
    """(D, 2) axes: the identity in 2-D, else the two principal axes of the mode means."""
    if mixture.dim == 2:
        return np.eye(2)
    means = mixture.flat_means() - mixture.flat_means().mean(0)
    return np.linalg.svd(means, full_matrices=False)[2][:2].T if len(means) > 1 else np.eye(mixture.dim)[:, :2]


def _colour(k: int) -> tuple[int, int, int]:
    return UNCOND_COLOUR if k < 0 else PALETTE[k % len(PALETTE)]


def _panel(name: str, points: np.ndarray, classes: np.ndarray, mixture: Mixture, proj: np.ndarray, lim: float,
           size: int) -> Image.Image:
    img = Image.new("RGB", (size, size + TITLE), "white")
    draw = ImageDraw.Draw(img)
    px = lambda p: ((p[..., 0] / lim + 1) * size / 2, TITLE + (1 - p[..., 1] / lim) * size / 2)  # noqa: E731
    draw.rectangle([0, TITLE, size - 1, size + TITLE - 1], outline=(200, 200, 200))
    for j, (mu, cov) in enumerate(zip(mixture.flat_means(), mixture.flat_covs())):
        lam, vec = np.linalg.eigh(proj.T @ cov @ proj)
        a = np.linspace(0, 2 * math.pi, 48)
        ring = (mu @ proj) + 2 * (np.stack([np.cos(a), np.sin(a)], 1) * np.sqrt(lam)) @ vec.T
        x, y = px(ring)
        draw.line(list(zip(x, y)) + [(x[0], y[0])], fill=_colour(int(mixture.mode_class()[j])), width=1)
    xy = points @ proj
    inside = (np.abs(xy) < lim).all(1)
    x, y = px(xy)
    for xi, yi, k in zip(x[inside], y[inside], classes[inside]):
        draw.rectangle([xi - 1, yi - 1, xi + 1, yi + 1], fill=_colour(int(k)))
    out = int((~inside).sum())
    draw.text((4, 3), f"{name}  n={len(points)}" + (f"  ({out} outside)" if out else ""), fill=(0, 0, 0))
    return img


def scatter_png(path, panels: dict, mixture: Mixture, size: int = 320, truth: bool = True, seed: int = 0) -> Path:
    """Write the panels (``name -> (samples (N, D), classes (N,))``) side by side, after an ``exact`` panel of
    exact samples of the first entry's classes when ``truth``; returns the path."""
    from addbench.gmm.analytic import sample

    panels = {k: (np.asarray(torch.as_tensor(s, dtype=torch.float64)), np.asarray(c)) for k, (s, c) in panels.items()}
    if truth and panels:
        classes = next(iter(panels.values()))[1]
        panels = {"exact": (sample(mixture, classes, seed).numpy(), classes), **panels}
    proj = _projection(mixture)
    spread = max(math.sqrt(np.linalg.eigvalsh(proj.T @ c @ proj).max()) for c in mixture.flat_covs())
    lim = 1.1 * (np.abs(mixture.flat_means() @ proj).max() + 4 * spread)
    tiles = [_panel(name, s, c, mixture, proj, lim, size) for name, (s, c) in panels.items()]
    canvas = Image.new("RGB", (len(tiles) * (size + 4) + 4, size + TITLE + 8), "white")
    for i, tile in enumerate(tiles):
        canvas.paste(tile, (4 + i * (size + 4), 4))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def scatter_model(model, out, steps: list[int] | None, prompts: list[str] | None = None,
                  seeds: list[int] | None = None, n: int = 500, device=None, guidance: float | None = None) -> Path:
    """Sample ``model`` (``"gmm"`` or a checkpoint trained on it) at one point per (prompt, seed) pair (default:
    every class, seeds 0..n-1), one panel per step count (the model's own sampler when ``steps`` is empty)."""
    import dataclasses

    from addbench.gmm.captions import caption, parse_captions
    from addbench.gmm.sample import load_model, sample_points

    base, sampler = load_model(model, device)
    if guidance is not None:
        sampler = dataclasses.replace(sampler, guidance=float(guidance))
    prompts = [caption(k) for k in range(base.n_classes)] if prompts is None else prompts
    seeds = list(range(n)) if seeds is None else list(seeds)
    cls = np.repeat(parse_captions(prompts, base.n_classes), len(seeds))
    seeds = seeds * len(prompts)
    panels = {}
    for s in steps or [None]:
        label = f"{s} step" + ("s" if s != 1 else "") if s else sampler.label
        panels[label] = (sample_points(base, cls, seeds, sampler, steps=s), cls)
    return scatter_png(out, panels, base.mixture)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m addbench.gmm.plot", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="gmm", help="gmm or an addbench checkpoint trained on it")
    p.add_argument("--steps", default="", help="comma-separated step counts, one panel each (default: the model's)")
    p.add_argument("--n", type=int, default=500, help="points per class")
    p.add_argument("--guidance", type=float, default=None)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    steps = [int(s) for s in a.steps.split(",") if s.strip()]
    print(scatter_model(a.model, a.out, steps, n=a.n, guidance=a.guidance))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
