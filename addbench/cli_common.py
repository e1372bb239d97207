"""What every command module shares: the consoles and ``guarded``, the one-line error for user-facing problems.

``addbench/cli.py`` and its command groups (``cli_stats``, ``cli_arena``, ``cli_report``) import these, so every
AddbenchError / RegistryError is printed the same way: one red line ``error: ...`` and exit code 2 (no traceback).
"""
from __future__ import annotations

import functools

import typer
from rich.console import Console
from rich.markup import escape

from addbench.errors import AddbenchError
from addbench.registry import RegistryError

err = Console(stderr=True, soft_wrap=True, highlight=False)
console = Console(soft_wrap=True, highlight=False)


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()).strip()


def guarded(fn):
    """One red line and exit code 2 for user-facing errors (docs/errors.md)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (AddbenchError, RegistryError) as exc:
            err.print(f"[red]error: {escape(one_line(exc))}[/red]")
            raise typer.Exit(2) from None
    return wrapper
