"""Leaderboards: measured run records + published rows -> one pandas table -> Markdown, LaTeX or CSV.

Rows are model x NFE (x suite when several suites are shown); columns are metric ids with their direction
(↑ higher is better, ↓ lower is better). A Markdown / LaTeX cell reads "value [lo, hi]" (the 95% CI, over prompts);
"value ± h" only where the interval is symmetric about the value to the digits shown (``--ci pm``, the default;
``--ci interval`` always prints the interval). FID/KID intervals are asymmetric by design
(``addbench.metrics.intervals``), and records written before that change can hold an FID interval that excludes its
value: such a cell shows exactly that. Published rows come from ``leaderboards/published/*.yaml|csv``, carry their
``source`` and are marked "published" — they are never presented as measured.

CSV and parquet are numeric (:func:`numeric_frame`): columns ``model, nfe``, then per metric ``<name>`` (the value),
``<name>_ci_lo`` and ``<name>_ci_hi`` (empty where there is no interval), then ``suite, source, run``. ``<name>`` is
the metric's name without its convention (``toy_fid``; the sanitised full id where two ids share a name); no arrows,
no "±" strings. The full id, the direction and the CI methods of each column are in the metadata
(:func:`numeric_metadata`), which ``addbench leaderboard --out FILE`` writes beside the table as
``FILE``'s stem + ``.meta.json`` (and into a parquet file's schema metadata).

Published YAML::

    name: dmdx_table1
    source: "DMDX (Lu et al. 2025) Table 1 ..."
    suite: coco10k
    metrics: {clip: {id: "clip_score[...]", higher_is_better: true}, ...}
    rows: [{model: DMD2, steps: 1, nfe: 1, clip: 35.2153, ...}, ...]

Video runs (VBench: ``vbench[<dimension>,x100]``, ``vbench[total,x100]``, ...) are shown in a table of
their own, after the image table.

Published CSV: columns ``model, nfe, steps, suite, source`` and one column per metric id, optionally
suffixed " ↑" / " ↓" for the direction.

Latency results (``addbench latency --out F.json``, format ``addbench-latency/1``) are measured rows too: one per
(mode / fast variant, NFE), the end-to-end median in ``latency_s[<GPU>,<res>px,b<batch>]`` — the id the
published tables use (ADD Table 2: ``latency_s[A100,512px,b1]``), so a measured H200 number sits in a column of
its own beside them. Pass the file, or a folder: files named ``latency*.json`` are found there.
"""
from __future__ import annotations

import functools
import glob
import json
import math
import re
from pathlib import Path

import pandas as pd
import yaml

from addbench.errors import AddbenchError
from addbench.eval.records import LATENCY_FORMAT, read_record
from addbench.suites import canonical_dtype, load_suite

PUBLISHED_DIRS = (Path.cwd() / "leaderboards" / "published", Path(__file__).resolve().parents[2] / "leaderboards" / "published")
FORMATS = ("md", "latex", "csv", "parquet")
NUMERIC_FORMATS = ("csv", "parquet")
NUMERIC_FORMAT = "addbench-leaderboard/1"
FIXED_COLUMNS = ("model", "nfe", "suite", "source", "run")


def find_records(patterns: list[str]) -> list[Path]:
    """record.json (and latency*.json) files under the given run dirs / globs (searched recursively), complete or
    not; a file given by name is taken whatever its name (a latency result, say)."""
    found: list[Path] = []
    for pat in patterns:
        matches = [Path(m) for m in sorted(glob.glob(str(Path(pat).expanduser()), recursive=True))] or [Path(pat)]
        for m in matches:
            if m.is_file() and (m.name == "record.json" or m.suffix == ".json"):
                found.append(m)
            elif m.is_dir():
                found += sorted(m.rglob("record.json")) + sorted(m.rglob("latency*.json"))
            else:
                raise AddbenchError(f"{pat}: no run directory, record.json or latency result there")
    return list(dict.fromkeys(p.resolve() for p in found))


