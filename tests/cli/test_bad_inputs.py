"""Fuzz-style table of malformed inputs fed to the CLI (docs/errors.md, "Errors and validation").

Every case must end in exit code 2 with exactly one ``error:`` line on stderr, no traceback, no file created or
changed anywhere under the test's tree (the out dirs, the prompt cache, a finished eval run and a good cached
prompt set included). The bulk runs in this process through ``addbench.cli.main`` (the real entry point: its
last-resort guard included); a handful run in real subprocesses to prove the end-to-end behaviour.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import fakes  # tests/eval/fakes.py (tests/cli/conftest.py puts it on the path)
import pytest

from addbench import cli

TOY_PIPE = Path(cli.__file__).parent / "toy" / "assets" / "base"
QUIET = {"OMP_NUM_THREADS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error",
         "DIFFUSERS_VERBOSITY": "error", "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
PARTI = "Prompt\tCategory\tChallenge\tNote\n" + "".join(f"prompt {i}\tBasic\tBasic\t\n" for i in range(3))


def invoke(args: list[str]) -> tuple[int, str, str]:
    """``addbench ARGS`` in this process through ``cli.main``: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old = sys.argv
    sys.argv = ["addbench", *[str(a) for a in args]]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old
    return code, out.getvalue(), err.getvalue()


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` (links not followed) -> a hash of its content (files) or its kind."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            snap[os.path.relpath(os.path.join(dirpath, d), root)] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            if os.path.islink(p):
                snap[os.path.relpath(p, root)] = "link:" + os.readlink(p)
            else:
                with open(p, "rb") as fh:
                    snap[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return snap


def _link_copy(src: Path, dst: Path) -> Path:
    """A copy of a model folder whose files are symlinks (cheap); damage a file by replacing its link."""
    for p in src.rglob("*"):
        q = dst / p.relative_to(src)
        if p.is_dir():
            q.mkdir(parents=True, exist_ok=True)
        else:
            q.parent.mkdir(parents=True, exist_ok=True)
            q.symlink_to(p.resolve())
    return dst


def _replace(path: Path, data: bytes | str) -> None:
    path.unlink()
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def _suite(path: Path, name: str, prompts: str, extra: str = "metrics: [toy_fid]\n") -> Path:
    path.write_text(f"name: {name}\nversion: 1\nprompts:\n{prompts}seeds: [0]\n{extra}")
    return path


@pytest.fixture(autouse=True)
def _cache():
    """This module's cache is the world's (ADDBENCH_CACHE under the snapshot root), not one per test."""
    yield


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tree every case runs in: models (whole and damaged), suites, prompt sources, a good cached prompt set
    and a finished toy eval run."""
    root = tmp_path_factory.mktemp("fuzz")
    w = root / "work"
    (w / "a" / "b" / "c").mkdir(parents=True)
    out = w / "a" / "b" / "c" / "out"  # ../../../X from here still lands inside root (and the snapshot)
    cache = root / "cache"
    env = {"ADDBENCH_CACHE": str(cache), **QUIET}
    old_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    old_cwd = os.getcwd()
    os.chdir(w)
    m = root / "models"
    pipe = _link_copy(TOY_PIPE, m / "pipe")
    ck = m / "ck"
    _link_copy(TOY_PIPE / "unet", ck / "network")
    meta = {"format": "addbench-checkpoint/1", "base": "toy", "sampler": {"steps": 1, "guidance": 1.0},
            "distiller": "x", "config": {}}
    (ck / "addbench_checkpoint.json").write_text(json.dumps(meta))
    unet = "unet/diffusion_pytorch_model.safetensors"
    size = (TOY_PIPE / unet).stat().st_size
    models = {}
    for name, base, rel, data in [
        ("p_index_garbage", pipe, "model_index.json", "{garbage"),
        ("p_index_list", pipe, "model_index.json", "[1, 2]"),
        ("p_index_empty", pipe, "model_index.json", ""),
        ("p_index_wrong_type", pipe, "model_index.json", json.dumps({"_class_name": "FluxPipeline"})),
        ("p_config_garbage", pipe, "unet/config.json", b"\x00\xff\xfe binary"),
        ("p_weights_truncated", pipe, unet, (TOY_PIPE / unet).read_bytes()[: size // 2]),
        ("p_weights_tiny", pipe, unet, b"\x01\x02"),
        ("p_scheduler_garbage", pipe, "scheduler/scheduler_config.json", "{\"a\": "),
        ("c_meta_garbage", ck, "addbench_checkpoint.json", "not json at all"),
        ("c_meta_list", ck, "addbench_checkpoint.json", "[]"),
        ("c_meta_no_base", ck, "addbench_checkpoint.json", json.dumps({**meta, "base": None})),
        ("c_meta_bad_sampler", ck, "addbench_checkpoint.json", json.dumps({**meta, "sampler": {"steps": "x" * 3,
                                                                                             "bogus": 1} | {"guidance": []}})),
        ("c_config_bad", ck, "network/config.json", json.dumps({"_class_name": "UNet2DConditionModel",
                                                                 "block_out_channels": "x"})),
        ("c_weights_truncated", ck, "network/diffusion_pytorch_model.safetensors",
         (TOY_PIPE / unet).read_bytes()[:100]),
    ]:
        d = m / name
        if base is pipe:
            _link_copy(TOY_PIPE, d)
        else:
            _link_copy(TOY_PIPE / "unet", d / "network")
            (d / "addbench_checkpoint.json").write_text(json.dumps(meta))
        _replace(d / rel, data)
        models[name] = d
    (m / "empty").mkdir()
    (m / "file.txt").write_text("not a model")
    models.update(pipe=pipe, ck=ck, empty=m / "empty", file=m / "file.txt")

    s = root / "suites"
    s.mkdir()
    suites = {
        "traversal": _suite(s / "trav.yaml", "../../../../X", "  name: trav\n  format: inline\n  items: [a cat]\n"),
        "abs": _suite(s / "abs.yaml", "/tmp/X", "  name: absn\n  format: inline\n  items: [a cat]\n"),
        "unicode": _suite(s / "uni.yaml", "süite✓", "  name: uni\n  format: inline\n  items: [a cat]\n"),
        "pset_traversal": _suite(s / "ptrav.yaml", "ptrav", "  name: ../../../X\n  format: parti_tsv\n"),
        "parti": _suite(s / "parti.yaml", "fz-parti",
                        "  name: fz-parti\n  format: parti_tsv\n  expected: {rows: 3}\n  selection: {rule: all}\n"),
        "fin": _suite(s / "fin.yaml", "fz-fin", "  name: fz-fin\n  format: inline\n  items: [a red circle, a blue "
                      "square]\n", "generation_dtype: fp32\nsampler: {height: 32, width: 32}\nmetrics: [fake_brightness]\n"),
        "badcache": _suite(s / "badcache.yaml", "fz-badcache", "  name: fz-badcache\n  format: parti_tsv\n"),
        "coco": _suite(s / "coco.yaml", "fz-coco",
                       "  name: fz-coco\n  format: coco_captions\n  selection: {rule: first_images, n: 2}\n"),
    }
    (s / "empty.yaml").write_text("")
    (s / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (s / "list.yaml").write_text("- a\n- b\n")
    suites.update(empty=s / "empty.yaml", binary=s / "binary.yaml", list=s / "list.yaml")

    src = root / "sources"
    src.mkdir()
    (src / "parti.tsv").write_text(PARTI)
    (src / "parti_cut.tsv").write_text(PARTI[:-4])  # cut inside the last row: the row count still matches
    (src / "parti_cut_more.tsv").write_text(PARTI.rsplit("\t", 2)[0])
    coco = {"annotations": [{"image_id": 1, "id": 10, "caption": "a cat"}, {"image_id": 2, "id": 11, "caption": "a dog"}]}
    (src / "coco_dup.json").write_text(json.dumps({"annotations": coco["annotations"] + [
        {"image_id": 3, "id": 10, "caption": "a fox"}]}))
    (src / "coco_strid.json").write_text(json.dumps({"annotations": [
        {"image_id": "one", "id": 10, "caption": "a cat"}, {"image_id": 2, "id": 11, "caption": "a dog"}]}))
    (src / "coco_floatid.json").write_text(json.dumps({"annotations": [
        {"image_id": 1, "id": 10.5, "caption": "a cat"}, {"image_id": 2, "id": 11, "caption": "a dog"}]}))
    (src / "coco_boolid.json").write_text(json.dumps({"annotations": [
        {"image_id": True, "id": 10, "caption": "a cat"}, {"image_id": 2, "id": 11, "caption": "a dog"}]}))
    (src / "coco_emptycap.json").write_text(json.dumps({"annotations": [
        {"image_id": 1, "id": 10, "caption": "  "}, {"image_id": 2, "id": 11, "caption": "a dog"}]}))
    (src / "empty.json").write_text("")
    (src / "garbage.bin").write_bytes(os.urandom(4096))
    (src / "binary_prompts.txt").write_bytes(b"\xff\xfe\x00\x80 not utf-8 \xc3\x28\n")
    (src / "adir").mkdir()
    sources = {p.stem if p.is_file() else p.name: p for p in src.iterdir()}

    # a good cached prompt set and a finished eval run: no refused command may change them
    code, o, e = invoke(["prompts", "build", suites["parti"], "--from", src / "parti.tsv"])
    assert code == 0, e
    (cache / "prompts" / "fz-badcache.jsonl").write_bytes(b"\x00\xff garbage\n{\"prompt\": ")  # a damaged cache
    fakes.register()
    code, o, e = invoke(_eval({"out": out, "suites": suites}, "--steps", "1"))
    assert code == 0, e
    finished = next(out.glob("fz-fin/*/record.json")).parent
    yield dict(root=root, out=out, models=models, suites=suites, sources=sources, finished=finished,
               cache=cache / "prompts", afile=m / "file.txt")
    os.chdir(old_cwd)
    for k, v in old_env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


# ---- the table: (id, args built from the world, a fragment the error line must hold) --------------------------
def _eval(w, *extra, model="toy", suite=None):
    return ["eval", "--model", model, "--suite", suite or w["suites"]["fin"], "--out", w["out"], "--no-progress", "--device", "cpu", *extra]


def _samples(w, *extra, model="toy", grid=None):
    return ["samples", "--model", model, "-p", "a red circle", "--grid", grid or w["out"] / "g.png", *extra]


def _train(w, *sets, extra=()):
    return ["train", "dmd2", "--base", "toy", "--out", w["out"] / "train", *[a for s in sets for a in ("--set", s)],
            *extra]


def _latency(w, *extra):
    return ["latency", "--base", "toy", "--random-weights", "--device", "cpu", *extra]


def _build(w, suite, source):
    return ["prompts", "build", w["suites"][suite], "--from", w["sources"][source]]


CASES = [
    # eval: every numeric flag with zero / negative / nan / inf / garbage
    ("eval-steps-0", lambda w: _eval(w, "--steps", "0"), "--steps 0: must be an integer >= 1"),
    ("eval-steps-neg", lambda w: _eval(w, "--steps", "-1"), "--steps -1"),
    ("eval-steps-huge", lambda w: _eval(w, "--steps", str(10**20)), "<= 10000"),
    ("eval-steps-text", lambda w: _eval(w, "--steps", "abc"), "--steps"),
    ("eval-guidance-nan", lambda w: _eval(w, "--guidance", "nan"), "--guidance nan"),
    ("eval-guidance-inf", lambda w: _eval(w, "--guidance", "inf"), "--guidance inf"),
    ("eval-guidance-neginf", lambda w: _eval(w, "--guidance", "-inf"), "--guidance -inf"),
    ("eval-guidance-neg", lambda w: _eval(w, "--guidance", "-2"), "--guidance -2"),
    ("eval-limit-0", lambda w: _eval(w, "--limit", "0"), "--limit 0: must be an integer >= 1"),
    ("eval-limit-neg", lambda w: _eval(w, "--limit", "-5"), "--limit -5"),
    ("eval-batch-0", lambda w: _eval(w, "--batch-size", "0"), "--batch-size 0"),
    ("eval-batch-neg", lambda w: _eval(w, "--batch-size", "-3"), "--batch-size -3"),
    ("eval-score-batch-0", lambda w: _eval(w, "--score-batch", "0"), "--score-batch"),
    ("eval-device-cuda99", lambda w: _eval(w, "--device", "cuda:99"), "--device cuda:99"),
    ("eval-device-garbage", lambda w: _eval(w, "--device", "tpu"), "--device tpu"),
    ("eval-dtype", lambda w: _eval(w, "--dtype", "fp8"), "--dtype fp8"),
    ("eval-out-file", lambda w: _eval(w) + ["--out", w["afile"]], "not a folder"),
    ("eval-out-under-file", lambda w: _eval(w) + ["--out", w["afile"] / "sub"], "is a file"),
    ("eval-run-dir-file", lambda w: _eval(w, "--run-dir", w["afile"]), "--run-dir"),
    ("eval-metric-malformed", lambda w: _eval(w, "--metric", "fid=1"), "METRIC.KEY=VALUE"),
    ("eval-unknown-option", lambda w: _eval(w, "--stepz", "1"), "No such option"),
    # suites: names that become paths, broken files
    ("suite-name-traversal", lambda w: _eval(w, suite=w["suites"]["traversal"]), "must be a safe name"),
    ("suite-name-absolute", lambda w: _eval(w, suite=w["suites"]["abs"]), "must be a safe name"),
    ("suite-name-unicode", lambda w: _eval(w, suite=w["suites"]["unicode"]), "must be a safe name"),
    ("suite-empty-file", lambda w: _eval(w, suite=w["suites"]["empty"]), "suite"),
    ("suite-binary-file", lambda w: _eval(w, suite=w["suites"]["binary"]), "suite"),
    ("suite-list-file", lambda w: _eval(w, suite=w["suites"]["list"]), "mapping"),
    ("suite-missing-file", lambda w: _eval(w, suite="nope/missing.yaml"), "does not exist"),
    ("suite-unknown", lambda w: _eval(w, suite="../../etc"), "unknown suite"),
    # models: missing, wrong type, damaged files
    ("model-missing", lambda w: _eval(w, model=w["root"] / "no-such-model"), "not found"),
    ("model-is-file", lambda w: _eval(w, model=w["models"]["file"]), "not found"),
    ("model-empty-dir", lambda w: _eval(w, model=w["models"]["empty"]), "model_index.json"),
    *[(f"model-{k}", (lambda k: lambda w: _eval(w, "--steps", "1", model=w["models"][k]))(k), frag)
      for k, frag in [("p_index_garbage", "model_index.json: not readable JSON"),
                      ("p_index_list", "must hold a JSON object"),
                      ("p_index_empty", "model_index.json: not readable JSON"),
                      ("p_index_wrong_type", "unsupported pipeline 'FluxPipeline'"),
                      ("p_config_garbage", "unet/config.json"),
                      ("p_weights_truncated", "(truncated)"),
                      ("p_weights_tiny", "too short"),
                      ("p_scheduler_garbage", "scheduler_config.json"),
                      ("c_meta_garbage", "addbench_checkpoint.json is not readable JSON"),
                      ("c_meta_list", "must hold a JSON object"),
                      ("c_meta_no_base", "'base' must name the base model"),
                      ("c_meta_bad_sampler", "bad 'sampler'"),
                      ("c_config_bad", "cannot load"),
                      ("c_weights_truncated", "diffusion_pytorch_model.safetensors")]],
    # samples
    ("samples-steps-0", lambda w: _samples(w, "--steps", "0"), "--steps 0: must be an integer >= 1"),
    ("samples-steps-neg-in-list", lambda w: _samples(w, "--steps", "1,-1"), "--steps -1"),
    ("samples-steps-empty", lambda w: _samples(w, "--steps", ","), "--steps"),
    ("samples-seeds-neg", lambda w: _samples(w, "--seeds", "-1"), "--seeds -1"),
    ("samples-seeds-float", lambda w: _samples(w, "--seeds", "1.5"), "--seeds"),
    ("samples-seeds-huge", lambda w: _samples(w, "--seeds", str(2**70)), "--seeds"),
    ("samples-guidance-nan", lambda w: _samples(w, "--guidance", "nan"), "--guidance nan"),
    ("samples-guidance-inf", lambda w: _samples(w, "--guidance", "inf"), "--guidance inf"),
    ("samples-grid-suffix", lambda w: _samples(w, grid=w["out"] / "grid.txt"), "--grid"),
    ("samples-grid-dir", lambda w: _samples(w, grid=w["out"]), "is a folder"),
    ("samples-grid-under-file", lambda w: _samples(w, grid=w["afile"] / "g.png"), "is a file"),
    ("samples-empty-prompt", lambda w: ["samples", "-m", "toy", "-p", " ", "--grid", w["out"] / "g.png"], "--prompts"),
    ("samples-binary-prompt-file",
     lambda w: ["samples", "-m", "toy", "-p", w["sources"]["binary_prompts"], "--grid", w["out"] / "g.png"], "UTF-8"),
    ("samples-device", lambda w: _samples(w, "--device", "cuda:99"), "--device cuda:99"),
    ("samples-dtype", lambda w: _samples(w, "--dtype", "int8"), "--dtype int8"),
    ("samples-damaged-model", lambda w: _samples(w, model=w["models"]["p_weights_truncated"]), "truncated"),
    # latency
    ("latency-res-0", lambda w: _latency(w, "--res", "0"), "--res 0"),
    ("latency-nfe-0", lambda w: _latency(w, "--nfe", "1,0"), "--nfe 0"),
    ("latency-batch-0", lambda w: _latency(w, "--batch", "0"), "--batch 0"),
    ("latency-runs-neg", lambda w: _latency(w, "--runs", "-1"), "--runs -1"),
    ("latency-guidance-nan", lambda w: _latency(w, "--guidance", "nan"), "--guidance nan"),
    ("latency-out-dir", lambda w: _latency(w, "--out", w["out"]), "is a folder"),
    ("latency-model-and-base", lambda w: _latency(w, "--model", "toy"), "exactly one of"),
    # train: every numeric key with a bad sign / nan / inf, booleans, choices, unknown keys
    ("train-lr-neg", lambda w: _train(w, "lr_g=-1"), "lr_g=-1.0: must be a finite number > 0"),
    ("train-lr-nan", lambda w: _train(w, "lr_g=nan"), "lr_g=nan"),
    ("train-lr-inf", lambda w: _train(w, "lr_fake=inf"), "lr_fake=inf"),
    ("train-lr-zero-engine", lambda w: _train(w, "lr=0"), "lr=0.0"),
    ("train-batch-0", lambda w: _train(w, "batch=0"), "batch=0"),
    ("train-budget-neg", lambda w: _train(w, "budget_images=-64"), "budget_images=-64"),
    ("train-budget-below-batch", lambda w: _train(w, "budget_images=3"), "budget_images=3"),
    ("train-master-maybe", lambda w: _train(w, "master_weights=maybe", extra=["--dry-run"]), "master_weights='maybe'"),
    ("train-bool-maybe", lambda w: _train(w, "grad_checkpointing=maybe", extra=["--dry-run"]), "not a boolean"),
    ("train-betas-one", lambda w: _train(w, "betas=0.9,1.0", extra=["--dry-run"]), "betas="),
    ("train-betas-three", lambda w: _train(w, "betas=0.1,0.2,0.3", extra=["--dry-run"]), "betas="),
    ("train-weight-decay-neg", lambda w: _train(w, "weight_decay=-0.1", extra=["--dry-run"]), "weight_decay=-0.1"),
    ("train-ema-nan", lambda w: _train(w, "ema=nan", extra=["--dry-run"]), "ema=nan"),
    ("train-eps-0", lambda w: _train(w, "eps=0", extra=["--dry-run"]), "eps=0.0"),
    ("train-precision", lambda w: _train(w, "precision=fp8", extra=["--dry-run"]), "precision='fp8'; use one of"),
    ("train-compile", lambda w: _train(w, "compile=everything", extra=["--dry-run"]), "compile="),
    ("train-seed-float", lambda w: _train(w, "seed=1.5", extra=["--dry-run"]), "not an integer"),
    ("train-lambda-neg", lambda w: _train(w, "lambda_dm=-1", extra=["--dry-run"]), "lambda_dm=-1.0"),
    ("train-steps-0", lambda w: _train(w, "gen_steps=0", extra=["--dry-run"]), "gen_steps=0"),
    ("train-added-lr-nan", lambda w: _train(w, "+lr_extra=nan", extra=["--dry-run"]), "lr_extra=nan"),
    ("train-unknown-key", lambda w: _train(w, "lrr=1", extra=["--dry-run"]), "unknown config key"),
    ("train-no-equals", lambda w: _train(w, "lr", extra=["--dry-run"]), "KEY=VALUE"),
    ("train-out-file", lambda w: ["train", "dmd2", "--base", "toy", "--out", w["afile"]], "not a folder"),
    ("train-device", lambda w: _train(w, extra=["--device", "cuda:99"]), "--device cuda:99"),
    ("train-unknown-distiller", lambda w: ["train", "../../x", "--base", "toy", "--dry-run"], "unknown distiller"),
    # prompt sets: names that become paths, truncated / malformed official files; the good cached set survives
    ("prompts-name-traversal", lambda w: ["prompts", "build", w["suites"]["pset_traversal"], "--from",
                                          w["sources"]["parti"]], "must be a safe name"),
    ("prompts-parti-cut-last-row", lambda w: _build(w, "parti", "parti_cut"), "line 4 has"),
    ("prompts-parti-cut-more", lambda w: _build(w, "parti", "parti_cut_more"), "truncated"),
    ("prompts-parti-binary", lambda w: _build(w, "parti", "garbage"), "not a readable TSV"),
    ("prompts-parti-empty", lambda w: _build(w, "parti", "empty"), "expected TSV columns"),
    ("prompts-parti-dir", lambda w: _build(w, "parti", "adir"), "a folder"),
    ("prompts-coco-dup-ids", lambda w: _build(w, "coco", "coco_dup"), "appears twice"),
    ("prompts-coco-str-ids", lambda w: _build(w, "coco", "coco_strid"), "expected an integer"),
    ("prompts-coco-float-ids", lambda w: _build(w, "coco", "coco_floatid"), "expected an integer"),
    ("prompts-coco-bool-ids", lambda w: _build(w, "coco", "coco_boolid"), "expected an integer"),
    ("prompts-coco-empty-caption", lambda w: _build(w, "coco", "coco_emptycap"), "empty caption"),
    ("prompts-coco-empty-file", lambda w: _build(w, "coco", "empty"), "maybe truncated"),
    ("prompts-coco-binary", lambda w: _build(w, "coco", "garbage"), "maybe truncated"),
    ("prompts-missing-source", lambda w: ["prompts", "build", w["suites"]["parti"], "--from", w["root"] / "nope"],
     "does not exist"),
    ("prompts-show-damaged-cache", lambda w: ["prompts", "show", w["suites"]["badcache"]], "not a valid prompt-set"),
    ("eval-damaged-prompt-cache", lambda w: _eval(w, "--steps", "1", suite=w["suites"]["badcache"]),
     "not a valid prompt-set"),
    ("prompts-show-n-neg", lambda w: ["prompts", "show", w["suites"]["parti"], "-n", "-1"], "-n -1"),
]


def _check(world, args, frag):
    w = world
    before = snapshot(w["root"])
    code, out, err = invoke(args(w) if callable(args) else args)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in out + err
    assert frag in lines[0], lines[0]
    assert snapshot(w["root"]) == before, "a refused command created or changed files"
    return lines[0]


def test_bad_inputs_fail_in_one_line_and_touch_nothing(world):
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)
    finished = snapshot(world["finished"])
    cached = (world["cache"] / "fz-parti.jsonl").read_bytes()
    failures, outcomes = [], {"exit2-one-line": 0, "guard": 0, "traceback": 0, "other": 0}
    for cid, args, frag in CASES:
        try:
            _check(world, args, frag)
            outcomes["exit2-one-line"] += 1
        except AssertionError as exc:
            text = str(exc)
            outcomes["guard" if "internal error" in text else "traceback" if "Traceback" in text else "other"] += 1
            failures.append(f"{cid}: {text[:400]}")
    print(f"\n{len(CASES)} bad-input cases: {outcomes}")
    assert not failures, "\n".join(failures)
    assert snapshot(world["finished"]) == finished  # nothing finished changed
    assert (world["cache"] / "fz-parti.jsonl").read_bytes() == cached  # the good prompt set was not replaced
    assert not any(world["root"].rglob("X*")), "a name escaped its root"


def test_device_cuda_without_gpu(world):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    _check(world, lambda w: _eval(w, "--device", "cuda"), "no CUDA GPU is available")


def test_guard_turns_an_unexpected_exception_into_one_line(world, monkeypatch):
    import addbench.suites

    def boom():
        raise ZeroDivisionError("boom")
    monkeypatch.setattr(addbench.suites, "describe_suites", boom)
    code, out, err = invoke(["ls", "suites"])
    assert code == 1 and "Traceback" not in err
    assert err.strip() == ("error: internal error (ZeroDivisionError: boom); please report with ADDBENCH_DEBUG=1 "
                           "for the traceback")
    monkeypatch.setenv("ADDBENCH_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        invoke(["ls", "suites"])


SUBPROCESS_CASES = ["eval-steps-0", "train-master-maybe", "samples-damaged-model",
                    "prompts-parti-cut-last-row", "eval-unknown-option"]


def test_bad_inputs_end_to_end_in_subprocesses(world):
    """A few cases through ``python -m addbench.cli``: the exit code, one stderr line, no traceback."""
    env = {**os.environ, **QUIET}
    for cid, args, frag in [c for c in CASES if c[0] in SUBPROCESS_CASES]:
        before = snapshot(world["root"])
        r = subprocess.run([sys.executable, "-m", "addbench.cli", *[str(a) for a in args(world)]], env=env,
                           capture_output=True, text=True, timeout=120, cwd=world["root"] / "work")
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2, (cid, r.returncode, r.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and frag in lines[0], (cid, r.stderr)
        assert "Traceback" not in r.stdout + r.stderr
        assert snapshot(world["root"]) == before, cid
