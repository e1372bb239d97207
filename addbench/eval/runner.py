"""generate -> write each sample once (PNG + provenance) -> score with the suite's metrics -> record.

Run it again to resume: samples already on disk are skipped (PNG writes are atomic), scoring re-reads every
PNG, so a killed run ends with exactly the per-sample results of an uninterrupted one. Under torchrun the
prompts are split by prompt index (all seeds of a prompt on one rank); metric states meet in
``Metric.sync()`` and rank 0 writes the record.

Noise: the sample for (prompt index i, suite seed s) is generated with seed ``s * 1_000_000 + i``, so
prompts do not share their noise and every sample is reproducible alone (``noise_seed`` in the PNG chunk).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from addbench.bases.interface import Generator, Sampler
from addbench.errors import AddbenchError
from addbench.eval import records as rec
from addbench.eval.distributed import Dist, all_ok, distributed
from addbench.eval.provenance import environment
from addbench.eval.samples import clean_tmp, read_png, resize, sample_name, write_png
from addbench.prompts import PromptSet, load_prompts
from addbench.registry import METRICS
from addbench.suites import Suite, load_suite, suite_hash

CRASH_ENV = "ADDBENCH_TEST_CRASH_AFTER"  # test hook: raise after this many samples were written by this process
DTYPES = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
          "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class EvalResult:
    run_dir: Path
    record: dict


def noise_seed(prompt_index: int, seed: int) -> int:
    return seed * 1_000_000 + prompt_index


def apply_sampler_overrides(sampler: Sampler, overrides: dict | None) -> Sampler:
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(overrides) - set(Sampler.__dataclass_fields__))
    if unknown:
        raise AddbenchError(f"unknown sampler field(s) {', '.join(unknown)}; known: {', '.join(Sampler.__dataclass_fields__)}")
    if "steps" in overrides and "timesteps" not in overrides:
        overrides["timesteps"] = None  # an explicit step count replaces the checkpoint's timestep list
    if overrides.get("timesteps") is not None:
        overrides["timesteps"] = tuple(float(t) for t in overrides["timesteps"])
    return dataclasses.replace(sampler, **overrides)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@+-]+", "_", text).strip("_")[:60] or "model"


def run_key(gen: Generator, sampler: Sampler, suite: Suite, pset: PromptSet, limit: int | None) -> str:
    payload = json.dumps({"model": gen.model_hash, "sampler": sampler.to_dict(), "suite": suite.config_sha256,
                          "prompts": pset.sha256, "limit": limit}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def default_run_dir(out_dir: Path, gen: Generator, sampler: Sampler, suite: Suite, key: str) -> Path:
    return Path(out_dir) / suite.name / f"{_slug(gen.name)}-nfe{sampler.nfe}-{key[:8]}"


def _load_generator(model, device: str, dtype, overrides: dict) -> Generator:
    if isinstance(model, Generator):
        return model
    try:
        from addbench.bases.loading import load_generator
    except ImportError as exc:
        raise AddbenchError(f"cannot load models: addbench.bases.loading is missing ({exc})") from None
    return load_generator(str(model), device=device, dtype=DTYPES.get(dtype, dtype), sampler_overrides=overrides or None)


def _expand(value, metric: str):
    """``$VAR`` and ``~`` in string kwargs (local data paths such as FID reference folders)."""
    if not isinstance(value, str) or not ("$" in value or value.startswith("~")):
        return value
    out = os.path.expandvars(os.path.expanduser(value))
    if "$" in out:
        var = re.search(r"\$\{?(\w+)", out).group(1)
        raise AddbenchError(f"metric {metric}: {value!r} needs the environment variable {var}; set it "
                            f"(e.g. export {var}=/data) or override with --metric {metric}.KEY=VALUE")
    return out


def metric_kwargs(suite: Suite, overrides: dict | None = None) -> list[dict]:
    """Constructor kwargs of each suite metric: suite YAML, then ``{metric name: {key: value}}`` overrides."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - {m.name for m in suite.metrics})
    if unknown:
        raise AddbenchError(f"--metric names {', '.join(unknown)}, not in suite {suite.name} "
                            f"({', '.join(m.name for m in suite.metrics)})")
    return [{k: _expand(v, m.name) for k, v in {**m.kwargs, **overrides.get(m.name, {})}.items()} for m in suite.metrics]