def _read_latency(path: Path) -> dict | None:
    """The latency result at ``path``, or None when the file is an eval record."""
    if path.name == "record.json":
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AddbenchError(f"{path}: not a readable JSON file ({exc}); pass run dirs, record.json or "
                            "`addbench latency --out` files") from None
    if not isinstance(data, dict) or data.get("format") != LATENCY_FORMAT:
        raise AddbenchError(f"{path} is neither a run record nor a latency result (format "
                            f"{data.get('format') if isinstance(data, dict) else None!r}); pass run dirs, record.json "
                            "or `addbench latency --out` files")
    return data


def latency_rows(data: dict, path: Path) -> list[dict]:
    """One measured row per latency record: end-to-end median (s) in ``latency_s[<GPU>,<res>px,b<batch>]``."""
    device = str(data.get("device", "?")).removeprefix("NVIDIA ").strip()
    mid = f"latency_s[{device},{data['res']}px,b{data['batch']}]"
    model = str(data["model"]) + (" (random weights)" if data.get("random_weights") else "")
    rows = []
    for r in data["records"]:
        e2e = r["parts"]["end_to_end"]["median_ms"] / 1e3
        rows.append({"model": f"{model} [{r['variant']}]", "nfe": r["nfe"],
                     "suite": f"latency {data['res']}px b{data['batch']} {data.get('dtype', '')} CFG {r.get('cfg', '?')}",
                     "source": "measured", "run": str(path),
                     "metrics": {mid: {"value": e2e, "ci95": None, "higher_is_better": False}}})
    return rows


def shown_interval(entry: dict) -> list[float] | None:
    """The interval a table may print beside a record entry's value, or None. A set-level entry (FID, KID) written
    before records said how the interval was made (no ``ci``) holds a percentile bootstrap of a biased statistic,
    which sits above its estimate and is no confidence interval (issue 17): it is dropped, the value kept. So is any
    interval that does not contain its estimate, whatever made it."""
    ci = entry.get("ci95")
    if not ci or (entry.get("ci") is None and entry.get("per") == "set"):
        return None
    lo, hi = ci
    return ci if lo is not None and hi is not None and lo <= entry["value"] <= hi else None


def measured_rows(record_paths: list[Path]) -> tuple[list[dict], list[str]]:
    """(rows, skipped) from complete records; incomplete ones are listed in ``skipped``."""
    rows, skipped = [], []
    for path in record_paths:
        latency = _read_latency(path)
        if latency is not None:
            if latency.get("complete") is False:  # (results written before the key existed are whole)
                skipped.append(str(path))
            else:
                rows += latency_rows(latency, path)
            continue
        rec = read_record(path)
        if not rec.get("complete"):
            skipped.append(str(path.parent))
            continue
        limit = rec["suite"].get("limit")
        off_suite = _precision_label(rec["suite"]) + _dtype_label(rec)  # run off its suite's conventions
        row = {"model": rec["model"]["name"], "nfe": rec["model"]["nfe"], "suite": rec["suite"]["name"]
               + (f" (first {limit})" if limit else "") + off_suite, "source": "measured",
               "run": str(path.parent), "metrics": {}, "off_suite": bool(off_suite)}
        for mid, m in rec["metrics"].items():
            row["metrics"][mid] = {"value": m["value"], "ci95": shown_interval(m), "ci": m.get("ci"),
                                   "higher_is_better": m["higher_is_better"]}
        rows.append(row)
    return rows, skipped


def published_files() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for d in PUBLISHED_DIRS:
        for p in sorted(d.glob("*.yaml")) + sorted(d.glob("*.csv")) if d.is_dir() else []:
            out.setdefault(p.stem, p)
    return out


