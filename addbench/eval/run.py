"""The run lifecycle that the image runner (``runner.py``) and the video runner (``video_runner.py``) share: the run
key, the run directory and its resume (a finished record is reused when valid, complete, of the same key and its
manifest verifies), generator loading with sampler overrides, the noise seed of a sample, and the progress bar.
``runner.evaluate`` dispatches a suite by its kind (``image`` or ``video``) to one of the two.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from addbench.bases.interface import Generator, Sampler
from addbench.errors import AddbenchError
from addbench.eval import manifest
from addbench.eval import records as rec
from addbench.prompts import PromptSet
from addbench.suites import Suite, canonical_dtype

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
          "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class EvalResult:
    """What an evaluation returns: its run directory and record (rank 0; others get {})."""
    run_dir: Path
    record: dict
    timing: dict = field(default_factory=dict)  # seconds per phase on this rank (also in the record's provenance)


def noise_seed(prompt_index: int, seed: int) -> int:
    """The initial-noise seed of sample (prompt ``prompt_index``, suite seed ``seed``): seed·10^6 + index."""
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


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@+-]+", "_", text).strip("_")[:60] or "model"


def generation_dtype(gen: Generator) -> str | None:
    """The dtype ``gen`` generates in (fp32 | bf16 | fp16, from ``describe()``); None when it does not say."""
    dtype = gen.describe().get("dtype")
    try:
        return canonical_dtype(dtype)
    except AddbenchError:
        return str(dtype)  # an unusual dtype (float64, ...) is still part of the key, as named


def run_key(gen: Generator, sampler: Sampler, suite: Suite, pset: PromptSet, limit: int | None) -> str:
    """sha256 over model hash, sampler, suite config, prompt set, limit and the generation dtype (the dtype the
    generator runs in, else the one the suite asks for): the same weights in bf16 and fp32 are two runs."""
    payload = json.dumps({"model": gen.model_hash, "sampler": sampler.to_dict(), "suite": suite.config_sha256,
                          "prompts": pset.sha256, "limit": limit,
                          "dtype": generation_dtype(gen) or suite.generation_dtype}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def check_generation_dtype(gen: Generator, suite: Suite) -> None:
    """A generator handed in already loaded must run in the dtype its suite fixes."""
    ran = generation_dtype(gen)
    if suite.generation_dtype and ran and ran != suite.generation_dtype:
        raise AddbenchError(f"{gen.name} generates in {ran} but suite {suite.name} generates in "
                            f"{suite.generation_dtype}; load it in {suite.generation_dtype} or pass "
                            f"dtype={ran!r} (--dtype {ran}: a run of its own, labelled in leaderboards)")


def default_run_dir(out_dir: Path, gen: Generator, sampler: Sampler, suite: Suite, key: str) -> Path:
    return Path(out_dir) / suite.name / f"{slug(gen.name)}-nfe{sampler.nfe}-{key[:8]}"


def resolve_run(run_dir, out_dir, gen: Generator, sampler: Sampler, suite: Suite, key: str, rescore: bool,
                finished_if=None, *, verify: str = "auto", repair: bool = False) -> tuple[Path, dict | None]:
    """The run directory (given, or derived from the run key) and its finished record, if one stands.

    A record counts as finished when it is valid (its format's schema), complete, has the same run key and passes
    `finished_if(record)` (the video runner adds its VBench options there); `rescore` never reuses one. A finished
    record's manifest is checked (:func:`check_manifest`); `repair` turns an invalid record or a damaged run into
    an unfinished one (the damaged files deleted) instead of an error."""
    rdir = Path(run_dir) if run_dir else default_run_dir(Path(out_dir), gen, sampler, suite, key)
    record_path = rdir / "record.json"
    if rescore or not record_path.exists():
        return rdir, None
    try:
        old = rec.load_record_file(record_path)
    except AddbenchError:
        if repair:  # generate what is missing and score again; the record is rewritten
            return rdir, None
        raise
    ok = old.get("complete") and old.get("run_key") == key and (finished_if is None or finished_if(old))
    if ok and "files" in old and not check_manifest(rdir, old["files"], verify, repair):
        return rdir, None
    return rdir, old if ok else None


def check_manifest(rdir: Path, files: dict, verify: str = "auto", repair: bool = False) -> bool:
    """True when ``rdir`` matches its record's manifest ``files``. Otherwise: an AddbenchError of one line, or
    with ``repair`` the damaged files deleted (so they are generated and the run scored again) and False."""
    report = manifest.verify(rdir, files, verify)
    if report.ok:
        return True
    if not repair:
        raise AddbenchError(f"{rdir} is a finished run that no longer matches its record: {report.summary()}; "
                            "re-run with --repair to regenerate those samples and rescore (or delete the run dir)")
    for relpath in report.damaged:
        (rdir / relpath).unlink(missing_ok=True)
    return False


def load_generator(model, device: str, dtype, overrides: dict) -> Generator:
    """``model`` as a Generator: passed through, or loaded (registered base, pipeline dir, hub id, checkpoint)."""
    if isinstance(model, Generator):
        return model
    try:
        from addbench.bases.loading import load_generator as load
    except ImportError as exc:
        raise AddbenchError(f"cannot load models: addbench.bases.loading is missing ({exc})") from None
    return load(str(model), device=device, dtype=DTYPES.get(dtype, dtype), sampler_overrides=overrides or None)


def progress(enabled: bool):
    """A rich progress bar on stderr (ETA), or a disabled one."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled)


def chunks(seq: list, n: int):
    """``seq`` in slices of ``n`` (at least 1)."""
    for i in range(0, len(seq), max(1, n)):
        yield seq[i:i + max(1, n)]
