"""Video suites: generate each video once (VBench's names), then score them with VBench in its own env.

``addbench eval --model M --suite vbench`` lands here (``kind: video``). Before anything is generated, the
VBench env is probed: a dimension whose weights are missing, or whose packages the env lacks, stops the
run with one line naming the file (or package); a dimension that cannot run at all here (GRiT needs
detectron2, not on PyPI) is left out and the record says why.

Run directory (as for images, plus VBench's own files)::

    RUN/videos/{prompt}-{index}.mp4   written once (tmp file + rename); only mp4 files live here
    RUN/provenance/{prompt}-{index}.json   model, sampler, prompt, indices, noise seed of each video
    RUN/vbench/                       full_info.json of this run, {dimension}_eval_results.json, worker.log
    RUN/record.json, RUN/per_sample.parquet, RUN/config.json

Noise: video ``k`` of prompt ``i`` uses seed ``k * 1_000_000 + i`` (the image rule with the video index
as the seed). Re-running the same command resumes: finished videos are skipped and so are dimensions that
VBench has already scored.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from addbench.errors import AddbenchError
from addbench.eval import records as rec
from addbench.eval.distributed import all_ok, distributed
from addbench.eval.provenance import environment
from addbench.prompts import load_prompts
from addbench.suites import Suite, load_suite, suite_hash
from addbench.video import env as venv
from addbench.video import scores
from addbench.video.prompts import load_full_info, run_full_info, video_name, videos_per_prompt

OPTIONS = {"dimensions": "all", "static_filter": True, "cache_dir": None, "full_info": None}


def metric_id(key: str, static_filter: bool = True) -> str:
    """``vbench[subject_consistency,x100]``; temporal flickering without VBench's static filter says so."""
    tail = ",unfiltered" if key == "temporal_flickering" and not static_filter else ""
    return f"vbench[{key},x100{tail}]"


def vbench_options(suite: Suite, overrides: dict | None) -> dict:
    if [m.name for m in suite.metrics] != ["vbench"]:
        raise AddbenchError(f"video suite {suite.name}: its only metric must be 'vbench', got "
                            f"{', '.join(m.name for m in suite.metrics)}")
    over = dict((overrides or {}).get("vbench", {}))
    unknown = sorted((set(suite.metrics[0].kwargs) | set(over)) - set(OPTIONS))
    if unknown:
        raise AddbenchError(f"vbench options {', '.join(unknown)} unknown; known: {', '.join(OPTIONS)}")
    extra = sorted(set(overrides or {}) - {"vbench"})
    if extra:
        raise AddbenchError(f"--metric names {', '.join(extra)}, not in suite {suite.name} (vbench)")
    opts = {**OPTIONS, **suite.metrics[0].kwargs, **over}
    dims = opts["dimensions"]
    if dims == "all":
        dims = list(scores.DIMENSIONS)
    elif isinstance(dims, str):
        dims = [d.strip() for d in dims.split(",") if d.strip()]
    elif not isinstance(dims, list):
        dims = [str(dims)]
    bad = [d for d in dims if d not in scores.DIMENSIONS]
    if bad or not dims:
        raise AddbenchError(f"unknown vbench dimension(s) {', '.join(bad) or '(none given)'}; "
                            f"known: {', '.join(scores.DIMENSIONS)}")
    opts["dimensions"] = [d for d in scores.DIMENSIONS if d in dims]
    opts["static_filter"] = str(opts["static_filter"]).lower() not in ("false", "0", "no", "off")
    if opts["cache_dir"]:
        opts["cache_dir"] = os.path.expanduser(str(opts["cache_dir"]))
    return opts


