"""Evaluation suites: small YAML files in this folder, registered by file name (lm-evaluation-harness style).

A suite fixes *what* is measured: the prompt set (source file, selection rule, seed, hashes), the seeds
per prompt, the scoring resolution and the metrics with their constructor kwargs. Files whose name
starts with ``_`` hold shared defaults and are pulled in with ``include: _file.yaml`` (looked up beside the file, then in this folder; deep merge; the
including file wins; lists are replaced, not merged). ``load_suite`` also accepts a path to a YAML file.

Keys (after includes)::

    name: coco10k                  # must equal the file name (optional, defaults to it)
    version: 1                     # bump whenever a change alters numbers
    description: one line
    prompts:
      name: coco2014-val-10k       # prompt-set name = cache key under $ADDBENCH_CACHE/prompts/
      format: coco_captions        # coco_captions | parti_tsv | hpdv2_json | inline | text | python
      source: captions_val2014.json
      source_url: https://...      # where the user downloads the official file
      source_sha256: null          # enforced when set
      expected: {images: 40504, annotations: 202654}   # structural check of the source file
      selection: {rule: random_images, n: 10000, seed: 2024, caption: first}
      sha256: null                 # pin of the built prompt set (enforced when set)
      # inline: items: [...]; text: path (relative to the YAML); python: target "pkg.mod:fn" + kwargs
    seeds: [0]
    resolution: 512                # images are resized (PIL bicubic) to this before scoring; null = as generated
    sampler: {}                    # sampler fields the suite imposes (e.g. height/width); --steps etc. win
    reference: {}                  # reference data (FID stats) for the record
    metrics:
      - name: clip_score           # registered metric name (addbench.registry.METRICS)
        kwargs: {...}              # passed to Metric(device, **kwargs)
    kind: image                    # image (default) | video
    metric_precision: fp32         # fp32 (default) | tf32: fp32 matmuls of the metric networks on TF32 tensor cores
    generation_dtype: fp32         # fp32 | bf16 | fp16: the dtype the model generates in; unset = the model's
                                   # default (fp32 on the CPU, bf16 on a GPU). The toy suites fix fp32
    videos:                        # video suites only: how many videos per prompt, and their frame rate
      per_prompt: 5
      per_prompt_by_dimension: {temporal_flickering: 25}   # prompt category -> count (the largest wins)
      fps: 8

``metric_precision`` and ``generation_dtype`` are suite properties: ``addbench eval --metric-precision`` /
``--dtype`` may override them, which makes another suite configuration (:meth:`Suite.with_metric_precision`,
:meth:`Suite.with_generation_dtype`: a new config hash, so a run key of its own), recorded in record.json and
labelled by ``addbench leaderboard``.

Video suites (``kind: video``) are run by :mod:`addbench.eval.video_runner`; their one metric is ``vbench``.

The suite hash is sha256 over the canonical JSON of the resolved YAML (``config_sha256``) combined with
the prompt-set sha256 (:func:`suite_hash`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from addbench.errors import AddbenchError
from addbench.validate import SAFE_NAME, SAFE_NAME_RULE

SUITES_DIR = Path(__file__).parent
PROMPT_FORMATS = ("coco_captions", "parti_tsv", "hpdv2_json", "inline", "text", "python")
KINDS = ("image", "video")
METRIC_PRECISIONS = ("fp32", "tf32")  # addbench.metrics.base.matmul_precision
GENERATION_DTYPES = ("fp32", "bf16", "fp16")  # canonical names (suite YAML, records, leaderboard labels)
_DTYPE_ALIASES = {"fp32": "fp32", "float32": "fp32", "bf16": "bf16", "bfloat16": "bf16", "fp16": "fp16",
                  "float16": "fp16", "half": "fp16"}


def canonical_dtype(dtype) -> str | None:
    """``fp32`` / ``bf16`` / ``fp16`` for a dtype name or ``torch.dtype`` (``torch.float32``, ``"bfloat16"``, ...);
    None for None; an AddbenchError for anything else."""
    if dtype is None:
        return None
    name = str(dtype).removeprefix("torch.").lower()
    if name not in _DTYPE_ALIASES:
        raise AddbenchError(f"unknown dtype {dtype!r}; use one of {', '.join(GENERATION_DTYPES)}")
    return _DTYPE_ALIASES[name]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kwargs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "kwargs": dict(self.kwargs)}


@dataclass(frozen=True)
class PromptSpec:
    name: str
    format: str
    source: str | None = None
    source_url: str | None = None
    source_sha256: str | None = None
    expected: dict = field(default_factory=dict)
    selection: dict = field(default_factory=dict)
    sha256: str | None = None
    items: tuple[str, ...] | None = None  # format inline
    path: str | None = None  # format text (relative to the suite file)
    target: str | None = None  # format python: "package.module:function" returning list[str] or list[dict]
    kwargs: dict = field(default_factory=dict)
    base_dir: str = ""  # folder of the YAML that defined the prompts (for relative paths)

    @property
    def needs_build(self) -> bool:
        """Official-format prompt sets are built once from a downloaded file (`addbench prompts build`)."""
        return self.format in ("coco_captions", "parti_tsv", "hpdv2_json")


@dataclass(frozen=True)
class Suite:
    name: str
    version: int
    description: str
    prompts: PromptSpec
    seeds: tuple[int, ...]
    resolution: int | None
    metrics: tuple[MetricSpec, ...]
    sampler: dict = field(default_factory=dict)
    reference: dict = field(default_factory=dict)
    path: str = ""
    config_sha256: str = ""  # sha256 of the canonical JSON of the resolved YAML
    resolved: dict = field(default_factory=dict, compare=False, repr=False)
    kind: str = "image"  # image | video
    videos: dict = field(default_factory=dict)  # video suites: per_prompt, per_prompt_by_dimension, fps
    metric_precision: str = "fp32"  # fp32 | tf32 (addbench.metrics.base.matmul_precision)
    generation_dtype: str | None = None  # fp32 | bf16 | fp16; None: the model's default (fp32 CPU, bf16 GPU)

    def to_dict(self) -> dict:
        return dict(self.resolved)

    def with_generation_dtype(self, dtype) -> "Suite":
        """The same suite generating in another dtype (``--dtype``): a new config hash, so a new run key, and the
        leaderboard labels the row when it differs from the registered suite's. Asking for the suite's own dtype
        changes nothing."""
        dtype = canonical_dtype(dtype)
        if dtype is None or dtype == self.generation_dtype:
            return self
        resolved = {**self.resolved, "generation_dtype": dtype}
        return replace(self, generation_dtype=dtype, resolved=resolved,
                       config_sha256=hashlib.sha256(_canonical(resolved)).hexdigest())

    def with_metric_precision(self, precision: str) -> "Suite":
        """The same suite under another metric precision (a new config hash, so a new run key)."""
        if precision not in METRIC_PRECISIONS:
            raise AddbenchError(f"metric precision {precision!r}; use one of {', '.join(METRIC_PRECISIONS)}")
        if precision == self.metric_precision:
            return self
        resolved = {**self.resolved, "metric_precision": precision}
        return replace(self, metric_precision=precision, resolved=resolved,
                       config_sha256=hashlib.sha256(_canonical(resolved)).hexdigest())


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def suite_hash(suite: Suite, prompt_sha256: str) -> str:
    """sha256 over the resolved suite configuration and the prompt set it ran on."""
    return hashlib.sha256(_canonical({"config": suite.config_sha256, "prompts": prompt_sha256})).hexdigest()


def _suite_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SUITES_DIR.glob("*.yaml")) if not p.stem.startswith("_")}


def list_suites() -> list[str]:
    return sorted(_suite_files())


def describe_suites() -> list[tuple[str, str]]:
    """(name, one-line description) for every registered suite; broken files say so instead of raising."""
    out = []
    for name in list_suites():
        try:
            s = load_suite(name)
            out.append((name, f"v{s.version}: {s.description}"))
        except AddbenchError as exc:
            out.append((name, f"(broken: {exc})"))
    return out


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise AddbenchError(f"suite file {path} is not UTF-8 text (byte {exc.start}); pass a suite YAML file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise AddbenchError(f"suite file {path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except OSError as exc:
        raise AddbenchError(f"cannot read suite file {path}: {exc.strerror}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise AddbenchError(f"suite file {path} must hold a mapping (key: value), got {type(data).__name__}")
    return data


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _resolve(path: Path, stack: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in stack:
        raise AddbenchError(f"suite include cycle: {' -> '.join(p.name for p in stack + (path,))}")
    data = _read_yaml(path)
    includes = data.pop("include", None)
    if includes is None:
        includes = []
    if isinstance(includes, str):
        includes = [includes]
    merged: dict = {}
    for inc in includes:
        inc_path = path.parent / inc
        if not inc_path.exists() and (SUITES_DIR / inc).exists():
            inc_path = SUITES_DIR / inc  # user suites may include the shipped defaults
        if not inc_path.exists():
            raise AddbenchError(f"suite file {path.name} includes {inc!r}, which does not exist in {path.parent}")
        merged = _merge(merged, _resolve(inc_path, stack + (path,)))
    if isinstance(data.get("prompts"), dict):  # remember where relative prompt paths are anchored
        data["prompts"] = {**data["prompts"], "_base_dir": str(path.parent)}
    return _merge(merged, data)


def _require(cond: bool, path: Path, msg: str) -> None:
    if not cond:
        raise AddbenchError(f"suite {path.name}: {msg}")


def _build(path: Path, data: dict) -> Suite:
    name = data.get("name", path.stem)
    _require(isinstance(name, str) and name, path, "'name' must be a non-empty string")
    _require(SAFE_NAME.fullmatch(name) is not None and ".." not in name, path,
             f"'name: {name}' must be a safe name ({SAFE_NAME_RULE}): it becomes the run folder OUT/NAME")
    if path.parent.resolve() == SUITES_DIR.resolve():
        _require(name == path.stem, path, f"'name: {name}' must equal the file name {path.stem!r}")
    version = data.get("version")
    _require(isinstance(version, int) and not isinstance(version, bool), path, "'version' must be an integer")
    p = data.get("prompts")
    _require(isinstance(p, dict), path, "'prompts' must be a mapping with at least 'name' and 'format'")
    fmt = p.get("format")
    _require(fmt in PROMPT_FORMATS, path, f"prompts.format must be one of {', '.join(PROMPT_FORMATS)}; got {fmt!r}")
    _require(isinstance(p.get("name"), str), path, "prompts.name must be a string (the prompt-set name)")
    _require(SAFE_NAME.fullmatch(p["name"]) is not None and ".." not in p["name"], path,
             f"prompts.name {p['name']!r} must be a safe name ({SAFE_NAME_RULE}): it becomes the cache file NAME.jsonl")
    if fmt == "inline":
        _require(isinstance(p.get("items"), list) and p["items"], path, "prompts.items must be a non-empty list")
    if fmt == "text":
        _require(isinstance(p.get("path"), str), path, "prompts.path must name a text file (one prompt a line)")
    if fmt == "python":
        _require(isinstance(p.get("target"), str) and ":" in p["target"], path,
                 "prompts.target must be 'package.module:function'")
    for key in ("source_sha256", "sha256"):
        v = p.get(key)
        _require(v is None or (isinstance(v, str) and len(v) == 64), path,
                 f"prompts.{key} must be null or a quoted 64-character hex string")
    spec = PromptSpec(
        name=p["name"], format=fmt, source=p.get("source"), source_url=p.get("source_url"),
        source_sha256=p.get("source_sha256"), expected=dict(p.get("expected") or {}),
        selection=dict(p.get("selection") or {}), sha256=p.get("sha256"),
        items=tuple(str(x) for x in p["items"]) if fmt == "inline" else None,
        path=p.get("path"), target=p.get("target"), kwargs=dict(p.get("kwargs") or {}),
        base_dir=p.get("_base_dir", str(path.parent)),
    )
    seeds = data.get("seeds", [0])
    _require(isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds), path,
             "'seeds' must be a non-empty list of integers")
    _require(len(set(seeds)) == len(seeds), path, "'seeds' must not repeat")
    res = data.get("resolution")
    _require(res is None or (isinstance(res, int) and res > 0), path, "'resolution' must be a positive integer or null")
    metrics = data.get("metrics")
    _require(isinstance(metrics, list) and metrics, path, "'metrics' must be a non-empty list")
    specs = []
    for m in metrics:
        if isinstance(m, str):
            m = {"name": m}
        _require(isinstance(m, dict) and isinstance(m.get("name"), str), path,
                 "each metric needs 'name' (and optional 'kwargs')")
        _require(isinstance(m.get("kwargs", {}) or {}, dict), path, f"metric {m['name']}: 'kwargs' must be a mapping")
        specs.append(MetricSpec(m["name"], dict(m.get("kwargs") or {})))
    kind = data.get("kind", "image")
    _require(kind in KINDS, path, f"'kind' must be one of {', '.join(KINDS)}; got {kind!r}")
    videos = data.get("videos") or {}
    _require(isinstance(videos, dict), path, "'videos' must be a mapping")
    if kind == "video":
        _require(isinstance(videos.get("per_prompt", 5), int) and videos.get("per_prompt", 5) > 0, path,
                 "videos.per_prompt must be a positive integer")
        by_dim = videos.get("per_prompt_by_dimension") or {}
        _require(isinstance(by_dim, dict) and all(isinstance(v, int) and v > 0 for v in by_dim.values()), path,
                 "videos.per_prompt_by_dimension must map dimension names to positive integers")
        _require(isinstance(videos.get("fps", 8), int) and videos.get("fps", 8) > 0, path,
                 "videos.fps must be a positive integer")
        videos = {"per_prompt": videos.get("per_prompt", 5), "per_prompt_by_dimension": dict(by_dim),
                  "fps": videos.get("fps", 8)}
    else:
        _require(not videos, path, "'videos' is only for suites with kind: video")
    precision = data.get("metric_precision", "fp32")
    _require(precision in METRIC_PRECISIONS, path,
             f"metric_precision must be {' or '.join(METRIC_PRECISIONS)}, not {precision!r}")
    gen_dtype = data.get("generation_dtype")
    _require(gen_dtype is None or gen_dtype in GENERATION_DTYPES, path,
             f"generation_dtype must be {', '.join(GENERATION_DTYPES)} or unset (the model's default), not {gen_dtype!r}")
    known = {"name", "version", "description", "prompts", "seeds", "resolution", "metrics", "sampler",
             "reference", "group", "notes", "kind", "videos", "metric_precision", "generation_dtype"}
    unknown = sorted(set(data) - known)
    _require(not unknown, path, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
    resolved = dict(data)
    resolved["name"] = name
    resolved["prompts"] = {k: v for k, v in p.items() if k != "_base_dir"}
    return Suite(
        name=name, version=version, description=str(data.get("description", "")).strip(), prompts=spec,
        seeds=tuple(seeds), resolution=res, metrics=tuple(specs), sampler=dict(data.get("sampler") or {}),
        reference=dict(data.get("reference") or {}), path=str(path),
        config_sha256=hashlib.sha256(_canonical(resolved)).hexdigest(), resolved=resolved,
        kind=kind, videos=videos, metric_precision=precision, generation_dtype=gen_dtype,
    )


def load_suite(name_or_path: str | Path) -> Suite:
    """A registered suite by name, or a suite YAML file by path."""
    s = str(name_or_path)
    files = _suite_files()
    if s in files:
        path = files[s]
    elif s.endswith((".yaml", ".yml")) or Path(s).is_file():
        path = Path(s)
        if not path.is_file():
            raise AddbenchError(f"suite file {s} does not exist")
    else:
        raise AddbenchError(f"unknown suite {s!r}; known suites: {', '.join(files) or 'none'} (see `addbench ls suites`)")
    return _build(path, _resolve(path))