def _published_yaml(path: Path) -> list[dict]:
    try:
        data = yaml.load(path.read_text(), Loader=yaml.BaseLoader)  # scalars stay strings: shown exactly as published
        metrics, source = data["metrics"], data["source"]
        rows = []
        for r in data["rows"]:
            vals = {spec["id"]: {"value": float(r[key]), "text": r[key], "ci95": None,
                                 "higher_is_better": {"true": True, "false": False}.get(spec.get("higher_is_better"))}
                    for key, spec in metrics.items() if r.get(key) not in (None, "", "null")}
            rows.append({"model": r["model"], "nfe": int(r["nfe"]) if r.get("nfe") else None, "suite": data.get("suite", ""),
                         "source": f"published: {source}", "run": "", "metrics": vals})
        return rows
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise AddbenchError(f"published table {path} is malformed ({type(exc).__name__}: {exc}); "
                            "see addbench/eval/tables.py for the format") from None


def _published_csv(path: Path) -> list[dict]:
    df = pd.read_csv(path)
    if "model" not in df or "source" not in df:
        raise AddbenchError(f"published table {path} needs columns 'model' and 'source'")
    fixed = {"model", "nfe", "steps", "suite", "source"}
    rows = []
    for _, r in df.iterrows():
        vals = {}
        for col in df.columns:
            if col in fixed or pd.isna(r[col]):
                continue
            mid, hib = col, None
            if col.endswith((" ↑", " ↓")):
                mid, hib = col[:-2], col.endswith("↑")
            vals[mid] = {"value": float(r[col]), "text": str(r[col]), "ci95": None, "higher_is_better": hib}
        rows.append({"model": r["model"], "nfe": None if pd.isna(r.get("nfe")) else int(r["nfe"]),
                     "suite": r.get("suite", ""), "source": f"published: {r['source']}", "run": "", "metrics": vals})
    return rows


def published_rows(names: list[str]) -> list[dict]:
    files = published_files()
    if names == ["all"]:
        names = list(files)
    rows = []
    for name in names:
        path = Path(name) if Path(name).is_file() else files.get(name)
        if path is None:
            raise AddbenchError(f"unknown published table {name!r}; known: {', '.join(files) or 'none'} "
                                "(leaderboards/published/)")
        rows += _published_yaml(path) if path.suffix == ".yaml" else _published_csv(path)
    return rows


def _vbench_rank(mid: str) -> int:
    """VBench columns in VBench's order: total, quality, semantic, then the 16 dimensions."""
    from addbench.video.scores import DIMENSIONS

    order = ["total", "quality", "semantic", *DIMENSIONS]
    m = re.match(r"vbench\[(\w+)", mid)
    return order.index(m.group(1)) if m and m.group(1) in order else -1


def _precision_label(suite: dict) -> str:
    """" (fp32 metrics)" when the run scored off its registered suite's metric precision (``--metric-precision``)."""
    ran = suite.get("metric_precision")
    own = None if ran is None else _registered_precision(suite["name"])
    return f" ({ran} metrics)" if own is not None and ran != own else ""


_UNREGISTERED = object()


def _dtype_label(rec: dict) -> str:
    """" (bf16 generation)" when the run generated in another dtype than its registered suite fixes (``--dtype``).

    The dtype is the one the model ran in (``record["model"]["dtype"]``), else the one the suite asked for. A suite
    that fixes no dtype (coco: the model's default) labels only runs given an explicit ``--dtype``
    (``record["suite"]["generation_dtype"]``). Records written before the field existed show their recorded model
    dtype against a suite that fixes one (the toy suites' bf16 GPU runs); otherwise nothing: unknown."""
    suite, model = rec.get("suite") or {}, rec.get("model") or {}
    own = _registered_dtype(str(suite.get("name")))
    if own is _UNREGISTERED:
        return ""
    try:
        ran = canonical_dtype(model.get("dtype")) or canonical_dtype(suite.get("generation_dtype"))
        asked = canonical_dtype(suite.get("generation_dtype"))
    except AddbenchError:  # a dtype this version does not know: show it as recorded
        ran = asked = str(model.get("dtype") or suite.get("generation_dtype"))
    if own is None:
        return f" ({asked} generation)" if asked else ""
    return f" ({ran} generation)" if ran and ran != own else ""


