"""The Python API: the same operations and options as the command line, for notebooks and scripts.

    import addbench
    res = addbench.evaluate("toy", "toy-smoke", limit=2, sampler_overrides={"steps": 1}, progress=False)
    print(addbench.leaderboard([res.run_dir]))
    ckpt = addbench.train("dmd", "toy", "runs/dmd-toy", ["budget_images=7680"])
    gen = addbench.load_generator(ckpt)

Each function validates its options as the CLI does (one-line ``AddbenchError`` naming the option) and writes the
same files; ``evaluate`` takes the fields of :class:`addbench.config.EvalConfig` as keywords.
"""
from __future__ import annotations

from pathlib import Path


def evaluate(model: str, suite: str, **options):
    """``addbench eval``: generate the suite's samples, score them, write ``record.json`` (resumes like the CLI).
    ``options``: any field of :class:`~addbench.config.EvalConfig` (out, device, dtype, batch_size, limit,
    sampler_overrides, metric_overrides, fast, repair, ...). Returns the runner's ``EvalResult`` (run_dir, record)."""
    from addbench.config import EvalConfig

    return EvalConfig(model=str(model), suite=str(suite), **options).run()


def train(distiller, base, out, overrides: list[str] | tuple = (), *, device: str | None = None,
          dry_run: bool = False) -> Path:
    """``addbench train``: train ``distiller`` (registered name or class) on ``base`` into ``out`` with ``key=value``
    overrides (``--set``); returns the exported checkpoint directory (resumes like the CLI)."""
    from addbench.train.entry import train as _train

    return _train(distiller, base, Path(out), list(overrides), dry_run, device=device)


def leaderboard(paths, published: list[str] | None = None, fmt: str = "md", frame: bool = False):
    """``addbench leaderboard``: the table of the run records under ``paths`` (and published tables) as text in
    ``fmt`` (md | latex | csv), or with ``frame=True`` the numeric pandas DataFrame (value, ci_lo, ci_hi per metric)."""
    from addbench.eval import tables

    paths = [str(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if frame:
        rows, _ = tables.leaderboard_rows(paths, published)
        return tables.numeric_frame(rows)
    text, _ = tables.leaderboard(paths, published, fmt)
    return text


def load_generator(model, device: str | None = None, dtype: str | None = None, **sampler_overrides):
    """A generator for ``model`` (registered base, pipeline dir, hub id or addbench checkpoint) with its sampler,
    e.g. ``load_generator(ckpt, steps=4).generate(prompts, seeds)``."""
    from addbench.bases.loading import load_generator as _load
    from addbench.config import check_sampler_overrides

    check_sampler_overrides(sampler_overrides)
    return _load(str(model), device=device, dtype=dtype, sampler_overrides=sampler_overrides or None)