def _make_metrics(suite: Suite, device: str, overrides: dict | None = None) -> list:
    out = []
    for spec, kwargs in zip(suite.metrics, metric_kwargs(suite, overrides)):
        cls = METRICS.get(spec.name)
        try:
            out.append(cls(device=device, **kwargs))
        except TypeError as exc:
            raise AddbenchError(f"suite {suite.name}: metric {spec.name!r} rejects its kwargs {kwargs}: {exc}") from None
    return out


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled)


def _chunks(seq: list, n: int):
    for i in range(0, len(seq), max(1, n)):
        yield seq[i:i + max(1, n)]


def _prepare_run_dir(d: Dist, run_dir: Path, config: dict) -> None:
    ok, msg = True, ""
    if d.is_main:
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        clean_tmp(run_dir / "samples")
        cfg_path = run_dir / "config.json"
        if cfg_path.exists():
            old = json.loads(cfg_path.read_text())
            if old.get("run_key") != config["run_key"]:
                ok, msg = False, (f"{run_dir} holds a run of another model/sampler/suite (run_key "
                                  f"{old.get('run_key', '?')[:8]} != {config['run_key'][:8]}); use another --out")
        if ok:
            rec.atomic_write_json(cfg_path, config)
    if not all_ok(ok, d):
        raise AddbenchError(msg or f"{run_dir}: rank 0 refused the run directory")
    d.barrier()