@functools.lru_cache(maxsize=None)
def _registered_dtype(name: str):
    """The registered suite's generation dtype (None: it fixes none), read once per leaderboard process."""
    try:
        return load_suite(name).generation_dtype
    except AddbenchError:  # not registered: nothing to compare with
        return _UNREGISTERED


@functools.lru_cache(maxsize=None)
def _registered_precision(name: str) -> str | None:
    """The registered suite's metric precision, read once per leaderboard process (None: not registered)."""
    try:
        return load_suite(name).metric_precision
    except AddbenchError:  # a suite file of the user's that is not registered: nothing to compare with
        return None


def leaderboard_frame(rows: list[dict], ci: str = "pm", digits: int = 4) -> pd.DataFrame:
    """One row per (model, NFE, suite, source); formatted metric cells; ``source`` says measured/published."""
    if not rows:
        raise AddbenchError("nothing to show: no complete run records and no published tables selected")
    direction: dict[str, bool | None] = {}
    for r in rows:
        for mid, m in r["metrics"].items():
            if direction.get(mid) is None:
                direction[mid] = m["higher_is_better"]
    # the suite column shows when rows come from several suites, or when a row ran off its suite's conventions
    # ("(fp32 metrics)", "(bf16 generation)"): such a label is never hidden
    multi_suite = len({r["suite"] for r in rows}) > 1 or any(r.get("off_suite") for r in rows)
    ordered = sorted(direction.items(), key=lambda kv: _vbench_rank(kv[0]))  # stable: other ids keep their order
    columns = {mid: f"{mid} {'↑' if hib else '↓' if hib is False else ''}".strip() for mid, hib in ordered}
    out = []
    for r in rows:
        row = {"model": r["model"], "NFE": r["nfe"]}
        if multi_suite:
            row["suite"] = r["suite"]
        for mid, col in columns.items():
            m = r["metrics"].get(mid)
            row[col] = "" if m is None else m.get("text") or _cell(m["value"], m["ci95"], ci, digits)
        row["source"] = r["source"]
        out.append(row)
    return _sorted(pd.DataFrame(out), "NFE", multi_suite)


def _sorted(df: pd.DataFrame, nfe: str, by_suite: bool) -> pd.DataFrame:
    """Measured rows first, then by (suite,) model family and NFE."""
    df = df.copy()
    df["_pub"] = df["source"] != "measured"
    df["_family"] = df["model"].map(lambda m: str(m).split("@")[0])  # toy@1step, toy@25step: one model, by NFE
    keys = ["suite", "_family", nfe] if by_suite else ["_family", nfe]
    return df.sort_values(["_pub", *keys], key=lambda s: s.map(str) if s.name != nfe else s.fillna(-1),
                          kind="stable").drop(columns=["_pub", "_family"]).reset_index(drop=True)


def plain_names(ids: list[str]) -> dict[str, str]:
    """Metric id -> column name: the name before the convention (``toy_fid[...]`` -> ``toy_fid``); where two ids share
    that name, the whole id; either with every run of characters other than letters, digits and "_" turned into "_".
    A name still taken (a fixed column's, another metric's) gets "_metric" (then "_metric3", ...) appended."""
    def clean(text: str) -> str:
        return re.sub(r"[^0-9A-Za-z_]+", "_", text).strip("_")

    short = {mid: clean(mid.split("[")[0]) or clean(mid) or "metric" for mid in ids}
    counts: dict[str, int] = {}
    for name in short.values():
        counts[name] = counts.get(name, 0) + 1
    out: dict[str, str] = {}
    for mid, name in short.items():
        if counts[name] > 1 or name in FIXED_COLUMNS or name.endswith(("_ci_lo", "_ci_hi")):
            name = clean(mid) or "metric"
        base, k = name, 1
        while name in out.values() or name in FIXED_COLUMNS or name.endswith(("_ci_lo", "_ci_hi")):
            k += 1
            name = f"{base}_metric" if k == 2 else f"{base}_metric{k}"
        out[mid] = name
    return out


