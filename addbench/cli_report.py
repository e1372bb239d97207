"""``addbench report``: a typer command only (the work: addbench.report). ``register(app)`` adds it to the main app."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from addbench.cli_common import guarded
from addbench.errors import AddbenchError


def report_cmd(
    runs: List[Path] = typer.Argument(..., help="eval run dirs, folders of them (**/record.json) or training run "
                                      "dirs (metrics.jsonl)"),
    out: Path = typer.Option(..., "--out", "-o", help="output folder: index.html + assets/*.png"),
    title: Optional[str] = typer.Option(None, "--title", help="page title (default: addbench report)"),
    published: Optional[List[str]] = typer.Option(None, "--published", help="published table(s) to add to the "
                                                  "leaderboard and the NFE plots (as in addbench leaderboard)"),
    prompts: int = typer.Option(4, "--prompts", help="prompts per sample grid (the same in every grid of a suite)"),
    seeds: int = typer.Option(2, "--seeds", help="seeds per prompt in the sample grids"),
    extremes: int = typer.Option(3, "--extremes", help="best and worst prompts shown per per-sample metric"),
):
    """One static HTML page (offline: its PNGs beside it, relative paths): leaderboard, metric-vs-NFE plots with
    intervals, labelled sample grids, best / worst prompts, training curves and every run's provenance."""
    from addbench.report import build_report

    for name, value in (("--prompts", prompts), ("--seeds", seeds), ("--extremes", extremes)):
        if value < 1:
            raise AddbenchError(f"{name} must be >= 1; got {value}")
    if out.exists() and not out.is_dir():
        raise AddbenchError(f"--out {out} is a file; give a folder (index.html and assets/ go there)")
    index = build_report(runs, out, title, published, prompts, seeds, extremes)
    print(f"wrote {index}")


def register(app: typer.Typer) -> None:
    app.command("report")(guarded(report_cmd))
