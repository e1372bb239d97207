"""The ``addbench`` command line: typer commands only; the work lives in the modules they call.

Every AddbenchError / RegistryError becomes one red line ``error: ...`` and exit code 2 (no traceback).
Sharded evaluation: ``torchrun --nproc_per_node=N -m addbench.cli eval --model M --suite S``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from addbench.cli_common import console, err, guarded
from addbench.cli_common import one_line as _one_line
from addbench.config import EvalConfig, nest_dotted, parse_assignments, parse_int_list
from addbench import validate as V
from addbench.errors import AddbenchError
from addbench.registry import BASES, DISTILLERS, METRICS

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train few-step diffusion distillers and score them under one protocol.")
prompts_app = typer.Typer(no_args_is_help=True, help="Build and inspect prompt sets.")
app.add_typer(prompts_app, name="prompts")
env_app = typer.Typer(no_args_is_help=True, help="Separate environments addbench calls (VBench).")
app.add_typer(env_app, name="env")
INTERNAL_ERROR_EXIT = 1


def _internal_error(exc: BaseException) -> int:
    """The last resort of :func:`main`: one line, exit 1; ``ADDBENCH_DEBUG=1`` re-raises for the traceback."""
    if os.environ.get("ADDBENCH_DEBUG", "") not in ("", "0"):
        raise exc
    err.print(f"[red]error: internal error ({type(exc).__name__}: {escape(_one_line(exc)[:300])}); please report "
              "with ADDBENCH_DEBUG=1 for the traceback[/red]")
    return INTERNAL_ERROR_EXIT


def _device(device: str) -> str:
    from addbench.bases.components import resolve_device

    return str(resolve_device(device))


def _is_main() -> bool:
    return os.environ.get("RANK", "0") == "0"


# ---- eval -------------------------------------------------------------------------------------------
@app.command("eval")
@guarded
def eval_cmd(
    model: str = typer.Option(..., "--model", "-m", help="registered base, diffusers dir / hub id, or checkpoint dir"),
    suite: str = typer.Option(..., "--suite", "-s", help="suite name (addbench ls suites) or a suite YAML path"),
    out: Path = typer.Option(Path("runs"), "--out", help="parent folder; the run dir is OUT/SUITE/MODEL-nfeN-KEY"),
    steps: Optional[int] = typer.Option(None, "--steps", help="sampler steps (replaces a checkpoint's timesteps)"),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="CFG scale (1 = none)"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="images per generate call (default: the model's micro-batch)"),
    device: str = typer.Option("auto", "--device", help="cpu | cuda | auto"),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="fp32 | fp16 | bf16: the dtype the model generates in. "
                                        "Default: the suite's generation_dtype (toy suites: fp32), else the model's "
                                        "(fp32 on CPU, bf16 on GPU); another than the suite's: own run key, "
                                        "labelled in leaderboards"),
    limit: Optional[int] = typer.Option(None, "--limit", help="only the first N prompts (smoke runs; marked in the record)"),
    metric: Optional[List[str]] = typer.Option(None, "--metric", help="METRIC.KEY=VALUE override, e.g. fid.reference=/data/val2017"),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="exact run directory (instead of OUT/...)"),
    rescore: bool = typer.Option(False, "--rescore", help="score again even if the record is complete"),
    repair: bool = typer.Option(False, "--repair", help="a finished run whose files no longer match its record (or an "
                                                      "invalid record): regenerate the damaged samples and rescore"),
    verify: str = typer.Option("auto", "--verify", help="how a finished run is checked against its manifest: size | "
                                                      "full (sha256 too) | auto (full up to 2 GiB of files)"),
    no_progress: bool = typer.Option(False, "--no-progress"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the resolved configuration (JSON) and exit"),
    fast: bool = typer.Option(False, "--fast", help="fast generation path (CUDA graph, channels-last, SDPA; UNet "
                                                    "bases; bf16-level pixel differences, so its own model hash)"),
    score_batch: int = typer.Option(64, "--score-batch", help="images per scoring group (whole prompts)"),
    overlap: bool = typer.Option(False, "--overlap-scoring", help="score in a thread (GPU: own CUDA stream) beside "
                                                            "generation; same numbers"),
    metric_precision: Optional[str] = typer.Option(None, "--metric-precision",
                                                   help="fp32 | tf32: the metric networks' fp32 matmuls, instead of "
                                                        "the suite's convention (own run key; labelled in leaderboards)"),
):
    """Generate the suite's samples, score them and write record.json (re-run the same command to resume)."""
    sampler = {k: v for k, v in {"steps": steps, "guidance": guidance}.items() if v is not None}
    cfg = EvalConfig(model=model, suite=suite, out=str(out), device=device, dtype=dtype, batch_size=batch_size,
                     sampler_overrides=sampler, metric_overrides=nest_dotted(parse_assignments(metric, "--metric")),
                     limit=limit, run_dir=str(run_dir) if run_dir else None, progress=not no_progress, rescore=rescore,
                     fast=fast, score_batch=score_batch, overlap_scoring=overlap, metric_precision=metric_precision,
                     repair=repair, verify=verify)
    if dry_run:
        print(json.dumps(cfg.resolved(), indent=2))
        return
    res = cfg.run()
    if _is_main() and res.record:
        for mid, m in res.record["metrics"].items():
            ci = f" [{m['ci95'][0]:.4g}, {m['ci95'][1]:.4g}]" if m.get("ci95") else ""
            console.print(f"{escape(mid)} {'↑' if m['higher_is_better'] else '↓'} {m['value']:.6g}{ci}")
        for dim, st in (res.record.get("vbench") or {}).get("dimensions", {}).items():
            if st["status"] == "unavailable":
                err.print(f"[yellow]vbench {dim} not run: {escape(st['reason'])}[/yellow]")
        console.print(f"run: {res.run_dir}")


