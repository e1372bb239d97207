"""``one_line_error(args)``: run ``addbench ARGS`` in-process and return its one ``error:`` line, asserting exit code 2,
exactly one non-empty output line and no traceback (the contract of docs/errors.md). Importable from every test
folder: tests/ is on sys.path through tests/conftest.py."""
from typer.testing import CliRunner

from addbench.cli import app


def one_line_error(args) -> str:
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert "Traceback" not in r.output
    return lines[0]