def _metric_ids(rows: list[dict]) -> list[str]:
    """Metric ids of the rows in first-seen order (VBench's in VBench's order), as ``leaderboard_frame`` orders them."""
    ids: dict[str, None] = {}
    for r in rows:
        ids.update(dict.fromkeys(r["metrics"]))
    return sorted(ids, key=_vbench_rank)


def numeric_frame(rows: list[dict]) -> pd.DataFrame:
    """One row per (model, NFE, suite, source), numbers only: ``model, nfe``, then ``<name>, <name>_ci_lo,
    <name>_ci_hi`` per metric (NaN where absent), then ``suite, source, run`` (module docstring)."""
    if not rows:
        raise AddbenchError("nothing to show: no complete run records and no published tables selected")
    names = plain_names(_metric_ids(rows))
    out = []
    for r in rows:
        row = {"model": r["model"], "nfe": r["nfe"]}
        for mid, name in names.items():
            m = r["metrics"].get(mid)
            ci = (m or {}).get("ci95") or [None, None]
            row[name] = None if m is None else float(m["value"])
            row[f"{name}_ci_lo"], row[f"{name}_ci_hi"] = (None if v is None else float(v) for v in ci)
        row.update(suite=r["suite"], source=r["source"], run=r.get("run", ""))
        out.append(row)
    df = _sorted(pd.DataFrame(out), "nfe", True)
    df["nfe"] = df["nfe"].astype("Int64")
    value_cols = [c for c in df.columns if c not in FIXED_COLUMNS]
    df[value_cols] = df[value_cols].astype("float64")
    return df


def numeric_metadata(rows: list[dict], skipped: list[str] | None = None) -> dict:
    """Per value column of :func:`numeric_frame`: the full metric id, ``higher_is_better`` (None: not stated) and the
    CI methods of its rows that have an interval (``"unrecorded"``: a record written before ``ci`` was stored: a
    percentile interval of 1,000 draws; such records' FID/KID intervals are not shown at all, :func:`shown_interval`),
    ``[]`` when none has one."""
    names = plain_names(_metric_ids(rows))
    meta: dict = {}
    for mid, name in names.items():
        hib, methods = None, set()
        for r in rows:
            m = r["metrics"].get(mid)
            if m is None:
                continue
            hib = m["higher_is_better"] if hib is None else hib
            if m.get("ci95"):
                ci = m.get("ci")
                methods.add(f"{ci['method']} ({ci['draws']} draws, level {ci['level']}, per {ci['unit']})"
                            if ci else "unrecorded")
        meta[name] = {"id": mid, "higher_is_better": hib, "ci_lo": f"{name}_ci_lo", "ci_hi": f"{name}_ci_hi",
                      "ci_methods": sorted(methods)}
    return {"format": NUMERIC_FORMAT, "columns": ["model", "nfe", *(c for n in names.values()
                                                                    for c in (n, f"{n}_ci_lo", f"{n}_ci_hi")),
                                                  "suite", "source", "run"],
            "metrics": meta, "skipped": list(skipped or [])}