# ---- leaderboard ------------------------------------------------------------------------------------
@app.command("leaderboard")
@guarded
def leaderboard_cmd(
    runs: Optional[List[str]] = typer.Argument(None, help="run dirs, parent folders or globs (record.json found recursively)"),
    published: Optional[List[str]] = typer.Option(None, "--published", help="published table name (leaderboards/published/), a file, or 'all'"),
    fmt: str = typer.Option("md", "--format", "-f", help="md | latex | csv | parquet (csv, parquet: numeric columns "
                                                         "<name>, <name>_ci_lo, <name>_ci_hi; parquet needs --out)"),
    ci: str = typer.Option("pm", "--ci", help="md/latex cells. pm: value ± h where the 95% CI is symmetric about the "
                                              "value to the digits shown, else value [lo, hi] | interval: always "
                                              "value [lo, hi]"),
    out_file: Optional[Path] = typer.Option(None, "--out", help="write the table here instead of stdout (csv, parquet: "
                                                                "and each metric's id, direction and CI method in "
                                                                "<stem>.meta.json beside it)"),
):
    """Rows = model x NFE, columns = metric ids (↑/↓), cells value [95% CI over prompts]; published rows marked."""
    from addbench.eval.tables import NUMERIC_FORMATS, leaderboard, write_numeric

    if ci not in ("pm", "interval"):
        raise AddbenchError(f"--ci must be pm or interval, got {ci!r}")
    if fmt in NUMERIC_FORMATS and out_file:
        table, side, skipped = write_numeric(list(runs or []), list(published or []), out_file, fmt)
        for s in skipped:
            err.print(f"[yellow]skipped incomplete run {escape(s)}[/yellow]")
        console.print(f"wrote {table} and {side}")
        return
    if fmt == "parquet":
        raise AddbenchError("--format parquet needs --out FILE (parquet is binary)")
    text, skipped = leaderboard(list(runs or []), list(published or []), fmt=fmt, ci=ci)
    for s in skipped:
        err.print(f"[yellow]skipped incomplete run {escape(s)}[/yellow]")
    if out_file:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(text)
        console.print(f"wrote {out_file}")
    else:
        print(text, end="")