def plan(p: venv.Probe, opts: dict) -> tuple[list[str], dict[str, str]]:
    """(dimensions to run, {dimension: why it cannot run here}) from a probe of the env; raises one line
    for what the user can fix (missing weights, then missing packages), in VBench's order: weights first."""
    run, unavailable = [], {}
    for dim in opts["dimensions"]:
        d = p.dimensions[dim]
        if d["unavailable"]:
            unavailable[dim] = d["unavailable"]
            continue
        missing = list(d["missing"])
        if dim == "temporal_flickering" and opts["static_filter"]:
            missing += p.info["static_filter"]["missing"]
        if missing:
            m = missing[0]
            more = f" ({len(missing) - 1} more file(s) after it)" if len(missing) > 1 else ""
            raise AddbenchError(f"vbench dimension {dim} needs {m['path']}, which is missing{more}; download "
                                f"{m['url']} there (addbench never downloads weights) or leave {dim} out with "
                                "--metric vbench.dimensions=...")
        if d["import_error"]:
            raise AddbenchError(f"vbench dimension {dim} cannot import in {p.env} ({d['import_error']}); build the "
                                "full env with `addbench env vbench --profile full` or leave it out with "
                                "--metric vbench.dimensions=...")
        run.append(dim)
    return run, unavailable


def preflight(env: Path, opts: dict, work: Path) -> tuple[list[str], dict[str, str]]:
    return plan(venv.probe(env, opts["dimensions"], opts["cache_dir"], work=work), opts)


def _drop_stale(work: Path, videos: Path) -> None:
    """VBench's cached per-dimension results are dropped when a video is newer than them (re-generated)."""
    cached = list(work.glob("*_eval_results.json"))
    if not cached:
        return
    newest = max((f.stat().st_mtime for f in videos.iterdir()), default=0.0)
    for c in cached:
        if c.stat().st_mtime < newest:
            c.unlink()


def _items(pset, n_prompts: int, suite: Suite) -> list[tuple[int, int]]:
    v = suite.videos
    out = []
    for i in range(n_prompts):
        dims = [d for d in (pset.records[i].get("category") or "").split(",") if d]
        out += [(i, k) for k in range(videos_per_prompt(dims, v["per_prompt"], v["per_prompt_by_dimension"]))]
    return out


def evaluate_video(model, suite: Suite | str, out_dir="runs", device: str = "cpu", batch_size: int | None = None,
                   sampler_overrides: dict | None = None, *, dtype=None, limit: int | None = None, run_dir=None,
                   progress: bool = True, rescore: bool = False, metric_overrides: dict | None = None, **_):
    from addbench.eval import run as lifecycle
    from addbench.eval.run import (EvalResult, apply_sampler_overrides, check_generation_dtype, chunks, noise_seed,
                                   resolve_run, run_key)
    from addbench.eval.run import progress as progress_bar

    suite = (suite if isinstance(suite, Suite) else load_suite(suite)).with_generation_dtype(dtype)
    opts = vbench_options(suite, metric_overrides)
    env = venv.find_env()
    pset = load_prompts(suite)
    n_prompts = len(pset) if limit is None else min(limit, len(pset))
    overrides = {**suite.sampler, **{k: v for k, v in (sampler_overrides or {}).items() if v is not None}}
    with distributed(device) as d:
        gen = lifecycle.load_generator(model, d.device, suite.generation_dtype, overrides)
        check_generation_dtype(gen, suite)
        sampler = apply_sampler_overrides(gen.sampler, overrides)
        key = run_key(gen, sampler, suite, pset, limit)
        rdir, finished = resolve_run(run_dir, out_dir, gen, sampler, suite, key, rescore,
                                     finished_if=lambda old: old.get("vbench", {}).get("options") == opts)
        if finished is not None:
            return EvalResult(rdir, finished if d.is_main else {})
        ok, msg, dims, unavailable = True, "", [], {}
        if d.is_main:  # fail fast, before generating anything
            try:
                dims, unavailable = preflight(env, opts, rdir / "vbench")
                _prepare(rdir, {"run_key": key, "model": gen.name, "generator": gen.describe(),
                                "sampler": sampler.to_dict(), "nfe": sampler.nfe, "suite": suite.name,
                                "suite_version": suite.version, "suite_config_sha256": suite.config_sha256,
                                "prompt_sha256": pset.sha256, "limit": limit, "vbench": opts,
                                "suite_config": suite.to_dict()})
            except AddbenchError as exc:
                ok, msg = False, str(exc)
        if not all_ok(ok, d):
            raise AddbenchError(msg or "rank 0 refused the run (see its error)")
        d.barrier()
        fps = int(getattr(gen, "fps", None) or suite.videos["fps"])
        videos, prov_dir, tmp = rdir / "videos", rdir / "provenance", rdir / "tmp"
        prompts = pset.prompts
        items = _items(pset, n_prompts, suite)
        mine = set(d.shard(n_prompts))
        todo = [(i, k) for i, k in items if i in mine and not (videos / video_name(prompts[i], k)).exists()]
        prov = {"model": gen.name, "model_hash": gen.model_hash, "sampler": sampler.to_dict(), "fps": fps,
                "suite": suite.name, "suite_config_sha256": suite.config_sha256}
        from addbench.video.mp4 import write_mp4

        with progress_bar(progress and d.is_main) as bar:
            n_mine = sum(1 for i, _ in items if i in mine)
            task = bar.add_task(f"generate videos (rank {d.rank}/{d.world_size})", total=n_mine,
                                completed=n_mine - len(todo))
            for batch in chunks(todo, batch_size or getattr(gen, "effective_micro_batch", None) or 1):
                out = gen.generate([prompts[i] for i, _ in batch], [noise_seed(i, k) for i, k in batch], sampler)
                if out.ndim != 5 or out.shape[0] != len(batch):
                    raise AddbenchError(f"generator {gen.name} returned {tuple(out.shape)} for {len(batch)} prompts; "
                                        "a video suite needs uint8 (N, F, 3, H, W)")
                for (i, k), video in zip(batch, out.cpu()):
                    name = video_name(prompts[i], k)
                    rec.atomic_write_json(prov_dir / f"{name[:-4]}.json", {**prov, "prompt": prompts[i], "prompt_index": i,
                                                                        "video_index": k, "noise_seed": noise_seed(i, k),
                                                                        "frames": int(video.shape[0])})
                    write_mp4(videos / name, video, fps, tmp)
                bar.advance(task, len(batch))
        d.barrier()  # every video is on disk
        if not d.is_main:  # VBench scores on rank 0 alone, for hours: the other ranks leave now (no barrier to time out)
            return EvalResult(rdir, {})
        _check_provenance(rdir, items, prompts, gen.model_hash)
        record = _score_and_record(env, rdir, gen, sampler, suite, pset, n_prompts, limit, key, items, dims,
                                   unavailable, opts, fps, device, d.world_size)
        return EvalResult(rdir, record)


