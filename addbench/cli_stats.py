"""``addbench compare`` and ``addbench elo``: typer commands only (the work: addbench.eval.compare,
addbench.metrics.elo, addbench.metrics.winrate). ``register(app)`` adds them to the main app."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from addbench.cli_common import guarded
from addbench.errors import AddbenchError

FORMATS = ("md", "json")
def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise AddbenchError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")


def _metric_list(metrics: Optional[List[str]]) -> list[str] | None:
    return [m for item in metrics for m in item.split(",") if m] if metrics else None


def compare_cmd(
    run_a: Path = typer.Argument(..., help="eval run dir A (record.json + per_sample.parquet)"),
    run_b: Path = typer.Argument(..., help="eval run dir B; differences are B - A"),
    metrics: Optional[List[str]] = typer.Option(None, "--metrics", help="metric ids or names (repeatable or "
                                                "comma-separated; default: all)"),
    draws: int = typer.Option(2000, "--draws", help="bootstrap draws of prompts"),
    seed: int = typer.Option(0, "--seed"),
    fmt: str = typer.Option("md", "--format", "-f", help="md | json"),
    force: bool = typer.Option(False, "--force", help="compare even when suite, prompts, seeds, dtype, metric ids "
                                                      "or reference statistics differ (listed in the output)"),
):
    """Paired comparison of two runs: B - A per metric, 95% paired-bootstrap interval over prompts, p-value."""
    from addbench.eval.compare import compare_runs, format_markdown

    _check_format(fmt)
    if draws < 2:
        raise AddbenchError(f"--draws must be >= 2; got {draws}")
    result = compare_runs(run_a, run_b, _metric_list(metrics), n_boot=draws, seed=seed, force=force)
    print(json.dumps(result, indent=2) if fmt == "json" else format_markdown(result), end="\n" if fmt == "json" else "")


def elo_cmd(
    prefs: Path = typer.Argument(..., help="preference file: JSONL (one game a line) or CSV; docs/statistics.md"),
    draws: int = typer.Option(1000, "--draws", help="bootstrap draws (orders; games and orders; prompts)"),
    k: float = typer.Option(1.0, "--k", help="ELO K factor (ADD: 1)"),
    init: float = typer.Option(1000.0, "--init", help="initial rating (ADD: 1000)"),
    seed: int = typer.Option(0, "--seed"),
    fmt: str = typer.Option("md", "--format", "-f", help="md | json"),
):
    """ELO ratings (ADD, app. B.2) with intervals over orders and over games + orders; win-rates by prompt."""
    from addbench.metrics.elo import elo_report, format_markdown
    from addbench.metrics.winrate import read_records

    _check_format(fmt)
    if draws < 2:
        raise AddbenchError(f"--draws must be >= 2; got {draws}")
    records = read_records(prefs)
    if not records:
        raise AddbenchError(f"{prefs} holds no games")
    report = elo_report(records, n_draws=draws, seed=seed, k=k, r_init=init)
    print(json.dumps(report, indent=2) if fmt == "json" else format_markdown(report), end="\n" if fmt == "json" else "")


def register(app: typer.Typer) -> None:
    app.command("compare")(guarded(compare_cmd))
    app.command("elo")(guarded(elo_cmd))