# ---- ls ---------------------------------------------------------------------------------------------
LS_KINDS = ("suites", "metrics", "bases", "distillers")


@app.command("ls")
@guarded
def ls_cmd(what: str = typer.Argument("all", help="suites | metrics | bases | distillers | all")):
    """List what is registered, one line each."""
    from addbench.suites import describe_suites

    if what not in LS_KINDS + ("all",):
        raise AddbenchError(f"addbench ls takes one of {', '.join(LS_KINDS)} or all; got {what!r}")
    kinds = LS_KINDS if what == "all" else (what,)
    for kind in kinds:
        if what == "all":
            console.print(f"[bold]{kind}[/bold]")
        if kind == "suites":
            items = describe_suites()
        else:
            reg = {"metrics": METRICS, "bases": BASES, "distillers": DISTILLERS}[kind]
            items = [(e.name, e.help) for e in reg.entries()]
        width = max((len(n) for n, _ in items), default=0)
        for name, help_ in items:
            print(f"{'  ' if what == 'all' else ''}{name.ljust(width)}  {help_}")


# ---- prompts ----------------------------------------------------------------------------------------
@prompts_app.command("build")
@guarded
def prompts_build(name: str = typer.Argument(..., help="suite name (or its prompt-set name)"),
                  source: Path = typer.Option(..., "--from", help="the official file (COCO captions JSON, PartiPrompts.tsv, HPDv2 benchmark folder)")):
    """Validate the official file, apply the suite's selection rule, cache the prompt set as JSONL + sha256."""
    from addbench.prompts import build_prompt_set, cache_dir, resolve_prompt_spec

    V.existing(source, "--from")
    _, spec = resolve_prompt_spec(name)
    pset = build_prompt_set(spec, source)
    console.print(f"{pset.name}: {len(pset)} prompts, sha256 {pset.sha256} -> {cache_dir() / (pset.name + '.jsonl')}")


@prompts_app.command("show")
@guarded
def prompts_show(name: str = typer.Argument(..., help="suite name"), n: int = typer.Option(5, "-n")):
    """Count, sha256 and the first N prompts of a suite's prompt set."""
    from addbench.prompts import load_prompts
    from addbench.suites import load_suite

    V.int_at_least(n, 0, "-n", "prompts to show")
    pset = load_prompts(load_suite(name))
    console.print(f"{pset.name}: {len(pset)} prompts, sha256 {pset.sha256}")
    for r in pset.records[:n]:
        print(f"{r['index']}\t{r['prompt']}")