def _prepare(rdir: Path, config: dict) -> None:
    for sub in ("videos", "provenance", "vbench", "tmp"):
        (rdir / sub).mkdir(parents=True, exist_ok=True)
    for p in (rdir / "tmp").iterdir():
        p.unlink()
    cfg = rdir / "config.json"
    if cfg.exists() and json.loads(cfg.read_text()).get("run_key") != config["run_key"]:
        raise AddbenchError(f"{rdir} holds a run of another model/sampler/suite; use another --out")
    rec.atomic_write_json(cfg, config)


def _check_provenance(rdir: Path, items, prompts, model_hash: str) -> None:
    for i, k in items:
        name = video_name(prompts[i], k)
        meta_path = rdir / "provenance" / f"{name[:-4]}.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        if meta.get("model_hash") != model_hash or meta.get("prompt") != prompts[i] or meta.get("video_index") != k:
            raise AddbenchError(f"{rdir / 'videos' / name} was written by another model or prompt set; "
                                f"delete {rdir} or use another --out")


def _score_and_record(env, rdir, gen, sampler, suite, pset, n_prompts, limit, key, items, dims, unavailable,
                      opts, fps, device, world_size) -> dict:
    from addbench.eval.run import noise_seed

    prompts = pset.prompts[:n_prompts]
    work = rdir / "vbench"
    full_info = run_full_info(load_full_info(opts["full_info"]), prompts)
    rec.atomic_write_json(work / "full_info.json", full_info)  # (a list; atomic_write_json takes any JSON)
    tf_prompts = [e["prompt_en"] for e in full_info if "temporal_flickering" in e["dimension"]]
    _drop_stale(work, rdir / "videos")
    results = {}
    if dims:
        vb_device = "cuda" if str(device).startswith("cuda") else "cpu"
        res = venv.run_worker(env, "evaluate", {
            "videos": str(rdir / "videos"), "work_dir": str(work), "full_info": str(work / "full_info.json"),
            "dimensions": dims, "device": vb_device, "cache_dir": opts["cache_dir"],
            "static_filter": opts["static_filter"], "static_filter_prompts": tf_prompts}, work,
            log_path=work / "worker.log")
        if "error" in res:
            e = res["error"]
            if e["kind"] == "missing_weights":
                raise AddbenchError(f"vbench dimension {e['dimension']} needs {e['path']}, which is missing; "
                                    f"download {e['url']} there (addbench never downloads weights)")
            raise AddbenchError(f"VBench failed on {e['dimension']}: {e['message']} (log: {work / 'worker.log'})")
        results = res["results"]
        kept = res.get("static_filter_kept")
    else:
        kept = None
    raw = {dim: float(results[dim][0]) for dim in dims}
    summary = scores.summary(raw)

    by_name = {video_name(pset.prompts[i], k): (i, k) for i, k in items}
    rows = [{"prompt_index": i, "video_index": k, "prompt": pset.prompts[i], "video": f"videos/{video_name(pset.prompts[i], k)}",
             "category": pset.records[i].get("category"), "noise_seed": noise_seed(i, k)} for i, k in items]
    index = {(r["prompt_index"], r["video_index"]): r for r in rows}
    entries: dict[str, dict] = {}
    for key_ in ("total", "quality", "semantic"):
        if summary[key_] is not None:
            entries[metric_id(key_)] = {"name": "vbench", "value": 100 * summary[key_], "ci95": None,
                                       "higher_is_better": True, "convention": "VBench normalised weighted mean, x100",
                                       "kwargs": {}, "n": None, "per": "set"}
    for dim in dims:
        mid = metric_id(dim, opts["static_filter"])
        per_video = results[dim][1] if isinstance(results[dim][1], list) else []
        n = 0
        for v in per_video:
            name = os.path.basename(str(v.get("video_path", "")))
            val = v.get("video_results")
            if dim == "temporal_flickering" and opts["static_filter"]:
                continue  # scored on static-filtered copies; the kept indices are in the record
            if name in by_name and isinstance(val, (int, float)):
                index[by_name[name]][mid] = 100 * float(val)
                n += 1
        entries[mid] = {"name": "vbench", "value": 100 * raw[dim], "ci95": None, "higher_is_better": True,
                        "convention": "VBench raw dimension score, x100", "kwargs": {"dimension": dim},
                        "n": n or None, "per": "video"}
    import pandas as pd

    rec.write_per_sample(rdir / "per_sample.parquet", pd.DataFrame(rows))
    missing_for_total = [d for d in scores.DIMENSIONS if d not in raw]
    status = {d: ({"status": "ran"} if d in raw else {"status": "unavailable", "reason": unavailable[d]}
                  if d in unavailable else {"status": "not requested"}) for d in scores.DIMENSIONS}
    probe_info = json.loads((work / "probe_result.json").read_text()) if (work / "probe_result.json").exists() else {}
    stamp = venv.env_python(env).parent.parent / venv.STAMP
    record = {
        "format": rec.FORMAT, "complete": True, "run_key": key, "kind": "video",
        "model": {**gen.describe(), "sampler": sampler.to_dict(), "nfe": sampler.nfe},
        "suite": {"name": suite.name, "version": suite.version, "hash": suite_hash(suite, pset.sha256),
                  "config_sha256": suite.config_sha256, "prompt_set": pset.name, "prompt_sha256": pset.sha256,
                  "n_prompts": n_prompts, "n_videos": len(items), "videos": suite.videos, "fps": fps,
                  "noise_seed": "video_index * 1000000 + prompt_index", "resolution": suite.resolution, "limit": limit,
                  "generation_dtype": suite.generation_dtype},
        "metrics": entries,
        "vbench": {"version": probe_info.get("vbench_version"), "libraries": probe_info.get("libraries"),
                   "env": str(env), "env_profile": json.loads(stamp.read_text()).get("profile") if stamp.exists() else None,
                   "options": opts, "mode": "vbench_standard", "static_filter": opts["static_filter"],
                   "static_filter_kept": kept, "dimensions": status,
                   "scores": "VBench scripts/constant.py normalisation and weights; total = (4 quality + semantic) / 5",
                   "total_missing": missing_for_total or None},
        "provenance": environment(device, world_size),
    }
    rec.atomic_write_json(rdir / "record.json", record)
    return record
