"""The runs a study compares: eval run dirs (``record.json`` + ``per_sample.parquet``, addbench.eval.records).

A run's model label is ``record["model"]["name"]``; labels that repeat get ``-nfeN``, then the run dir's name.
The study compares the (prompt_index, seed) keys every run has.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from addbench.errors import AddbenchError

Key = tuple[int, int]  # (prompt_index, seed)


@dataclass(frozen=True)
class ArenaRun:
    path: Path  # the run dir, resolved
    model: str  # label shown on the results page and written to the export
    record: dict
    table: pd.DataFrame  # per_sample.parquet, indexed by (prompt_index, seed)

    def image_path(self, key: Key) -> Path:
        """The PNG of ``key`` (a key of this run's table; KeyError otherwise)."""
        return self.path / str(self.table.at[key, "image"])


def _read_run(run_dir: Path) -> tuple[dict, pd.DataFrame]:
    record_path, table_path = run_dir / "record.json", run_dir / "per_sample.parquet"
    if not record_path.is_file() or not table_path.is_file():
        raise AddbenchError(f"{run_dir} is not an eval run dir: it needs record.json and per_sample.parquet")
    try:
        record = json.loads(record_path.read_text())
    except json.JSONDecodeError as exc:
        raise AddbenchError(f"{record_path}: not JSON ({exc.msg})") from None
    table = pd.read_parquet(table_path)
    missing = {"prompt_index", "seed", "prompt", "image"} - set(table.columns)
    if missing:
        raise AddbenchError(f"{table_path} lacks column(s) {', '.join(sorted(missing))}")
    table = table.astype({"prompt_index": "int64", "seed": "int64"}).set_index(["prompt_index", "seed"], drop=False)
    if table.index.has_duplicates:
        raise AddbenchError(f"{table_path} repeats a (prompt_index, seed) row")
    return record, table


def _check_images(run_dir: Path, table: pd.DataFrame) -> None:
    """Every image is a file inside the run dir (a table naming ``../x`` or an absolute path is refused)."""
    for rel in table["image"]:
        path = (run_dir / str(rel)).resolve()
        if not path.is_relative_to(run_dir) or not path.is_file():
            raise AddbenchError(f"{run_dir}: image {rel!r} is not a file inside the run dir")


def _labels(records: list[dict], dirs: list[Path]) -> list[str]:
    names = [str((r.get("model") or {}).get("name") or d.name) for r, d in zip(records, dirs)]
    if len(set(names)) < len(names):
        names = [f"{n}-nfe{(r.get('model') or {}).get('nfe')}" if names.count(n) > 1 and (r.get("model") or {}).get("nfe")
                 else n for n, r in zip(names, records)]
    if len(set(names)) < len(names):
        names = [f"{n} ({d.name})" if names.count(n) > 1 else n for n, d in zip(names, dirs)]
    if len(set(names)) < len(names):
        raise AddbenchError(f"two runs share the label {max(names, key=names.count)!r}; give distinct run dirs")
    return names


def load_runs(run_dirs: list[str | Path]) -> list[ArenaRun]:
    """The runs, in the order given (their index is the run index of the study)."""
    if len(run_dirs) < 2:
        raise AddbenchError("an arena needs at least two run dirs")
    dirs = [Path(d).resolve() for d in run_dirs]
    if len(set(dirs)) < len(dirs):
        raise AddbenchError("a run dir is given twice")
    read = [_read_run(d) for d in dirs]
    for d, (_, table) in zip(dirs, read):
        _check_images(d, table)
    labels = _labels([r for r, _ in read], dirs)
    return [ArenaRun(d, m, rec, table) for d, m, (rec, table) in zip(dirs, labels, read)]


def shared_keys(runs: list[ArenaRun]) -> list[Key]:
    """The (prompt_index, seed) keys every run has, sorted."""
    keys = set.intersection(*({(int(p), int(s)) for p, s in r.table.index} for r in runs))
    if not keys:
        raise AddbenchError("the runs share no (prompt_index, seed) sample; evaluate them on one suite")
    return sorted(keys)


def prompt_of(runs: list[ArenaRun], key: Key) -> str:
    return str(runs[0].table.at[key, "prompt"])