# ---- samples ----------------------------------------------------------------------------------------
@app.command("samples")
@guarded
def samples_cmd(
    model: List[str] = typer.Option(..., "--model", "-m", help="a model as in eval; repeat it for one block of rows "
                                    "per model"),
    prompts: List[str] = typer.Option(..., "--prompts", "-p", help="a prompt (repeatable) or a text file, one prompt a line"),
    seeds: str = typer.Option("0", "--seeds", help="comma-separated seeds"),
    grid: Path = typer.Option(..., "--grid", help="output PNG"),
    steps: Optional[str] = typer.Option(None, "--steps", help="comma-separated step counts, one grid row each"),
    guidance: Optional[float] = typer.Option(None, "--guidance"),
    device: str = typer.Option("auto", "--device"),
    dtype: Optional[str] = typer.Option(None, "--dtype"),
    labels: bool = typer.Option(True, "--labels/--no-labels", help="captions above the columns, model and NFE before "
                                "the rows, small images upscaled (nearest); --no-labels: the bare tile, native size"),
    cell: int = typer.Option(256, "--cell", help="with labels: upscale small images until a cell is this many px"),
):
    """A PNG grid: rows = step counts (per model), columns = prompt x seed, labelled (the gmm unit world: a scatter
    PNG, one point per prompt x seed, one panel per step count after the exact samples). Generates exactly the
    images shown: a row is never padded to the model's micro-batch."""
    from addbench.eval.grid import sample_grid
    from addbench.gmm.sample import is_gmm_model

    step_list = parse_int_list(steps, "--steps", 1, "sampling steps, one grid row each")
    seed_list = V.seeds(parse_int_list(seeds, "--seeds", 0, "seeds are integers in [0, 2^63)"))
    if guidance is not None:
        V.non_negative(guidance, "--guidance", "the CFG scale; 1 = none")
    if cell < 1:
        raise AddbenchError(f"--cell must be >= 1 (pixels); got {cell}")
    V.device_available(device)
    V.dtype_name(dtype)
    V.writable_file(grid, "--grid", (".png",))
    plist = []
    for p in prompts:
        plist += _prompt_lines(p) if Path(p).is_file() else [p]
    if not plist:
        raise AddbenchError("--prompts: give at least one non-empty prompt (or a text file, one prompt a line)")
    if any(is_gmm_model(m) for m in model):  # gmm: "" is a prompt (the unconditional class)
        if len(model) > 1:
            raise AddbenchError("--model: a gmm model draws a scatter of its own; give it alone")
        from addbench.gmm.plot import scatter_model

        scatter_model(model[0], grid, step_list, plist, seed_list, device=_device(device), guidance=guidance)
        console.print(f"wrote {grid}: gmm scatter of {len(plist)} prompt(s) x {len(seed_list)} seed(s)")
        return
    if not all(p.strip() for p in plist):
        raise AddbenchError("--prompts: give at least one non-empty prompt (or a text file, one prompt a line)")
    rows = sample_grid(model if len(model) > 1 else model[0], plist, seed_list, grid, step_list, guidance=guidance,
                       device=_device(device), dtype=dtype, labels=labels, min_cell=cell)
    console.print(f"wrote {grid}: {rows} row(s) x {len(plist) * len(seed_list)} column(s)")