def evaluate(model: str | Generator, suite: str | Suite, out_dir: str | Path = "runs", device: str = "cpu",
             batch_size: int | None = None, sampler_overrides: dict | None = None, *, dtype: str | None = None,
             limit: int | None = None, run_dir: str | Path | None = None, metrics_device: str | None = None,
             progress: bool = True, rescore: bool = False, n_boot: int = 1000,
             metric_overrides: dict | None = None) -> EvalResult:
    """Evaluate ``model`` on ``suite``; returns the run directory and its record (rank 0; others get {})."""
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    if suite.kind == "video":  # VBench-style suites: mp4 files, scored in the VBench env
        from addbench.video.runner import evaluate_video
        return evaluate_video(model, suite, out_dir, device, batch_size, sampler_overrides, dtype=dtype, limit=limit,
                              run_dir=run_dir, progress=progress, rescore=rescore, metric_overrides=metric_overrides)
    pset = load_prompts(suite)
    n_prompts = len(pset) if limit is None else min(limit, len(pset))
    overrides = {**suite.sampler, **{k: v for k, v in (sampler_overrides or {}).items() if v is not None}}
    with distributed(device) as d:
        metrics = _make_metrics(suite, metrics_device or d.device, metric_overrides)  # fail fast, before generating anything
        gen = _load_generator(model, d.device, dtype, overrides)
        # default: the generator's own micro-batch, so no call is padded (results never depend on it)
        batch_size = batch_size or getattr(gen, "effective_micro_batch", None) or 8
        sampler = apply_sampler_overrides(gen.sampler, overrides)
        key = run_key(gen, sampler, suite, pset, limit)
        rdir = Path(run_dir) if run_dir else default_run_dir(Path(out_dir), gen, sampler, suite, key)
        record_path = rdir / "record.json"
        if not rescore and record_path.exists():
            old = json.loads(record_path.read_text())
            if old.get("complete") and old.get("run_key") == key:
                return EvalResult(rdir, old if d.is_main else {})
        config = {"run_key": key, "model": str(model) if not isinstance(model, Generator) else gen.name,
                  "generator": gen.describe(), "sampler": sampler.to_dict(), "nfe": sampler.nfe,
                  "suite": suite.name, "suite_version": suite.version, "suite_config_sha256": suite.config_sha256,
                  "prompt_sha256": pset.sha256, "limit": limit, "batch_size": batch_size, "device": device,
                  "dtype": dtype, "suite_config": suite.to_dict()}
        _prepare_run_dir(d, rdir, config)
        samples_dir = rdir / "samples"
        mine = d.shard(n_prompts)
        prompts = pset.prompts
        prov = {"model": gen.name, "model_hash": gen.model_hash, "sampler": sampler.to_dict(),
                "suite": suite.name, "suite_config_sha256": suite.config_sha256}

        # ---- generate what is missing -------------------------------------------------------------
        todo = [(i, s) for i in mine for s in suite.seeds if not (samples_dir / sample_name(i, s)).exists()]
        crash_after = int(os.environ.get(CRASH_ENV, "0") or 0)
        written = 0
        n_mine = len(mine) * len(suite.seeds)
        with _progress(progress and d.is_main) as bar:
            task = bar.add_task(f"generate (rank {d.rank}/{d.world_size})", total=n_mine,
                                completed=n_mine - len(todo))
            for batch in _chunks(todo, batch_size):
                images = gen.generate([prompts[i] for i, _ in batch], [noise_seed(i, s) for i, s in batch], sampler)
                if images.shape[0] != len(batch):
                    raise AddbenchError(f"generator {gen.name} returned {images.shape[0]} images for {len(batch)} prompts")
                for (i, s), img in zip(batch, images.cpu()):
                    write_png(samples_dir / sample_name(i, s), img,
                              {**prov, "prompt": prompts[i], "prompt_index": i, "seed": s, "noise_seed": noise_seed(i, s)})
                    written += 1
                    if crash_after and written >= crash_after:
                        raise RuntimeError(f"{CRASH_ENV}={crash_after}: simulated crash after {written} samples")
                bar.advance(task, len(batch))

            # ---- score every sample of this rank, whole prompts per batch (grouped metrics) -----------
            if d.is_main:
                rec.atomic_write_json(record_path, {"format": rec.FORMAT, "complete": False, "run_key": key})
            task = bar.add_task(f"score (rank {d.rank}/{d.world_size})", total=n_mine)
            per_batch = max(1, batch_size // len(suite.seeds))
            for group in _chunks(mine, per_batch):
                keys = [(i, s) for i in group for s in suite.seeds]
                imgs = []
                for i, s in keys:
                    img, meta = read_png(samples_dir / sample_name(i, s))
                    if meta.get("model_hash") != gen.model_hash or meta.get("prompt") != prompts[i] \
                            or meta.get("noise_seed") != noise_seed(i, s):
                        raise AddbenchError(f"{samples_dir / sample_name(i, s)} was written by another model or prompt "
                                            f"set; delete {rdir} or use another --out")
                    imgs.append(img)
                batch_imgs = resize(torch.stack(imgs), suite.resolution)
                batch_prompts = [prompts[i] for i, _ in keys]
                for m in metrics:
                    m.update(batch_imgs, batch_prompts, keys)
                bar.advance(task, len(keys))
        for m in metrics:
            m.sync()
        record: dict = {}
        if d.is_main:
            record = _write_record(rdir, gen, sampler, suite, pset, n_prompts, limit, key, metrics, device,
                                   d.world_size, n_boot, metric_kwargs(suite, metric_overrides))
        d.barrier()
        return EvalResult(rdir, record)


def _write_record(rdir: Path, gen: Generator, sampler: Sampler, suite: Suite, pset: PromptSet, n_prompts: int,
                  limit: int | None, key: str, metrics: list, device: str, world_size: int, n_boot: int,
                  kwargs: list[dict]) -> dict:
    rows = [{"prompt_index": i, "seed": s, "prompt": pset.records[i]["prompt"],
             "image": f"samples/{sample_name(i, s)}", "category": pset.records[i].get("category")}
            for i in range(n_prompts) for s in suite.seeds]
    df = rec.per_sample_frame(rows, metrics)
    entries = {}
    for m, kw in zip(metrics, kwargs):
        entry = rec.metric_entry(m, kw, n_boot=n_boot)
        cats = rec.by_category(df, m.id)
        if cats:
            entry["by_category"] = cats
        entries[m.id] = entry
    if df["category"].isna().all():
        df = df.drop(columns=["category"])
    rec.write_per_sample(rdir / "per_sample.parquet", df)
    record = {
        "format": rec.FORMAT, "complete": True, "run_key": key,
        "model": {**gen.describe(), "sampler": sampler.to_dict(), "nfe": sampler.nfe},
        "suite": {"name": suite.name, "version": suite.version, "hash": suite_hash(suite, pset.sha256),
                  "config_sha256": suite.config_sha256, "prompt_set": pset.name, "prompt_sha256": pset.sha256,
                  "n_prompts": n_prompts, "seeds": list(suite.seeds), "noise_seed": "seed * 1000000 + prompt_index",
                  "resolution": suite.resolution, "limit": limit},
        "metrics": entries,
        "provenance": environment(device, world_size),
    }
    rec.atomic_write_json(rdir / "record.json", record)
    return record