def _fmt(x: float, digits: int) -> str:
    """``digits`` significant digits, no exponent for ordinary magnitudes."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    return f"{x:.{max(0, digits - 1 - int(math.floor(math.log10(abs(x)))))}f}"


def _cell(value: float, ci, mode: str, digits: int) -> str:
    """Measured cell: with a CI, "value [lo, hi]" to the decimals that give the half-width 2 significant digits;
    in ``pm`` mode "value ± h" instead when both arms round to the same h (never for an asymmetric interval)."""
    if not ci or not all(math.isfinite(x) for x in ci) or ci[1] <= ci[0]:
        return _fmt(value, digits)
    lo, hi = ci
    half = (hi - lo) / 2
    dec = max(0, 1 - int(math.floor(math.log10(half))))
    up, down = f"{hi - value:.{dec}f}", f"{value - lo:.{dec}f}"
    if mode == "pm" and up == down and not up.startswith("-"):  # symmetric about the value to the digits shown
        return f"{value:.{dec}f} ± {up}"
    return f"{value:.{dec}f} [{lo:.{dec}f}, {hi:.{dec}f}]"


def _markdown(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    cells = [["" if (isinstance(v, float) and math.isnan(v)) or v is None else str(v) for v in row]
             for row in df.itertuples(index=False)]
    esc = [[c.replace("|", "\\|") for c in row] for row in [cols] + cells]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return "\n".join(lines) + "\n"


def _latex(df: pd.DataFrame) -> str:
    def tex(s) -> str:
        s = "" if s is None or (isinstance(s, float) and math.isnan(s)) else str(s)
        for a, b in (("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
            s = s.replace(a, b)
        return s.replace("±", r"$\pm$").replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$")
    cols = list(df.columns)
    lines = [r"\begin{tabular}{" + "l" * len(cols) + "}", r"\toprule",
             " & ".join(tex(c) for c in cols) + r" \\", r"\midrule"]
    lines += [" & ".join(tex(v) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def make_table(df: pd.DataFrame, fmt: str = "md") -> str:
    """Text of a frame: Markdown, LaTeX, or CSV (of whatever the frame holds: ``leaderboard`` passes the numeric one)."""
    if fmt not in FORMATS:
        raise AddbenchError(f"unknown table format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        raise AddbenchError("parquet is binary: write it with `addbench leaderboard --format parquet --out FILE`")
    if fmt == "csv":
        return df.to_csv(index=False)
    return _markdown(df) if fmt == "md" else _latex(df)


def is_video(row: dict) -> bool:
    """Video rows (VBench scores) get their own table: they share no metric with image rows."""
    return bool(row["metrics"]) and all(mid.startswith("vbench[") for mid in row["metrics"])


def leaderboard_rows(paths: list[str], published: list[str] | None = None) -> tuple[list[dict], list[str]]:
    """(rows, skipped incomplete run dirs) of the measured records under ``paths`` and the named published tables."""
    rows, skipped = measured_rows(find_records(paths)) if paths else ([], [])
    rows += published_rows(published) if published else []
    return rows, skipped


def leaderboard(paths: list[str], published: list[str] | None = None, fmt: str = "md", ci: str = "pm") -> tuple[str, list[str]]:
    """(table text, skipped incomplete run dirs). md / latex: an image table and/or a video table (blank line
    between); csv: one numeric table of every row (:func:`numeric_frame`; its metadata: :func:`numeric_metadata`)."""
    if fmt not in FORMATS:
        raise AddbenchError(f"unknown table format {fmt!r}; use one of {', '.join(FORMATS)}")
    rows, skipped = leaderboard_rows(paths, published)
    if fmt in NUMERIC_FORMATS:
        return make_table(numeric_frame(rows), fmt), skipped
    groups = [g for g in ([r for r in rows if not is_video(r)], [r for r in rows if is_video(r)]) if g] or [rows]
    return "\n".join(make_table(leaderboard_frame(g, ci=ci), fmt) for g in groups), skipped


def write_numeric(paths: list[str], published: list[str] | None, out: Path, fmt: str) -> tuple[Path, Path, list[str]]:
    """Write the numeric leaderboard to ``out`` (csv or parquet) and its metadata to ``<out stem>.meta.json``
    (for parquet also into the file's schema metadata, key ``addbench``). Returns (table, metadata, skipped)."""
    if fmt not in NUMERIC_FORMATS:
        raise AddbenchError(f"write_numeric writes {' or '.join(NUMERIC_FORMATS)}, not {fmt!r}")
    rows, skipped = leaderboard_rows(paths, published)
    df, meta = numeric_frame(rows), numeric_metadata(rows, skipped)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        out.write_text(df.to_csv(index=False))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(df, preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"addbench": json.dumps(meta).encode()})
        pq.write_table(table, out)
    side = out.with_name(out.stem + ".meta.json")
    side.write_text(json.dumps(meta, indent=2) + "\n")
    return out, side, skipped