def _prompt_lines(path: str) -> list[str]:
    try:
        return [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise AddbenchError(f"--prompts {path}: not a readable UTF-8 text file ({type(exc).__name__}); "
                            "give one prompt a line") from None


# ---- latency ----------------------------------------------------------------------------------------
@app.command("latency")
@guarded
def latency_cmd(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="a model as in eval (its sampler gives the NFE)"),
    base: Optional[str] = typer.Option(None, "--base", help="a registered base (with --random-weights: no download)"),
    random_weights: bool = typer.Option(False, "--random-weights", help="full-size architecture, random weights"),
    res: int = typer.Option(512, "--res", help="image resolution"),
    nfe: str = typer.Option("1", "--nfe", help="comma-separated NFEs, e.g. 1,2,4"),
    batch: int = typer.Option(1, "--batch"),
    runs: int = typer.Option(20, "--runs", help="timed runs (median reported)"),
    guidance: float = typer.Option(1.0, "--guidance", help="CFG scale; with CFG each step is 2 network evaluations, "
                                   "so every --nfe must be even (NFE 50 = 25 steps)"),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the network (short for --fast graph+compile)"),
    fast: Optional[str] = typer.Option(None, "--fast", help="fast variant(s), comma-separated, each tokens joined by "
                                       "'+': graph, nograph, compile, text, fused, streams, bench; e.g. "
                                       "graph+compile+text+fused+streams"),
    compile_mode: str = typer.Option("default", "--compile-mode", help="torch.compile mode of the compiled variants"),
    inductor: Optional[List[str]] = typer.Option(None, "--inductor", help="torch._inductor.config KEY=VALUE for the "
                                                 "compiled variants, e.g. coordinate_descent_tuning=true (repeatable)"),
    profile: bool = typer.Option(False, "--profile", help="also record each part's kernels (torch.profiler)"),
    compile_cache: Optional[str] = typer.Option(None, "--compile-cache", help="folder of torch.compile's on-disk "
                                                "caches, reused by the next process (default $ADDBENCH_CACHE/compile; "
                                                "'off': torch's own temp folder)"),
    no_eager: bool = typer.Option(False, "--no-eager", help="time the fast variants only (no eager run, no check "
                                  "of the fast outputs against eager)"),
    device: str = typer.Option("auto", "--device"),
    dtype: Optional[str] = typer.Option(None, "--dtype"),
    out_file: Optional[Path] = typer.Option(None, "--out", help="also write the JSON result here"),
):
    """Time generation (text encode + NFE network calls + decode) with CUDA events; prints JSON."""
    if (model is None) == (base is None):
        raise AddbenchError("addbench latency needs exactly one of --model or --base")
    V.int_at_least(res, 8, "--res", "the image side in pixels")
    nfe_list = parse_int_list(nfe, "--nfe", 1, "network evaluations per image")
    V.int_at_least(batch, 1, "--batch", "images per generate call")
    V.int_at_least(runs, 1, "--runs", "timed runs")
    V.non_negative(guidance, "--guidance", "the CFG scale; 1 = none")
    V.device_available(device)
    V.dtype_name(dtype)
    if out_file is not None:
        V.writable_file(out_file, "--out")
    cache = False if compile_cache == "off" else compile_cache
    if cache:
        V.writable_dir(Path(cache), "--compile-cache")
    if compile and fast:
        raise AddbenchError("--compile is short for --fast graph+compile; give one of them")
    from addbench.bases.fast import parse_inductor, parse_variant

    tune, tuned = parse_inductor(inductor), bool(inductor) or compile_mode != "default"
    variants = None  # measure_latency's default: one fast variant, compiled when --compile
    if fast:
        variants = [parse_variant(v, compile_mode, tune) for v in fast.split(",") if v]
    elif tuned and not compile:
        raise AddbenchError("--compile-mode and --inductor need a compiled variant: add --compile or --fast ...+compile")
    elif tuned:
        variants = [parse_variant("graph+compile", compile_mode, tune)]
    try:
        from addbench.eval.latency import measure_latency
    except ImportError as exc:
        raise AddbenchError(f"latency measurement is not available ({exc})") from None
    from addbench.eval.records import atomic_write_json

    # with --out, the file is rewritten after every record: a run killed in a later variant keeps what it measured
    save = (lambda result: atomic_write_json(out_file, result)) if out_file else None
    result = measure_latency(model=model, base=base, random_weights=random_weights, res=res,
                             nfe=nfe_list, batch=batch, runs=runs, compile=compile,
                             device=_device(device), dtype=dtype, guidance=guidance, fast_options=variants,
                             profile=profile, on_record=save, compile_cache=cache,
                             modes=("fast",) if no_eager else ("eager", "fast"))
    if save:
        save(result)
    print(json.dumps(result, indent=2, default=str))


