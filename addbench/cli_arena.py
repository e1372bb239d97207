"""``addbench arena``: the human preference arena (a local web app), its export and the automatic arena; typer
commands only (the work: addbench.arena). ``register(app)`` adds them to the main app.

``addbench arena RUN_DIR... --db F`` serves a study (short for ``addbench arena serve``);
``addbench arena export --db F --out prefs.jsonl`` and ``addbench arena auto RUN_DIR... --metric M --out F``
write preference JSONL for ``addbench elo``.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from typer.core import TyperGroup

from addbench.cli_common import console, err, guarded
from addbench.errors import AddbenchError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _ServeByDefault(TyperGroup):
    """``addbench arena RUN_DIR...`` runs ``serve``; ``export`` and ``auto`` are subcommands."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["serve", *args]
        return super().parse_args(ctx, args)


arena_app = typer.Typer(cls=_ServeByDefault, no_args_is_help=True,
                        help="Human preference arena (ADD's study): serve a study, export its votes, or judge the "
                             "same pairs by a preference score. `addbench arena RUN_DIR... --db F` = serve.")


def _allowed_hosts(host: str) -> tuple[str, ...]:
    from addbench.arena.app import LOCAL_HOSTS

    if host in ("0.0.0.0", "::"):
        return ("*",)
    return LOCAL_HOSTS + ((f"[{host}]" if ":" in host else host),)


@arena_app.command("serve")
@guarded
def serve_cmd(
    runs: List[Path] = typer.Argument(..., help="eval run dirs (record.json + per_sample.parquet), two or more"),
    db: Path = typer.Option(..., "--db", help="the study's SQLite file (made on first start; restart: same options)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind (default: this machine only)"),
    port: int = typer.Option(8765, "--port"),
    token: Optional[str] = typer.Option(None, "--token", envvar="ADDBENCH_ARENA_TOKEN",
                                        help="rater token required on every request (?token=T in the link)"),
    controls: int = typer.Option(10, "--controls", help="one attention check in every N items (0: none)"),
    pairs: Optional[int] = typer.Option(None, "--pairs", help="real pairs per rater (default: every model pair on "
                                                              "every shared (prompt, seed))"),
    seed: int = typer.Option(0, "--seed", help="schedule seed (each rater's schedule: from seed and rater id)"),
    max_fail: float = typer.Option(0.25, "--max-fail", help="a rater failing more than this share of the "
                                                            "attention checks is flagged; their votes do not count"),
):
    """Serve a blind pairwise study of the runs' samples (ADD app. B.2: quality and prompt alignment)."""
    try:
        import uvicorn

        from addbench.arena.app import create_app
    except ImportError as exc:
        raise AddbenchError(f"the arena needs its extra: pip install -e '.[arena]' ({exc})") from None
    from addbench.arena.runs import load_runs
    from addbench.arena.store import Store
    from addbench.arena.study import Study

    if not 0 <= max_fail <= 1:
        raise AddbenchError(f"--max-fail must be in [0, 1]; got {max_fail}")
    if token is not None and len(token) < 8:
        raise AddbenchError("--token must have at least 8 characters")
    study = Study(load_runs(runs), Store(db), seed=seed, pairs=pairs, controls_every=controls, max_fail=max_fail)
    if host not in LOOPBACK and token is None:
        err.print(f"[yellow]warning: serving on {escape(host)} without --token: anyone who reaches it can vote[/yellow]")
    shown = f"[{host}]" if ":" in host else host
    link = f"http://{shown}:{port}/?rater=NAME" + (f"&token={token}" if token else "")
    console.print(f"arena: {len(study.runs)} models, {len(study.keys)} shared samples, {study.pairs} pairs per "
                  f"rater + checks; votes in {db}")
    console.print(f"raters: {escape(link)}   results: http://{shown}:{port}/results")
    uvicorn.run(create_app(study, token, _allowed_hosts(host)), host=host, port=port, log_level="warning")


@arena_app.command("export")
@guarded
def export_cmd(
    db: Path = typer.Option(..., "--db", help="the study's SQLite file"),
    out: Path = typer.Option(..., "--out", help="preference JSONL for addbench elo"),
    max_fail: Optional[float] = typer.Option(None, "--max-fail", help="flagging threshold (default: the study's)"),
    include_flagged: bool = typer.Option(False, "--include-flagged", help="keep the votes of flagged raters"),
    table: Optional[Path] = typer.Option(None, "--table", help="also a CSV of elo[human,quality] / "
                                         "elo[human,alignment] per model for `addbench leaderboard --published FILE`"),
):
    """Write the study's real votes as preference JSONL (two records per vote: quality, alignment)."""
    from addbench.arena.controls import rater_stats
    from addbench.arena.export import human_rows, write_jsonl
    from addbench.arena.store import open_existing

    store = open_existing(db)
    threshold = store.settings()["max_fail"] if max_fail is None else max_fail
    votes = store.votes()
    flagged = [r for r, s in rater_stats(votes, threshold).items() if s["flagged"]]
    rows = human_rows(votes, threshold, include_flagged)
    write_jsonl(rows, out)
    note = f"; flagged rater(s) {', '.join(flagged)} " + ("kept" if include_flagged else "left out") if flagged else ""
    console.print(f"wrote {out}: {len(rows)} records from {len(votes)} votes{escape(note)}")
    if table is not None:
        from addbench.arena.results import leaderboard_csv, report

        leaderboard_csv(report(votes, threshold), table, f"human study {Path(db).name}")
        console.print(f"wrote {table}: ELO per model and question (addbench leaderboard RUNS --published {table})")


@arena_app.command("auto")
@guarded
def auto_cmd(
    runs: List[Path] = typer.Argument(..., help="eval run dirs, two or more"),
    metric: str = typer.Option(..., "--metric", help="pickscore | hpsv2 | any per-sample column of per_sample.parquet"),
    out: Path = typer.Option(..., "--out", help="preference JSONL for addbench elo"),
    question: Optional[str] = typer.Option(None, "--question", help="the records' question (default: the metric id)"),
):
    """The automatic arena: every model pair on every shared (prompt, seed), won by the better per-sample score."""
    from addbench.arena.export import auto_rows, write_jsonl
    from addbench.arena.runs import load_runs

    rows, skipped = auto_rows(load_runs(runs), metric, question)
    write_jsonl(rows, out)
    console.print(f"wrote {out}: {len(rows)} records" + (f" ({skipped} pairs without a score skipped)" if skipped else ""))


def register(app: typer.Typer) -> None:
    app.add_typer(arena_app, name="arena")
