"""Report plots (matplotlib's Agg canvas through ``Figure``: no pyplot state, no display): one metric-vs-NFE plot
per metric, one line per model family with its 95% intervals; one panel per logged value of a training run."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from addbench.eval.tables import numeric_frame, numeric_metadata


@dataclass
class Plot:
    file: str  # relative to the report folder
    title: str
    note: str = ""


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # the Agg canvas is attached by savefig: no backend switch needed

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:60] or "x"


def _series_labels(frame: pd.DataFrame) -> list[str]:
    """One line per model family (per suite when several; published rows apart). A family with two rows at one NFE
    (the same model evaluated under two output folders) is split by the run's folder, so no line doubles back."""
    several_suites = frame["suite"].nunique() > 1
    labels = []
    for _, row in frame.iterrows():
        label = str(row["model"]).split("@")[0] + (f" ({row['suite']})" if several_suites else "")
        labels.append(label + (" [published]" if row["source"] != "measured" else ""))
    frame = frame.assign(_series=labels, _where=[Path(str(r)).parent.name if r else "" for r in frame["run"]])
    doubled = {k for k, g in frame.groupby("_series") if g["nfe"].duplicated().any()}
    return [f"{s} [{w}]" if s in doubled and w else s for s, w in zip(frame["_series"], frame["_where"])]


MARKERS = "osD^v<>pPX*h"


def nfe_plots(rows: list[dict], out_dir: Path, prefix: str = "assets/") -> list[Plot]:
    """One PNG per metric: x = NFE, y = value, one line per model family (per suite when several), error bars from
    the 95% interval where the row has one. Rows without an NFE (some published rows) are left out."""
    if not rows:
        return []
    frame, meta = numeric_frame(rows), numeric_metadata(rows)
    frame = frame[frame["nfe"].notna()]
    if frame.empty:
        return []
    frame = frame.assign(_series=_series_labels(frame))
    plots = []
    for name, info in meta["metrics"].items():
        data = frame[frame[name].notna()]
        if data.empty:
            continue
        groups = list(data.groupby("_series", sort=True))
        fig = _figure(5.8, max(3.6, 1.2 + 0.2 * len(groups)))
        ax = fig.add_subplot()
        colours = [f"C{i}" for i in range(10)] if len(groups) <= 10 else None
        for i, (series, group) in enumerate(groups):
            group = group.sort_values("nfe")
            x, y = group["nfe"].astype(float).to_numpy(), group[name].to_numpy()
            lo, hi = group[f"{name}_ci_lo"].to_numpy(), group[f"{name}_ci_hi"].to_numpy()
            err = [[0.0 if math.isnan(a) else max(0.0, v - a) for v, a in zip(y, lo)],
                   [0.0 if math.isnan(b) else max(0.0, b - v) for v, b in zip(y, hi)]]
            colour = colours[i] if colours else _cmap(i / max(1, len(groups) - 1))
            ax.errorbar(x, y, yerr=err, marker=MARKERS[i % len(MARKERS)], capsize=4, linewidth=1.5, markersize=5,
                        label=series, color=colour)
        nfes = sorted({int(n) for n in data["nfe"]})
        if nfes and nfes[0] > 0 and nfes[-1] / nfes[0] >= 4:
            ax.set_xscale("log", base=2)
        ax.set_xticks(nfes, [str(n) for n in nfes])
        ax.minorticks_off()
        hib = info["higher_is_better"]
        arrow = " (↑ better)" if hib else " (↓ better)" if hib is False else ""
        ax.set_title(info["id"], fontsize=9)
        ax.set_xlabel("NFE")
        ax.set_ylabel(name + arrow)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        file = f"{prefix}nfe_{slug(name)}.png"
        fig.savefig(out_dir / file)
        methods = "; ".join(info["ci_methods"]) or "none recorded"
        plots.append(Plot(file, info["id"], f"bars: 95% intervals over prompts ({methods})"))
    return plots


def _cmap(x: float):
    from matplotlib import colormaps

    return colormaps["turbo"](0.05 + 0.9 * x)


SKIP_KEYS = {"step", "images_seen", "time"}


def curve_keys(records: list[dict]) -> list[str]:
    """The logged numbers of a training log, in first-seen order (step, images seen and wall time aside)."""
    keys: dict[str, None] = {}
    for rec in records:
        for k, v in rec.items():
            if k not in SKIP_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool):
                keys[k] = None
    return list(keys)


def training_plot(records: list[dict], name: str, out_dir: Path, prefix: str = "assets/") -> Plot | None:
    """One figure per training run: a small panel per logged loss / metric against the step (long runs: the raw
    values faint under their running mean)."""
    keys = curve_keys(records)
    if not keys:
        return None
    cols = min(4, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig = _figure(3.0 * cols, 2.2 * nrows)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(nrows, cols, i + 1)
        pts = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))
               and not isinstance(r.get(key), bool) and math.isfinite(r[key])]
        if len(pts) >= 100:  # noisy per-step losses: the raw trace faint, a running mean over ~2% of steps on top
            x, y = zip(*pts)
            ax.plot(x, y, linewidth=0.8, alpha=0.3, color="C0")
            ax.plot(x, pd.Series(y).rolling(max(2, len(y) // 50), min_periods=1).mean(), linewidth=1.4, color="C0")
        elif pts:
            ax.plot(*zip(*pts), linewidth=1.2, marker="." if len(pts) < 40 else None, color="C0")
        ax.set_title(key, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if i >= len(keys) - cols:
            ax.set_xlabel("step", fontsize=8)
    file = f"{prefix}train_{slug(name)}.png"
    fig.savefig(out_dir / file)
    return Plot(file, name, f"{len(records)} logged steps, {len(keys)} values")
