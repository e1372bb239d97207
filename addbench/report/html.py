"""The report page: one ``index.html`` (inline CSS, no script, no network) and its PNGs under ``assets/``."""
from __future__ import annotations

import datetime as dt
import json
import math
from html import escape
from pathlib import Path
from string import Template

import pandas as pd

from addbench.eval.tables import is_video, leaderboard_frame
from addbench.report.collect import Collected, EvalRun, TrainRun, collect
from addbench.report.grids import Extremes, Grid, extremes, family_grids
from addbench.report.plots import Plot, nfe_plots, training_plot

ASSETS = "assets"

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="addbench report">
<title>$title</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 0 24px 48px; color: #1d2330; }
h1 { margin: 24px 0 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #d7dbe3; padding-bottom: 4px; }
nav a { margin-right: 14px; } .meta { color: #5b6475; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d7dbe3; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f2f4f8; } tr.published td { color: #5b6475; font-style: italic; }
figure { margin: 8px 16px 16px 0; display: inline-block; vertical-align: top; }
figcaption { color: #5b6475; font-size: 12px; max-width: 560px; }
img { max-width: 100%; height: auto; image-rendering: pixelated; }
.plots figure { max-width: 580px; }
.grid { overflow-x: auto; } .grid img { border: 1px solid #d7dbe3; max-width: none; }
.extremes td img { height: 64px; width: auto; } .value { white-space: nowrap; }
details { margin: 6px 0; } summary { cursor: pointer; } pre { background: #f6f8fa; padding: 8px; overflow-x: auto;
font-size: 12px; }
.note { color: #8a5300; }
</style>
</head>
<body>
<h1>$title</h1>
<p class="meta">$summary</p>
<nav>$nav</nav>
$body
</body>
</html>
""")


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return ""
    return escape(str(v))


def table_html(df: pd.DataFrame, table_id: str) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cls = "" if str(getattr(row, "source", "measured")) == "measured" else ' class="published"'
        body.append(f"<tr{cls}>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>")
    return (f'<table id="{table_id}" class="leaderboard"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _leaderboard(c: Collected) -> str:
    if not c.rows:
        return "<p>No complete eval runs.</p>" + _skipped(c)
    groups = [("image", [r for r in c.rows if not is_video(r)]), ("video", [r for r in c.rows if is_video(r)])]
    parts = [table_html(leaderboard_frame(rows), f"leaderboard-{kind}") for kind, rows in groups if rows]
    return ("<p>95% intervals over prompts (<code>addbench leaderboard</code>'s cells; ↑ higher is better, "
            "↓ lower is better).</p>" + "".join(parts) + _skipped(c))


def _skipped(c: Collected) -> str:
    if not c.skipped:
        return ""
    items = "".join(f"<li><code>{escape(s)}</code></li>" for s in c.skipped)
    return f'<p class="note">Incomplete runs left out:</p><ul>{items}</ul>'


def _figure(src: str, caption: str, alt: str) -> str:
    return (f'<figure><img src="{escape(src)}" alt="{escape(alt)}" loading="eager">'
            f"<figcaption>{caption}</figcaption></figure>")


def _plots(plots: list[Plot]) -> str:
    if not plots:
        return "<p>No metric has a value at a known NFE.</p>"
    return '<div class="plots">' + "".join(
        _figure(p.file, f"<b>{escape(p.title)}</b><br>{escape(p.note)}", f"{p.title} vs NFE") for p in plots) + "</div>"


def _grids(grids: list[Grid]) -> str:
    if not grids:
        return "<p>No run has its sample PNGs and per_sample.parquet here.</p>"
    out = []
    for g in grids:
        prompts = " | ".join(f"“{p}”" for p in g.prompts)
        caption = (f"<b>{escape(g.family)}</b> on {escape(g.suite)}: rows {escape('; '.join(g.rows))}. Columns: "
                   f"{escape(prompts)}, seeds {escape(', '.join(map(str, g.seeds)))}")
        out.append(f'<div class="grid">{_figure(g.file, caption, f"samples of {g.family} on {g.suite}")}</div>')
    return "".join(out)


def _extreme_rows(kind: str, items) -> str:
    rows = []
    for e in items:
        img = f'<img src="{escape(e.file)}" alt="{escape(e.prompt)}">' if e.file else "(images missing)"
        rows.append(f"<tr><td>{kind}</td><td class=\"value\">{e.value:.4g}</td><td>{escape(e.prompt)}</td>"
                    f"<td>{img}</td></tr>")
    return "".join(rows)


def _extremes(found: list[Extremes]) -> str:
    if not found:
        return "<p>No per-sample metric with images.</p>"
    out = ["<p>Mean over seeds per prompt; one image per seed.</p>"]
    for ex in found:
        arrow = "↑" if ex.higher_is_better else "↓"
        out.append(f"<h3>{escape(ex.run.model)} (NFE {ex.run.nfe}, {escape(ex.run.suite)}): "
                   f"<code>{escape(ex.metric)}</code> {arrow}</h3>"
                   '<table class="extremes"><thead><tr><th></th><th>value</th><th>prompt</th><th>samples</th></tr>'
                   f"</thead><tbody>{_extreme_rows('best', ex.best)}{_extreme_rows('worst', ex.worst)}</tbody></table>")
    return "".join(out)


def _training(trains: list[TrainRun], plots: list[Plot | None]) -> str:
    if not trains:
        return "<p>No training run given (a dir with metrics.jsonl).</p>"
    out = []
    for run, plot in zip(trains, plots):
        note = f" ({len(run.bad)} unreadable line(s) skipped)" if run.bad else ""
        if plot is None:
            out.append(f"<p><code>{escape(str(run.path))}</code>: no logged values{escape(note)}.</p>")
        else:
            out.append(_figure(plot.file, f"<b>{escape(run.name)}</b>: {escape(plot.note)}{escape(note)}<br>"
                                          f"<code>{escape(str(run.path))}</code>", f"training curves of {run.name}"))
    return "".join(out)


def _json_block(name: str, value) -> str:
    return f"<h4>{escape(name)}</h4><pre>{escape(json.dumps(value, indent=2, default=str))}</pre>"


def _provenance(evals: list[EvalRun], trains: list[TrainRun]) -> str:
    out = []
    for r in evals:
        rec = r.record
        metrics = {mid: {k: m.get(k) for k in ("convention", "kwargs", "n", "per", "ci", "provenance") if k in m}
                   for mid, m in rec["metrics"].items()}
        out.append(f'<details class="provenance"><summary>{escape(r.model)} · NFE {r.nfe} · {escape(r.suite)} — '
                   f"<code>{escape(str(r.path))}</code></summary>"
                   + _json_block("model", rec.get("model")) + _json_block("suite", rec.get("suite"))
                   + _json_block("provenance", rec.get("provenance")) + _json_block("metrics", metrics)
                   + "</details>")
    for t in trains:
        out.append(f'<details class="provenance"><summary>training: {escape(t.name)} — '
                   f"<code>{escape(str(t.path))}</code></summary>"
                   + (_json_block("config.json", t.config) if t.config else "<p>no config.json</p>") + "</details>")
    return "".join(out) or "<p>No runs.</p>"


SECTIONS = (("leaderboard", "Leaderboard"), ("nfe", "Metrics vs NFE"), ("samples", "Samples"),
            ("extremes", "Best and worst prompts"), ("training", "Training curves"), ("provenance", "Provenance"))


def build_report(paths: list[str | Path], out: str | Path, title: str | None = None,
                 published: list[str] | None = None, n_prompts: int = 4, n_seeds: int = 2, k: int = 3) -> Path:
    """Write ``out/index.html`` and ``out/assets/*.png`` for the runs under ``paths``; returns the page's path."""
    out = Path(out)
    assets = out / ASSETS
    assets.mkdir(parents=True, exist_ok=True)
    for old in assets.glob("*.png"):  # a previous report's pictures: every file here is the report's own
        old.unlink()
    c = collect(paths, published)
    prefix = f"{ASSETS}/"
    plots = nfe_plots(c.rows, out, prefix)
    grids = family_grids(c.evals, out, n_prompts, n_seeds, prefix)
    found = extremes(c.evals, out, k, prefix)
    curves = [training_plot(t.records, f"{i:02d}_{t.name}", out, prefix) for i, t in enumerate(c.trains)]
    body = {"leaderboard": _leaderboard(c), "nfe": _plots(plots), "samples": _grids(grids),
            "extremes": _extremes(found), "training": _training(c.trains, curves),
            "provenance": _provenance(c.evals, c.trains)}
    title = title or "addbench report"
    summary = (f"{len(c.evals)} eval run(s), {len(c.trains)} training run(s); generated "
               f"{dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by <code>addbench report</code>.")
    page = PAGE.substitute(
        title=escape(title), summary=summary,
        nav="".join(f'<a href="#{key}">{name}</a>' for key, name in SECTIONS),
        body="\n".join(f'<section id="{key}"><h2>{name}</h2>{body[key]}</section>' for key, name in SECTIONS))
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
