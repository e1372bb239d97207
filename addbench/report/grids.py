"""Report images from the runs' own PNGs: a labelled grid per model family (rows = its runs by NFE, columns = the
same few (prompt, seed) pairs in every grid of a suite), and the best and worst prompts of each per-sample metric."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from addbench.eval.grid import column_labels, labelled_tile
from addbench.eval.samples import read_png
from addbench.report.collect import EvalRun
from addbench.report.plots import slug

GRID_CELL = 128  # px per cell in report grids (toy samples are 32 px: x4, nearest); 8 columns fit the page
STRIP_CELL = 96  # px per image beside a best / worst prompt


@dataclass
class Grid:
    file: str
    suite: str
    family: str
    prompts: list[str]
    seeds: list[int]
    rows: list[str]  # "model, NFE n" per row


@dataclass
class Extreme:
    prompt: str
    value: float
    file: str  # the prompt's images (one per seed), side by side


@dataclass
class Extremes:
    run: EvalRun
    metric: str
    higher_is_better: bool
    best: list[Extreme] = field(default_factory=list)
    worst: list[Extreme] = field(default_factory=list)


def _with_images(runs: list[EvalRun]) -> list[EvalRun]:
    return [r for r in runs if not r.is_video and r.samples is not None and "image" in r.samples]


def shared_prompts(runs: list[EvalRun], k: int) -> list[str]:
    """``k`` prompts that every run has, spread evenly over the first run's prompt order (deterministic)."""
    common = None
    for r in runs:
        texts = set(r.samples["prompt"].astype(str))
        common = texts if common is None else common & texts
    order = list(dict.fromkeys(t for t in runs[0].samples.sort_values("prompt_index")["prompt"].astype(str)
                               if t in (common or set())))
    if len(order) <= k:
        return order
    return [order[int(i)] for i in np.linspace(0, len(order) - 1, k).round()]


def shared_seeds(runs: list[EvalRun], k: int) -> list[int]:
    common = None
    for r in runs:
        seeds = set(int(s) for s in r.samples["seed"])
        common = seeds if common is None else common & seeds
    return sorted(common or set())[:k]


def _load(path: Path | None, size: tuple[int, int] | None) -> Image.Image:
    """A sample PNG, or a grey square where the file is missing."""
    if path is None:
        return Image.new("RGB", size or (32, 32), (128, 128, 128))
    image, _ = read_png(path)
    return Image.fromarray(image.permute(1, 2, 0).numpy())


def _fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Runs of one family at another resolution share the grid at the first run's size."""
    return image if image.size == size else image.resize(size, Image.LANCZOS)


def family_grids(evals: list[EvalRun], out_dir: Path, n_prompts: int = 4, n_seeds: int = 2,
                 prefix: str = "assets/") -> list[Grid]:
    """One labelled grid per (suite, model family); all grids of a suite show the same prompts and seeds."""
    runs = _with_images(evals)
    grids = []
    for suite in sorted({r.suite for r in runs}):
        in_suite = [r for r in runs if r.suite == suite]
        prompts, seeds = shared_prompts(in_suite, n_prompts), shared_seeds(in_suite, n_seeds)
        if not prompts or not seeds:
            continue
        for family in sorted({r.family for r in in_suite}):
            members = sorted((r for r in in_suite if r.family == family), key=lambda r: (r.nfe, r.model))
            rows, labels, size = [], [], None
            for r in members:
                paths = [r.image_path(p, s) for p in prompts for s in seeds]
                first = next((p for p in paths if p is not None), None)
                if first is None:
                    continue
                size = size if rows else _load(first, None).size  # the family's first row sets the cell size
                rows.append([_fit(_load(p, size), size) for p in paths])
                labels.append(f"{r.model}\nNFE {r.nfe}")
            if not rows:
                continue
            file = f"{prefix}grid_{len(grids):02d}_{slug(suite)}_{slug(family)}.png"
            labelled_tile(rows, labels, column_labels(prompts, seeds), min_cell=GRID_CELL).save(out_dir / file)
            grids.append(Grid(file, suite, family, prompts, seeds, [ln.replace("\n", ", ") for ln in labels]))
    return grids


def _strip(paths: list[Path], out: Path) -> None:
    images = [_load(p, None) for p in paths]
    labelled_tile([images], min_cell=STRIP_CELL, pad=2).save(out)


def extremes(evals: list[EvalRun], out_dir: Path, k: int = 3, prefix: str = "assets/") -> list[Extremes]:
    """Per run and per-sample metric: the ``k`` best and ``k`` worst prompts by the metric's mean over seeds (the
    metric's direction decides which is best), each with its images."""
    found = []
    for i, run in enumerate(_with_images(evals)):
        df = run.samples
        for j, mid in enumerate(run.sample_metrics()):
            per_prompt = (df[df[mid].notna()].groupby("prompt_index")
                          .agg(prompt=("prompt", "first"), value=(mid, "mean")).reset_index())
            if per_prompt.empty:
                continue
            hib = run.higher_is_better(mid)
            ranked = per_prompt.sort_values(["value", "prompt_index"], ascending=[not hib, True])
            ex = Extremes(run, mid, hib)
            n = min(k, len(ranked) // 2) or 1
            for kind, part in (("best", ranked.head(n)), ("worst", ranked.tail(n).iloc[::-1])):
                for _, row in part.iterrows():
                    rows = df[df["prompt_index"] == row["prompt_index"]].sort_values("seed")
                    paths = [run.path / str(im) for im in rows["image"] if (run.path / str(im)).is_file()]
                    file = ""
                    if paths:
                        file = (f"{prefix}ex_{i:02d}_{j}_{slug(mid.split('[')[0])}_{kind}_"
                                f"{int(row['prompt_index'])}.png")
                        _strip(paths, out_dir / file)
                    getattr(ex, kind).append(Extreme(str(row["prompt"]), float(row["value"]), file))
            found.append(ex)
    return found
