"""The toy-world study of the reference distillers: fair tuning on ``toy-val``, then one final run on ``toy-2k``.

    python -m distillers.toy_study tune  --device cuda --out runs/toy-study --jobs 14   # trials, scored on toy-val
    python -m distillers.toy_study final --device cuda --out runs/toy-study --jobs 14   # chosen presets, toy-2k
    python -m distillers.toy_study table --out runs/toy-study --phase tune              # the trial table (Markdown)

Every method gets the same number of trials (``TRIALS``: the preset plus three variations over readout, lr,
real / teacher guidance and loss weights), each trained at ``--scale`` (default 0.25) times the shared toy
budget (``distillers/budget.py``) and scored on ``toy-val`` (captions, seeds and reference images disjoint from
``toy-2k``). The winners become the presets; ``final`` trains the presets at 1x (and ``--scales`` more, for the
budget-scaling table) and scores them once on ``toy-2k``, next to the teacher at 1, 2, 4, 8 and 25 steps.
Training and evaluation both resume: re-running a phase skips what is done. A failed job is reported and the
others go on. Results: ``OUT/<phase>/eval/<suite>/*/record.json`` and ``OUT/<phase>/log_*.txt``.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import subprocess
import sys
from pathlib import Path

# name -> (distiller, overrides). The first trial of each method is its preset; DMDX's ADM trials start from
# the ADP preset's checkpoint of the same phase ("@adp"). Four trials per method, and a second round of four for
# DMD2 (TUNING.md says why and what it costs the comparison). Two pseudo-overrides are the study's own, not the
# trainer's: "@NAME" stands for the checkpoint of the job NAME of the same phase (which then runs first), and
# "frac=F" trains F x the job's budget (a stage of a two-stage recipe: the stages add up to the shared budget).
# DMD2's SDXL 1-step recipe starts from an ODE-pair regressed generator (the "reg" stage: DMD's trainer with the
# DM term off, the same readout and conditioning timestep 399); here that stage takes 0.25 of the budget.
REG = ("reg", "dmd", ["lambda_dm=0", "lambda_reg=1", "frac=0.25"])
STAGES = {"reg": REG}
TRIALS: dict[str, list[tuple[str, str, list[str]]]] = {
    "add": [
        ("add", "add", []),
        ("add-sample", "add", ["readout=sample+ztsnr"]),
        ("add-lr2e-5", "add", ["lr_g=2e-5", "lr_d=4e-5"]),
        ("add-r1", "add", ["r1_gamma=0.1"]),  # γ = 1e-5 was tuned for DINOv2 features: negligible here
    ],
    "dmd": [
        ("dmd", "dmd", []),
        ("dmd-t999", "dmd", ["gen_t=999"]),
        ("dmd-cfg3", "dmd", ["real_guidance=3.0"]),
        ("dmd-cfg1.5", "dmd", ["real_guidance=1.5"]),
    ],
    "dmd2": [
        ("dmd2", "dmd2", []),
        ("dmd2-t999", "dmd2", ["gen_t=999"]),
        ("dmd2-cfg3", "dmd2", ["real_guidance=3.0"]),
        ("dmd2-cfg1.5", "dmd2", ["real_guidance=1.5"]),
        # round 2 (after the 1x run showed the GAN term leading the update: generator grad norm 7.1 vs DMD's 1.6):
        # the regressed init of DMD2's SDXL 1-step recipe, and the GAN weight (0.107 = SDXL's 5e-3 rescaled by the
        # dimension ratio; 5e-3 = SDXL's unscaled; 0.02 between)
        ("dmd2-reg", "dmd2", ["real_guidance=3.0", "init=@reg", "frac=0.75"]),
        ("dmd2-reg-g5e-3", "dmd2", ["real_guidance=3.0", "init=@reg", "frac=0.75", "lambda_gan_g=5e-3"]),
        ("dmd2-reg-g0.02", "dmd2", ["real_guidance=3.0", "init=@reg", "frac=0.75", "lambda_gan_g=0.02"]),
        ("dmd2-g5e-3", "dmd2", ["real_guidance=3.0", "lambda_gan_g=5e-3"]),
    ],
    "dmdx.adp": [
        ("adp", "dmdx.adp", []),
        ("adp-lr3e-4", "dmdx.adp", ["lr_g=3e-4"]),
        ("adp-lr3e-5", "dmdx.adp", ["lr_g=3e-5"]),
        ("adp-vel", "dmdx.adp", ["lambda_velocity=1.0"]),
    ],
    "dmdx.adm": [
        ("adm", "dmdx.adm", ["init=@adp"]),
        ("adm-lr1e-5", "dmdx.adm", ["init=@adp", "lr_g=1e-5"]),
        ("adm-cfg2", "dmdx.adm", ["init=@adp", "real_guidance=[1.5,2.5]"]),
        ("adm-lr1e-7", "dmdx.adm", ["init=@adp", "lr_g=1e-7"]),
    ],
}

# The final table: every preset at 1 step, the 4-step students, and the papers' ablations.
FINAL: list[tuple[str, str, list[str], list[int]]] = [  # name, distiller, overrides, eval step counts
    ("add", "add", [], [1, 4]),  # one ADD student serves 1-4 steps (Sec. 3.1: τ ∈ {τ1..τ4})
    ("dmd", "dmd", [], [1]),
    ("dmd2", "dmd2", [], [1]),
    ("dmd2-4step", "dmd2", ["gen_steps=4", "init=teacher", "frac=1"], [0]),  # 0 = the checkpoint's own sampler;
    # DMD2's 4-step SDXL recipe trains from the teacher (backward simulation), with no regression stage
    ("adp", "dmdx.adp", [], [1, 4]),
    ("adm", "dmdx.adm", ["init=@adp"], [1]),
    ("adm-4step", "dmdx.adm", ["init=@adp", "gen_steps=4"], [0]),
    # ablations: ADD Table 1c/1d (the DMDX Table 4 check, ADP + ADM vs ADP alone, is adm vs adp above)
    ("add-adv0", "add", ["lambda_adv=0"], [1]),
    ("add-randinit", "add", ["init=random"], [1]),
]
TEACHER_STEPS = [1, 2, 4, 8, 25]
ADDBENCH = [sys.executable, "-m", "addbench.cli"]  # the CLI of this interpreter (works without an installed script)


def merge(overrides: list[str], own: list[str]) -> list[str]:
    """``overrides`` then ``own``, where a key in ``own`` replaces the same key in ``overrides``."""
    keys = {o.split("=")[0] for o in own}
    return [o for o in overrides if o.split("=")[0] not in keys] + list(own)


def split_frac(overrides: list[str]) -> tuple[list[str], float]:
    """(the trainer's overrides, the budget fraction of the study's ``frac=F``; 1 without one)."""
    fracs = [float(o.split("=", 1)[1]) for o in overrides if o.startswith("frac=")]
    return [o for o in overrides if not o.startswith("frac=")], (fracs[-1] if fracs else 1.0)


def deps(overrides: list[str]) -> set[str]:
    """The jobs of the same phase whose checkpoints ``overrides`` name (``init=@adp`` -> {"adp"})."""
    return {o.split("@", 1)[1].split("/")[0] for o in overrides if "=@" in o}


def budget(distiller: str, scale: float) -> list[str]:
    """``budget_images`` at ``scale`` x the preset's (the warm-up stays the preset's 50 steps)."""
    from addbench.train.entry import resolve_config
    from addbench.registry import DISTILLERS

    cfg = resolve_config(DISTILLERS.get(distiller), "toy")
    n = max(int(cfg["batch"]), int(round(int(cfg["budget_images"]) * scale / int(cfg["batch"]))) * int(cfg["batch"]))
    return [f"budget_images={n}"]


def sh(cmd: list[str], log: Path) -> bool:
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode == 0


class Study:
    def __init__(self, out: Path, device: str, suite: str, jobs: int):
        self.out, self.device, self.suite, self.jobs = out, device, suite, jobs
        out.mkdir(parents=True, exist_ok=True)

    def train(self, name: str, distiller: str, overrides: list[str], scale: float) -> Path | None:
        run = self.out / "train" / name
        ckpt = run / "checkpoint"
        overrides, frac = split_frac(overrides)
        scale *= frac
        args = [o.split("=@")[0] + "=" + str(self.out / "train" / o.split("=@")[1] / "checkpoint") if "=@" in o else o
                for o in overrides]
        cmd = [*ADDBENCH, "train", distiller, "--base", "toy", "--out", str(run), "--device", self.device,
               "--set", "progress=false", "--set", "tensorboard=false"]
        for o in args + budget(distiller, scale) + self.pairs(distiller):
            cmd += ["--set", o]
        ok = sh(cmd, self.out / f"log_{name}.txt")
        return ckpt if ok and ckpt.is_dir() else None

    def pairs(self, distiller: str) -> list[str]:
        return [f"ode_pairs={self.out.parent / 'odepairs'}"] if distiller in ("dmd", "dmdx.adp") else []

    def eval(self, model: str, name: str, steps: int = 0) -> bool:
        cmd = [*ADDBENCH, "eval", "--model", model, "--suite", self.suite, "--device", self.device,
               "--out", str(self.out / "eval"), "--no-progress"] + (["--steps", str(steps)] if steps else [])
        return sh(cmd, self.out / f"log_{name}.txt")

    def job(self, name, distiller, overrides, scale, steps=(1,), after=()):
        """Wait for the jobs ``after`` (futures), train, then score the checkpoint: step count 0 or 1 = its own
        sampler, n > 1 = ``--steps n``."""
        if any(not f.result().startswith("done") for f in after):
            return f"SKIPPED {name}: a stage it starts from failed"
        if distiller == "teacher":
            return f"{'done' if self.eval('toy', name, steps[0]) else 'FAILED eval'} {name}"
        ckpt = self.train(name, distiller, overrides, scale)
        if ckpt is None:
            return f"FAILED train {name}"
        bad = [s for s in steps if not self.eval(str(ckpt), name, s if s > 1 else 0)]
        return f"{'FAILED eval' if bad else 'done'} {name}"

    def run(self, jobs: list[tuple]) -> list[str]:
        """Jobs in parallel; a job whose overrides name ``@NAME`` (ADM from the ADP checkpoint ``adp``, DMD2 from
        the regression stage ``reg``) starts once job NAME of this phase is done; stages a job needs and that
        ``jobs`` lacks (``STAGES``) are added. Jobs are queued dependencies first, so a waiting job never holds
        a worker its dependency needs."""
        jobs = list(jobs)
        names = {j[0] for j in jobs}
        for j in list(jobs):
            for d in deps(j[2]) - names:
                if (self.out / "train" / d / "checkpoint").is_dir() and d not in STAGES:
                    continue  # trained by an earlier run of this phase: start from it
                if d not in STAGES:
                    raise SystemExit(f"job {j[0]} starts from @{d}: run {d} in this phase first (add it to --only)")
                n, dist, o = STAGES[d]
                jobs.insert(0, (n, dist, o, j[3], (1,)))
                names.add(d)
        order, placed = [], set()
        while len(order) < len(jobs):
            ready = [j for j in jobs if j[0] not in placed and deps(j[2]) & names <= placed]
            if not ready:
                raise SystemExit("the jobs' @ dependencies form a cycle")
            order += ready
            placed |= {j[0] for j in ready}
        futures: dict = {}
        with cf.ThreadPoolExecutor(self.jobs) as pool:
            for j in order:
                futures[j[0]] = pool.submit(self.job, *j, after=[futures[d] for d in deps(j[2]) & names])
            return [f.result() for f in futures.values()]


def fid_of(record: dict) -> float:
    return next(v["value"] for k, v in record["metrics"].items() if k.startswith("toy_fid"))


def winners(tune: Path) -> dict[str, tuple[str, list[str], Path]]:
    """Per method, the trial with the lowest toy-val FID: method -> (trial name, its overrides, its checkpoint).
    The selection rule of the study (TUNING.md); a method with no scored trial keeps its preset."""
    scored = {}
    for rec in (tune / "eval" / "toy-val").glob("*/record.json"):
        r = json.loads(rec.read_text())
        scored[r["model"]["name"].split("@")[0]] = fid_of(r)
    out = {}
    for method, trials in TRIALS.items():
        done = [(scored[n], n, o) for n, _, o in trials if n in scored]
        if done:
            _, n, o = min(done)
            out[method] = (n, [x for x in o if "@adp" not in x], tune / "train" / n / "checkpoint")
    return out


def collect_pairs(out: Path, device: str, n_pairs: int = 0) -> None:
    target = out / "odepairs"
    if (target / "manifest.json").is_file():
        return
    from addbench.bases.loading import load_base
    from addbench.train.data import load_prompts
    from addbench.train.odepairs import collect_ode_pairs
    from distillers.dmd.presets import PRESETS

    p = PRESETS["toy"]
    base = load_base("toy", device=device, dtype="fp32")
    collect_ode_pairs(base, load_prompts(p["prompts"], seed=0), target, n_pairs=n_pairs or int(p["reg_pairs"]),
                      steps=int(p["reg_pair_steps"]), guidance=base.default_sampler.guidance, seed=0, resolution=32,
                      batch_size=256 if device == "cuda" else 16)


def table(root: Path, phase: str) -> str:
    """Markdown table of every record under ``root/phase/eval``: model, NFE, each metric value ± CI half-width."""
    rows, names = [], []
    for rec in sorted((root / phase / "eval").glob("*/*/record.json")):
        r = json.loads(rec.read_text())
        if not r.get("complete", True):
            continue
        m = r["metrics"]
        names = names or [k for k in m]
        cells = []
        for k in names:
            v = m.get(k, {})
            lo, hi = (v.get("ci95") or [None, None])
            cells.append(f"{v['value']:.3g} [{lo:.3g}, {hi:.3g}]" if "value" in v and lo is not None else "")
        rows.append((r["model"].get("name", rec.parent.name), cells))
    head = "| model | " + " | ".join(n.split("[")[0] for n in names) + " |\n|---|" + "---|" * len(names) + "\n"
    return head + "".join(f"| {n} | " + " | ".join(c) + " |\n" for n, c in rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("phase", choices=["tune", "final", "table"])
    ap.add_argument("--out", default="runs/toy-study")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--scale", type=float, default=None, help="budget scale (tune: 0.25, final: 1)")
    ap.add_argument("--only", default="", help="comma-separated trial/run names to run (default: all)")
    ap.add_argument("--teacher", action="store_true", help="also score the teacher at 1, 2, 4, 8, 25 steps")
    ap.add_argument("--scaling", action="store_true", help="final: also score the tune winners (0.25x) on toy-2k")
    ap.add_argument("--pairs", type=int, default=0, help="teacher ODE pairs to collect (default: the DMD preset's)")
    args = ap.parse_args(argv)
    root = Path(args.out)
    if args.phase == "table":
        print(table(root, "tune") if (root / "tune").is_dir() else "", end="")
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    collect_pairs(root, args.device, args.pairs)
    only = set(filter(None, args.only.split(",")))
    if args.phase == "tune":
        study = Study(root / "tune", args.device, "toy-val", args.jobs)
        scale = args.scale or 0.25
        jobs = [(n, d, o, scale, (1,)) for trials in TRIALS.values() for n, d, o in trials if not only or n in only]
    else:
        scale = args.scale or 1.0
        tag = "final" if scale == 1.0 else f"final-x{scale:g}"
        study = Study(root / tag, args.device, "toy-2k", args.jobs)
        best = winners(root / "tune")
        for method, (n, o, _) in best.items():
            print(f"toy-val winner {method}: {n} {' '.join(o)}", flush=True)
        jobs = [(n, d, merge(best.get(d, ("", [], None))[1], o), scale, tuple(st)) for n, d, o, st in FINAL
                if not only or n in only]
        if args.scaling:  # the tune phase's winners (0.25x budget) scored on toy-2k too: the budget-scaling table
            low = Study(root / "final-x0.25", args.device, "toy-2k", args.jobs)
            jobs_low = [(n, ck) for n, _, ck in best.values() if ck.is_dir()]
            with cf.ThreadPoolExecutor(args.jobs) as pool:
                list(pool.map(lambda j: low.eval(str(j[1]), j[0]), jobs_low))
    if args.teacher:
        jobs += [(f"teacher{s}", "teacher", [], 0.0, (s,)) for s in TEACHER_STEPS]
    for line in study.run(jobs):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
