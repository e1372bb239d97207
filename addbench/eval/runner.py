"""generate -> write each sample once (PNG + provenance) -> score with the suite's metrics -> record.

Samples are scored in fixed groups of whole prompts (``score_batch`` images; the same groups whatever the
generation batch size or what is already on disk). For each group the runner reads the samples already on
disk, generates the missing ones (writing their PNGs from background threads, :class:`SampleWriter`) and hands
the group to every metric as one :class:`~addbench.metrics.views.ImageBatch`, so each resize a metric needs
runs once per group and is shared (GPU resizes on the metric device; PIL ones in a thread pool, started while
the GPU generates the next group). The metric networks load in a thread while the first groups generate.
PNGs are lossless, so a sample scores the same from memory or from disk. On the CPU all of this runs in turn
in the main thread (``io_workers=0``): there, threads would only contend with torch's own.

Run it again to resume: samples already on disk are skipped (PNG writes are atomic) and read back for scoring,
so a killed run ends with exactly the per-sample results of an uninterrupted one. Under torchrun the
prompts are split by prompt index (all seeds of a prompt on one rank); metric states meet in
``Metric.sync()`` and rank 0 writes the record, after every rank's PNGs are on disk.

A finished run is a manifest (:mod:`addbench.eval.manifest`): its record lists every sample file and
per_sample.parquet with size and sha256. Running the same command again checks the run dir against it and refuses
a damaged run in one line; ``repair=True`` (``--repair``) deletes the damaged files, regenerates exactly those
samples and rescores the run. On an unfinished run a truncated PNG counts as not yet generated.

Noise: the sample for (prompt index i, suite seed s) is generated with seed ``s * 1_000_000 + i``, so
prompts do not share their noise and every sample is reproducible alone (``noise_seed`` in the PNG chunk).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from addbench.bases.interface import Generator, Sampler
from addbench.errors import AddbenchError
from addbench.eval import manifest
from addbench.eval import records as rec
from addbench.eval.distributed import Dist, all_ok, distributed
from addbench.eval.provenance import check_known, environment, metric_provenance, weight_entry, weight_files
from addbench.eval import run as lifecycle  # the run lifecycle both runners share (tests patch its load_generator)
from addbench.eval.run import (EvalResult, apply_sampler_overrides, check_generation_dtype, generation_dtype,
                               noise_seed, resolve_run, run_key)
from addbench.eval.run import chunks as _chunks
from addbench.eval.run import progress as _progress
from addbench.eval.samples import InlineExecutor, SampleWriter, clean_tmp, read_png, resize, sample_name
from addbench.metrics.views import ImageBatch
from addbench.prompts import PromptSet, load_prompts
from addbench.registry import METRICS
from addbench.suites import Suite, load_suite, suite_hash

CRASH_ENV = "ADDBENCH_TEST_CRASH_AFTER"  # test hook: raise after this many samples were written by this process
SCORE_BATCH = 64  # images per scoring group (whole prompts)

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


def metric_classes(suite: Suite, overrides: dict | None = None) -> list[tuple[type, dict]]:
    """(class, constructor kwargs) of each suite metric; unknown names and missing $VARs fail here, at once."""
    return [(METRICS.get(spec.name), kwargs) for spec, kwargs in zip(suite.metrics, metric_kwargs(suite, overrides))]


def build_metrics(suite: Suite, classes: list[tuple[type, dict]], device: str) -> list:
    """Construct the metrics (loads their networks); safe to run in a background thread."""
    dev = torch.device(device)
    out = []
    # the current CUDA device is per thread: a loader thread must be put on the metrics' device
    with torch.cuda.device(dev) if dev.type == "cuda" and dev.index is not None else contextlib.nullcontext():
        for spec, (cls, kwargs) in zip(suite.metrics, classes):
            try:
                m = cls(device=device, **kwargs)
            except TypeError as exc:
                raise AddbenchError(f"suite {suite.name}: metric {spec.name!r} rejects its kwargs {kwargs}: "
                                    f"{exc}") from None
            m.precision = suite.metric_precision
            m.weight_provenance = [weight_entry(role, f) for role, f in weight_files(m)]  # hashed once per process
            check_known(m.id, {"weights": m.weight_provenance})
            out.append(m)
    return out


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


def default_io_workers(device) -> int:
    """Threads for PNG writing and for CPU views, per process: this process's share of the CPU cores (2 to 16)
    when the networks run on a GPU; 0 (everything in turn, in the main thread) when they run on the CPU."""
    if torch.device(device).type == "cpu":
        return 0
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(2, min(16, (os.cpu_count() or 2) // max(1, local)))


def _timed(fn, *args):
    t = time.perf_counter()
    return fn(*args), time.perf_counter() - t


def _done(value):
    """A zero-argument callable returning a finished future of ``value``."""
    fut: Future = Future()
    fut.set_result(value)
    return lambda: fut


def _make_fast(gen: Generator, fast) -> Generator:
    from addbench.bases.fast import FastOptions, make_fast

    if not hasattr(gen, "base"):
        raise AddbenchError(f"--fast needs a diffusers UNet model (sd15, sd21, sdxl); {gen.name} has no base")
    return make_fast(gen, fast if isinstance(fast, FastOptions) else FastOptions())


def evaluate(model: str | Generator, suite: str | Suite, out_dir: str | Path = "runs", device: str = "cpu",
             batch_size: int | None = None, sampler_overrides: dict | None = None, *, dtype: str | None = None,
             limit: int | None = None, run_dir: str | Path | None = None, metrics_device: str | None = None,
             progress: bool = True, rescore: bool = False, n_boot: int = 1000,
             metric_overrides: dict | None = None, fast=None, score_batch: int = SCORE_BATCH,
             io_workers: int | None = None, png_compress_level: int = 1,
             background_load: bool | None = None, overlap_scoring: bool = False,
             metric_precision: str | None = None, repair: bool = False, verify: str = "auto") -> EvalResult:
    """Evaluate ``model`` on ``suite``; returns the run directory and its record (rank 0; others get {}).

    ``fast``: True or a ``FastOptions``: generate with the fast path (CUDA graph, ...; its own model hash).
    ``score_batch``: images per scoring group; ``io_workers``: threads for PNG writes and CPU views (default:
    ``default_io_workers``); ``png_compress_level``: zlib level of the sample PNGs (file size and CPU time only,
    never pixels); ``background_load``: load the metric networks in a thread while generation runs (default:
    when the generator is on a GPU; on the CPU, threads would only contend); ``overlap_scoring`` (GPU): score
    in a thread on a CUDA stream of its own, so metric kernels run beside generation kernels (numbers unchanged).
    ``metric_precision``: fp32 | tf32 instead of the suite's ``metric_precision`` (its own config hash and run key;
    the record says so and ``addbench leaderboard`` labels the row).
    ``dtype``: fp32 | bf16 | fp16, the dtype the model generates in. Default: the suite's ``generation_dtype`` (the
    toy suites: fp32), else the model's (fp32 on the CPU, bf16 on a GPU). Like ``metric_precision``, a dtype other
    than the suite's makes another suite configuration (``Suite.with_generation_dtype``): its own run key, recorded
    in ``record["suite"]["generation_dtype"]`` and labelled "(bf16 generation)" by ``addbench leaderboard``. The
    dtype the model ran in is part of the run key and in ``record["model"]["dtype"]`` either way.
    ``verify``: auto | size | full, how a finished run is checked against its manifest (``manifest.verify``);
    ``repair``: regenerate the damaged or missing samples of a finished run (or one whose record is invalid) and
    rescore it, instead of refusing.
    """
    t_start = time.perf_counter()
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    if metric_precision is not None:
        if suite.kind == "video":
            raise AddbenchError(f"--metric-precision is for image suites; {suite.name} is scored by VBench in its own "
                                "environment with its own precision")
        suite = suite.with_metric_precision(metric_precision)
    suite = suite.with_generation_dtype(dtype)  # None: the suite's own (or, where it fixes none, the model's)
    if overlap_scoring and suite.metric_precision != "fp32":
        raise AddbenchError(f"--overlap-scoring needs metric precision fp32 (suite {suite.name} uses "
                            f"{suite.metric_precision}: a process-wide switch that would reach the generator's "
                            "matmuls running beside it); drop --overlap-scoring or pass --metric-precision fp32")
    if suite.kind == "video":  # VBench-style suites: mp4 files, scored in the VBench env
        from addbench.eval.video_runner import evaluate_video
        return evaluate_video(model, suite, out_dir, device, batch_size, sampler_overrides,
                              dtype=suite.generation_dtype, limit=limit, run_dir=run_dir, progress=progress,
                              rescore=rescore, metric_overrides=metric_overrides)
    pset = load_prompts(suite)
    n_prompts = len(pset) if limit is None else min(limit, len(pset))
    overrides = {**suite.sampler, **{k: v for k, v in (sampler_overrides or {}).items() if v is not None}}
    with distributed(device) as d, ThreadPoolExecutor(1, thread_name_prefix="addbench-metrics") as loader:
        mdev = metrics_device or d.device
        classes = metric_classes(suite, metric_overrides)  # unknown metrics / kwargs fail now
        gen = lifecycle.load_generator(model, d.device, suite.generation_dtype, overrides)
        if fast:
            gen = _make_fast(gen, fast)
        check_generation_dtype(gen, suite)
        # default: the generator's own micro-batch, so no call is padded (results never depend on it)
        batch_size = batch_size or getattr(gen, "effective_micro_batch", None) or 8
        sampler = apply_sampler_overrides(gen.sampler, overrides)
        key = run_key(gen, sampler, suite, pset, limit)
        rdir, finished = resolve_run(run_dir, out_dir, gen, sampler, suite, key, rescore, verify=verify,
                                     repair=repair)
        if finished is not None:
            return EvalResult(rdir, finished if d.is_main else {})
        record_path = rdir / "record.json"
        config = {"run_key": key, "model": str(model) if not isinstance(model, Generator) else gen.name,
                  "generator": gen.describe(), "sampler": sampler.to_dict(), "nfe": sampler.nfe,
                  "suite": suite.name, "suite_version": suite.version, "suite_config_sha256": suite.config_sha256,
                  "prompt_sha256": pset.sha256, "limit": limit, "batch_size": batch_size, "score_batch": score_batch,
                  "device": device, "dtype": dtype, "generation_dtype": generation_dtype(gen) or suite.generation_dtype,
                  "suite_config": suite.to_dict()}
        _prepare_run_dir(d, rdir, config)
        if d.is_main and record_path.exists():  # e.g. --rescore: the old record stands no longer
            rec.write_record(record_path, {"format": rec.FORMAT, "complete": False, "run_key": key})
        timing = {"load": time.perf_counter() - t_start}
        # The metric networks load in a thread while the generator works, started only after its first call (so
        # never while another model loads: loaders patch process-wide state such as meta-device init, and never
        # during a CUDA graph capture). A failed load stops the run at the next group; the samples stay.
        load_metrics = lambda: loader.submit(_timed, build_metrics, suite, classes, mdev)  # noqa: E731
        on_gpu = torch.device(d.device).type == "cuda"
        if not (on_gpu if background_load is None else background_load):
            load_metrics = _done(_timed(build_metrics, suite, classes, mdev))
        prov = {"model": gen.name, "model_hash": gen.model_hash, "sampler": sampler.to_dict(), "suite": suite.name,
                "suite_config_sha256": suite.config_sha256, "dtype": generation_dtype(gen) or suite.generation_dtype}
        loop = _Loop(gen, sampler, load_metrics, suite, pset.prompts, rdir / "samples", mdev, batch_size, prov,
                     overlap=overlap_scoring)
        t_loop = time.perf_counter()
        with _progress(progress and d.is_main) as bar:
            loop.run(d.shard(n_prompts), bar, f"rank {d.rank}/{d.world_size}", score_batch,
                     default_io_workers(d.device) if io_workers is None else io_workers, png_compress_level)
        timing.update(loop.timing, loop=time.perf_counter() - t_loop)
        metrics = loop.metrics
        t_sync = time.perf_counter()
        for m in metrics:
            m.sync()
        t_boot = time.perf_counter()
        _split_bootstrap(metrics, n_boot, d)
        timing["sync"] = t_boot - t_sync
        timing["split_bootstrap"] = time.perf_counter() - t_boot
        record: dict = {}
        if d.is_main:
            record = _write_record(rdir, gen, sampler, suite, pset, n_prompts, limit, key, metrics, device,
                                   d.world_size, n_boot, metric_kwargs(suite, metric_overrides), timing, t_start,
                                   {"micro_batch": batch_size, "score_batch": score_batch, "requested_device": device,
                                    "dtype": generation_dtype(gen) or suite.generation_dtype})
        d.barrier()
        timing["total"] = time.perf_counter() - t_start
        return EvalResult(rdir, record, timing)


class _Scorer:
    """Runs ``_Loop._score`` in turn, or (``loop.overlap``) in one thread with a CUDA stream of its own, at most
    two groups ahead: metric kernels then run beside the generator's (fp32 metric GEMMs use the FP32 units,
    bf16 generation the tensor cores). Groups are scored in order either way, so the numbers do not change."""

    def __init__(self, loop: "_Loop", bar, task):
        self.loop, self.bar, self.task = loop, bar, task
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="addbench-score") if loop.overlap else None
        self.inflight: deque = deque()
        dev = torch.device(loop.device)
        if loop.overlap and dev.type == "cuda":  # (on the CPU: the thread alone, for tests)
            loop._stream = torch.cuda.Stream(dev)
            loop._stream.wait_stream(torch.cuda.current_stream(dev))  # weights and buffers made so far

    def score(self, keys, assembled: Future) -> None:
        if self.pool is None:
            self.loop._score(keys, assembled, self.bar, self.task)
            return
        while len(self.inflight) >= 2 or (self.inflight and self.inflight[0].done()):
            self.inflight.popleft().result()  # raises a failed scoring
        self.inflight.append(self.pool.submit(self.loop._score, keys, assembled, self.bar, self.task))

    def __enter__(self) -> "_Scorer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.pool is None:
            return
        try:
            while self.inflight and exc_type is None:
                self.inflight.popleft().result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
            if self.loop._stream is not None:
                self.loop._stream.synchronize()  # metric states are complete before sync() reads them


def _split_bootstrap(metrics: list, n_boot: int, d: Dist) -> None:
    """Under torchrun, metrics with ``bootstrap_values`` (FID: one DxD eigendecomposition per draw) compute
    their bootstrap draws split over the ranks; rank 0 gets every value for the record (the same values one
    process computes)."""
    if d.world_size == 1:
        return
    import torch.distributed as dist

    for m in metrics:
        if not (hasattr(m, "bootstrap_values") and hasattr(m, "set_bootstrap_values") and getattr(m, "_feats", None)):
            continue
        if d.is_main and hasattr(m, "reference_stats"):
            m.reference_stats()  # computed and cached once, before the other ranks look it up
        d.barrier()
        n = min(n_boot, getattr(m, "max_boot", n_boot))
        gathered: list = [None] * d.world_size
        dist.all_gather_object(gathered, m.bootstrap_values(n, 0, (d.rank, d.world_size)))
        if d.is_main:
            m.set_bootstrap_values(n, 0, {k: v for part in gathered for k, v in part.items()})


class _Loop:
    """Generate the missing samples of a rank and score all of them, one fixed group of whole prompts at a time.

    Per group: PNGs on disk are read in the thread pool; the missing samples are generated (main thread) and
    handed to the background ``SampleWriter``; then the *previous* group is scored while the pool assembles this
    one (reads, resize to the suite resolution, CPU views) and the writer encodes its PNGs. ``load_metrics()``
    (-> future of (metrics, seconds)) is called after the first group; until the metrics have loaded, generated
    groups wait, up to ``MAX_AHEAD_BYTES`` of images.
    """

    MAX_AHEAD_BYTES = 4 << 30

    def __init__(self, gen, sampler, load_metrics, suite, prompts, samples_dir: Path, device, batch_size: int,
                 prov: dict, overlap: bool = False):
        self.gen, self.sampler, self.suite, self.prompts = gen, sampler, suite, prompts
        self.overlap, self._stream = overlap, None
        self.samples_dir, self.device, self.batch_size, self.prov = samples_dir, device, batch_size, prov
        self._load_metrics, self._metrics_future, self.metrics, self.views = load_metrics, None, None, []
        self.timing: dict = {"generate": 0.0, "wait_io": 0.0, "wait_metrics": 0.0, "score": {},
                             "generated": 0, "read": 0}

    def _metrics_ready(self, pending, wait: bool = False) -> bool:
        """True once the metrics have loaded (then their views are started for the waiting groups)."""
        if self._metrics_future is None:
            self._metrics_future = self._load_metrics()
        if self.metrics is None and (wait or self._metrics_future.done()):
            t = time.perf_counter()
            self.metrics, self.timing["metrics_load"] = self._metrics_future.result()  # raises a failed load
            self.timing["wait_metrics"] += time.perf_counter() - t
            self.views = list(dict.fromkeys(v for m in self.metrics for v in getattr(m, "views", ())))
            self.timing["score"] = {m.id: 0.0 for m in self.metrics}
            for _, assembled, _ in pending:
                assembled.result().prefetch(self.views)
        return self.metrics is not None

    def run(self, mine: list[int], bar, who: str, score_batch: int, workers: int, compress_level: int) -> None:
        seeds = self.suite.seeds
        n_mine = len(mine) * len(seeds)
        n_todo = sum(not (self.samples_dir / sample_name(i, s)).exists() for i in mine for s in seeds)
        gen_task = bar.add_task(f"generate ({who})", total=n_mine, completed=n_mine - n_todo)
        score_task = bar.add_task(f"score ({who})", total=n_mine)
        crash_after = int(os.environ.get(CRASH_ENV, "0") or 0)
        with (ThreadPoolExecutor(workers, thread_name_prefix="addbench-io") if workers else InlineExecutor()) as pool, \
                SampleWriter(workers, 4 * max(score_batch, self.batch_size), compress_level, crash_after) as writer, \
                _Scorer(self, bar, score_task) as scorer:
            pending: deque = deque()  # (keys, future of the assembled ImageBatch, bytes held)
            for group in _chunks(mine, max(1, score_batch // len(seeds))):
                keys = [(i, s) for i in group for s in seeds]
                images = self._start_group(keys, pool, writer, bar, gen_task)
                views = self.views if self._metrics_ready(pending) else None
                nbytes = sum(im.numel() for im in images if isinstance(im, torch.Tensor))
                pending.append((keys, pool.submit(self._assemble, images, pool, views), nbytes))
                # score all but the newest group (it assembles while the GPU generates the next one)
                while len(pending) > 1 and (self._metrics_ready(pending)
                                            or sum(b for *_, b in pending) > self.MAX_AHEAD_BYTES):
                    self._metrics_ready(pending, wait=True)
                    scorer.score(*pending.popleft()[:2])
            self._metrics_ready(pending, wait=True)
            while pending:
                scorer.score(*pending.popleft()[:2])

    def _start_group(self, keys, pool, writer: SampleWriter, bar, gen_task) -> list:
        """Futures of the samples on disk, tensors of the ones generated now (their PNGs go to the writer)."""
        paths = [self.samples_dir / sample_name(i, s) for i, s in keys]
        images: list = [pool.submit(self._read, p, i, s) if _sample_on_disk(p) else None for p, (i, s) in zip(paths, keys)]
        missing = [j for j, im in enumerate(images) if im is None]
        self.timing["read"] += len(keys) - len(missing)
        for chunk in _chunks(missing, self.batch_size):
            t = time.perf_counter()
            out = self.gen.generate([self.prompts[keys[j][0]] for j in chunk], [noise_seed(*keys[j]) for j in chunk],
                                    self.sampler)
            self.timing["generate"] += time.perf_counter() - t
            if out.shape[0] != len(chunk):
                raise AddbenchError(f"generator {self.gen.name} returned {out.shape[0]} images for {len(chunk)} "
                                    f"prompts")
            for j, img in zip(chunk, out.cpu()):
                i, s = keys[j]
                writer.submit(paths[j], img, {**self.prov, "prompt": self.prompts[i], "prompt_index": i, "seed": s,
                                              "noise_seed": noise_seed(i, s)})
                images[j] = img
            self.timing["generated"] += len(chunk)
            bar.advance(gen_task, len(chunk))
        return images

    def _read(self, path: Path, i: int, s: int) -> torch.Tensor:
        try:
            img, meta = read_png(path)
        except (OSError, SyntaxError, ValueError) as exc:  # PIL: damaged inside (a truncated one was regenerated)
            raise AddbenchError(f"{path} is not a readable PNG ({' '.join(str(exc).split())[:80]}); delete it and "
                                "re-run the same command to regenerate it") from None
        if meta.get("model_hash") != self.prov["model_hash"] or meta.get("prompt") != self.prompts[i] \
                or meta.get("noise_seed") != noise_seed(i, s):
            raise AddbenchError(f"{path} was written by another model or prompt set; delete {path.parent.parent} "
                                f"or use another --out")
        return img

    def _assemble(self, images: list, pool, views) -> ImageBatch:
        """(In the pool.) The group as one uint8 batch at the suite resolution, CPU views started."""
        batch = resize(torch.stack([im.result() if isinstance(im, Future) else im for im in images]),
                       self.suite.resolution)
        out = ImageBatch(batch, self.device, pool)
        out.prefetch(views or ())
        return out

    def _score(self, keys, assembled: Future, bar, score_task) -> None:
        if self._stream is not None:  # the scoring thread: its own CUDA stream, on the metrics' device
            with torch.cuda.device(self._stream.device), torch.cuda.stream(self._stream):
                return self._score_here(keys, assembled, bar, score_task)
        return self._score_here(keys, assembled, bar, score_task)

    def _score_here(self, keys, assembled: Future, bar, score_task) -> None:
        t = time.perf_counter()
        batch = assembled.result()
        self.timing["wait_io"] += time.perf_counter() - t
        prompts = [self.prompts[i] for i, _ in keys]
        for m in self.metrics:
            t = time.perf_counter()
            if hasattr(m, "update_in_precision"):
                m.update_in_precision(batch, prompts, keys)
            elif hasattr(m, "update_batch"):
                m.update_batch(batch, prompts, keys)
            else:
                m.update(batch.images, prompts, keys)
            self.timing["score"][m.id] += time.perf_counter() - t
        bar.advance(score_task, len(keys))


def _sample_on_disk(path: Path) -> bool:
    """True for a whole PNG; a truncated one (a copy or a disk cut short) is deleted: not generated yet."""
    if not path.exists():
        return False
    if manifest.png_complete(path):
        return True
    path.unlink(missing_ok=True)
    return False


def _write_record(rdir: Path, gen: Generator, sampler: Sampler, suite: Suite, pset: PromptSet, n_prompts: int,
                  limit: int | None, key: str, metrics: list, device: str, world_size: int, n_boot: int,
                  kwargs: list[dict], timing: dict, t_start: float, run: dict) -> dict:
    """Metric values, per_sample.parquet, then record.json (validated) with the manifest of every sample file and
    per_sample.parquet; ``run``: micro_batch, score_batch, requested_device, dtype (into ``provenance``)."""
    rows = [{"prompt_index": i, "seed": s, "prompt": pset.records[i]["prompt"],
             "image": f"samples/{sample_name(i, s)}", "category": pset.records[i].get("category")}
            for i in range(n_prompts) for s in suite.seeds]
    df = rec.per_sample_frame(rows, metrics)
    entries = {}
    t = time.perf_counter()
    for m, kw in zip(metrics, kwargs):
        entry = rec.metric_entry(m, kw, n_boot=n_boot)
        cats = rec.by_category(df, m.id)
        if cats:
            entry["by_category"] = cats
        entry["provenance"] = metric_provenance(m, getattr(m, "weight_provenance", None))
        entries[m.id] = entry
    if df["category"].isna().all():
        df = df.drop(columns=["category"])
    rec.write_per_sample(rdir / "per_sample.parquet", df)
    timing["record"] = time.perf_counter() - t  # metric values + bootstrap CIs + parquet
    t = time.perf_counter()
    files = manifest.build(rdir, [r["image"] for r in rows] + ["per_sample.parquet"])
    timing["manifest"] = time.perf_counter() - t
    record = {
        "format": rec.FORMAT, "complete": True, "run_key": key,
        "model": {**gen.describe(), "sampler": sampler.to_dict(), "nfe": sampler.nfe},
        "suite": {"name": suite.name, "version": suite.version, "hash": suite_hash(suite, pset.sha256),
                  "config_sha256": suite.config_sha256, "prompt_set": pset.name, "prompt_sha256": pset.sha256,
                  "n_prompts": n_prompts, "seeds": list(suite.seeds), "noise_seed": "seed * 1000000 + prompt_index",
                  "resolution": suite.resolution, "limit": limit, "metric_precision": suite.metric_precision,
                  "generation_dtype": suite.generation_dtype},
        "metrics": entries,
        "provenance": {**environment(device, world_size), **run,
                       "timing_s": {**timing, "total": time.perf_counter() - t_start}},
        "files": files,
    }
    rec.write_record(rdir / "record.json", record)
    return record
