"""The runs a report shows: eval run dirs (``record.json``, ``per_sample.parquet``, ``samples/*.png``), folders holding
them, and training run dirs (``metrics.jsonl``, ``config.json``)."""
from __future__ import annotations

import gzip
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from addbench.errors import AddbenchError
from addbench.eval.records import read_record
from addbench.eval.tables import leaderboard_rows

FIXED_SAMPLE_COLUMNS = {"prompt_index", "seed", "prompt", "image", "category"}


@dataclass
class EvalRun:
    """A complete eval run: its record, and its per-sample table when the run dir still has one."""

    path: Path
    record: dict
    samples: pd.DataFrame | None

    @property
    def model(self) -> str:
        return str(self.record["model"]["name"])

    @property
    def family(self) -> str:
        """The model name before "@" (``toy@4step`` -> ``toy``): the leaderboard's model family."""
        return self.model.split("@")[0]

    @property
    def nfe(self) -> int:
        return int(self.record["model"].get("nfe") or 0)

    @property
    def suite(self) -> str:
        return str(self.record["suite"]["name"])

    @property
    def is_video(self) -> bool:
        return self.record.get("kind") == "video"

    def sample_metrics(self) -> list[str]:
        """Metric ids with one value per sample (or per prompt) in per_sample.parquet."""
        if self.samples is None:
            return []
        return [c for c in self.samples.columns if c not in FIXED_SAMPLE_COLUMNS
                and pd.api.types.is_numeric_dtype(self.samples[c]) and self.samples[c].notna().any()]

    def higher_is_better(self, metric_id: str) -> bool:
        return bool((self.record["metrics"].get(metric_id) or {}).get("higher_is_better", True))

    def image_path(self, prompt: str, seed: int) -> Path | None:
        """The PNG of (prompt text, seed), or None when the run has no such sample or the file is gone."""
        if self.samples is None or "image" not in self.samples:
            return None
        hit = self.samples[(self.samples["prompt"] == prompt) & (self.samples["seed"] == seed)]
        if hit.empty:
            return None
        path = self.path / str(hit["image"].iloc[0])
        return path if path.is_file() else None


@dataclass
class TrainRun:
    """A training run dir: the records of its ``metrics.jsonl`` (torn lines skipped, their numbers in ``bad``)."""

    path: Path
    records: list[dict]
    bad: list[int]
    config: dict | None = None

    @property
    def name(self) -> str:
        return self.path.name if self.path.is_dir() else self.path.name.split(".metrics.jsonl")[0]


@dataclass
class Collected:
    evals: list[EvalRun] = field(default_factory=list)
    trains: list[TrainRun] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)  # leaderboard rows (addbench.eval.tables)
    skipped: list[str] = field(default_factory=list)  # incomplete eval runs


def read_training_log(path: Path) -> tuple[list[dict], list[int]]:
    """``read_metrics`` of a ``metrics.jsonl`` (or a gzipped copy, as ``leaderboards/runs/train-logs`` keeps)."""
    from addbench.train.callbacks import read_metrics

    if path.suffix != ".gz":
        return read_metrics(path)
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "metrics.jsonl"
        plain.write_bytes(gzip.decompress(path.read_bytes()))
        return read_metrics(plain)


def _training_run(path: Path) -> TrainRun:
    log = path / "metrics.jsonl" if path.is_dir() else path
    records, bad = read_training_log(log)
    config = None
    if path.is_dir() and (path / "config.json").is_file():
        try:
            config = json.loads((path / "config.json").read_text())
        except (OSError, ValueError):
            config = None
    return TrainRun(path, records, bad, config)


def _is_training_log(path: Path) -> bool:
    return path.is_file() and (path.name.endswith((".jsonl", ".jsonl.gz")))


def _per_sample(run_dir: Path) -> pd.DataFrame | None:
    path = run_dir / "per_sample.parquet"
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise AddbenchError(f"{path} cannot be read ({type(exc).__name__}); re-run `addbench eval ... --repair` "
                            "there") from None


def collect(paths: list[str | Path], published: list[str] | None = None) -> Collected:
    """Every eval run (``**/record.json``) and training run (``**/metrics.jsonl``, or a ``*.metrics.jsonl[.gz]`` file)
    under ``paths``, plus the leaderboard rows of the complete eval runs (and of the ``published`` tables)."""
    records: list[Path] = []
    trains: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise AddbenchError(f"{raw}: no such run dir or file; give eval run dirs, folders of them or training "
                                "run dirs")
        if p.is_file():
            if p.name == "record.json":
                records.append(p)
            elif _is_training_log(p):
                trains.append(p)
            else:
                raise AddbenchError(f"{raw}: neither a record.json nor a metrics.jsonl; give run dirs")
            continue
        records += sorted(p.rglob("record.json"))
        trains += sorted(m.parent for m in p.rglob("metrics.jsonl"))
        trains += sorted(p.rglob("*.metrics.jsonl")) + sorted(p.rglob("*.metrics.jsonl.gz"))  # kept training logs
    records = list(dict.fromkeys(r.resolve() for r in records))
    trains = list(dict.fromkeys(t.resolve() for t in trains))
    if not records and not trains and not published:
        raise AddbenchError(f"nothing to report under {', '.join(map(str, paths))}: no record.json and no "
                            "metrics.jsonl")
    out = Collected(trains=[_training_run(t) for t in trains])
    if records or published:
        out.rows, out.skipped = leaderboard_rows([str(r) for r in records], published)
    for r in records:
        rec = read_record(r)
        if rec.get("complete"):
            out.evals.append(EvalRun(r.parent, rec, _per_sample(r.parent)))
    out.evals.sort(key=lambda e: (e.suite, e.family, e.nfe, e.model))
    return out