# ---- train ------------------------------------------------------------------------------------------
@app.command("train")
@guarded
def train_cmd(
    distiller: str = typer.Argument(..., help="registered distiller (addbench ls distillers)"),
    base: str = typer.Option(..., "--base", help="registered base or a pipeline dir"),
    stage: Optional[str] = typer.Option(None, "--stage", help="stage of a multi-stage distiller (dmdx: adp, adm)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="run folder (default runs/train/DISTILLER-BASE)"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="config override KEY=VALUE (repeatable)"),
    device: Optional[str] = typer.Option(None, "--device"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the resolved configuration (JSON) and exit"),
):
    """Train a distiller; run the same command again to resume. Prints the checkpoint directory."""
    from addbench.train.entry import train

    # unknown names fail here, with the list of known ones; `distillers.dmdx --stage adm` == `dmdx.adm`
    distiller = DISTILLERS.canonical(distiller, stage)
    out_dir = out_dir or Path("runs") / "train" / f"{distiller}-{Path(base).name}"
    V.writable_dir(out_dir, "--out")
    V.device_available(device)
    overrides = list(set_ or [])
    parse_assignments(overrides, "--set")  # malformed items fail before anything heavy starts
    kwargs = {"device": device} if device else {}
    path = train(distiller, base, out_dir, overrides, dry_run, **kwargs)
    if not dry_run and _is_main():
        console.print(f"checkpoint: {path}")


# ---- env ----------------------------------------------------------------------------------------------
@env_app.command("vbench")
@guarded
def env_vbench_cmd(
    profile: str = typer.Option("minimal", "--profile", help="minimal: temporal_flickering + weight checks (CI) | full: vbench with all its dependencies"),
    path: Optional[Path] = typer.Option(None, "--path", help="where (default ~/.cache/addbench/envs/vbench-PROFILE)"),
    force: bool = typer.Option(False, "--force", help="rebuild even if a working env is there"),
    cache_dir: Optional[str] = typer.Option(None, "--weights", help="VBench weights folder to check (default $VBENCH_CACHE_DIR or ~/.cache/vbench)"),
):
    """Create VBench's own venv (reusing this torch), then say which of the 16 dimensions can run there."""
    from addbench.video.env import ENV_VAR, availability_lines, create_env, probe

    env = create_env(profile, path, force=force, log=console.print)
    for line in availability_lines(probe(env, cache_dir=cache_dir)):
        print(line)
    console.print(f"use it: export {ENV_VAR}={env}")


# ---- the toy world's main job ---------------------------------------------------------------------------
@app.command("toy-demo")
@guarded
def toy_demo_cmd(
    out: Path = typer.Option(Path("runs/toy-demo"), "--out"),
    steps: str = typer.Option("1,4,25", "--steps", help="teacher step counts to evaluate"),
    suite: str = typer.Option("toy", "--suite"),
    distiller: Optional[str] = typer.Option(None, "--distiller", help="also train a 1-step student first (add, dmd, dmd2, dmdx.adp, ...)"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="training override KEY=VALUE, e.g. budget_images=3200"),
    device: str = typer.Option("auto", "--device"),
    no_progress: bool = typer.Option(False, "--no-progress"),
):
    """Evaluate the shipped toy teacher at 1, 4 and 25 steps on the toy suite (and a student), print the leaderboard."""
    from addbench.demo import run_demo

    name = DISTILLERS.canonical(distiller) if distiller else None
    text = run_demo(out, parse_int_list(steps, "--steps"), device=_device(device), suite=suite, distiller=name,
                    train_overrides=list(set_ or []), progress=not no_progress, log=console.print)
    print(text, end="")


def _usage_error(exc) -> int:
    """A click usage error (unknown option, ``--steps abc`` for an integer) as one ``error:`` line, exit 2; with no
    arguments at all, the help as click shows it."""
    if type(exc).__name__ == "NoArgsIsHelpError" or not hasattr(exc, "format_message"):
        if hasattr(exc, "show"):
            exc.show()
        return getattr(exc, "exit_code", 2)
    ctx = getattr(exc, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    err.print(f"[red]error: {escape(_one_line(exc.format_message()))}{escape(where)}[/red]")
    return 2


# commands kept in their own modules
from addbench.cli_stats import register  # noqa: E402  (compare, elo)
from addbench.cli_arena import register as register_arena  # noqa: E402  (arena: serve, export, auto)
from addbench.cli_report import register as register_report  # noqa: E402  (report)

register(app)
register_arena(app)
register_report(app)


def main() -> None:
    """Exit codes: 0 ok, 2 a user error (one ``error:`` line), 1 an internal error (one line; ADDBENCH_DEBUG=1 for
    the traceback), 130 / 143 interrupted (SIGINT / SIGTERM)."""
    try:
        rc = app(standalone_mode=False)  # click returns the exit code of typer.Exit instead of exiting
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except SystemExit:
        raise
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        raise SystemExit(130) from None
    except typer.TyperException as exc:  # usage errors (typer's click): one line too, exit 2
        raise SystemExit(_usage_error(exc)) from None
    except Exception as exc:  # noqa: BLE001 - the last resort; user errors are AddbenchError, exit 2, above
        raise SystemExit(_internal_error(exc)) from None
    if isinstance(rc, int) and not isinstance(rc, bool) and rc:
        raise SystemExit(rc)


if __name__ == "__main__":
    main()
