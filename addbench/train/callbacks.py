"""What the loop calls after each step: loggers, the progress bar, sample grids, collapse detectors.

A callback has ``on_step(state, logs)`` and ``on_end(state)``; ``state`` is the loop's
:class:`~addbench.train.loop.LoopState` (step, images_seen, budget, run_dir, distiller, ...). Loggers
run on rank 0 only; detectors run on every rank (the logs are already averaged over ranks, so all
ranks stop together).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import torch

from addbench.errors import AddbenchError


class TrainingStopped(AddbenchError):
    """The run was stopped by a detector (collapse, NaN); the message says why and at which step."""


class TrainingInterrupted(SystemExit):
    """SIGINT / SIGTERM stopped the run (:class:`~addbench.train.loop.StopOnSignal`); uncaught, the process exits
    with 128 + the signal number (130, 143), as a shell reports a process killed by that signal."""

    def __init__(self, signum: int):
        super().__init__(128 + int(signum))
        self.signum = int(signum)


class Callback:
    def on_step(self, state, logs: dict[str, float]) -> None: ...

    def on_end(self, state) -> None: ...


class NonFiniteDetector(Callback):
    def on_step(self, state, logs):
        bad = [k for k, v in logs.items() if not math.isfinite(v)]
        if bad:
            raise TrainingStopped(f"step {state.step}: {', '.join(bad)} is NaN/inf; lower the learning rate or "
                                  f"check the loss (last good state in {state.run_dir / 'state'})")


class CollapseDetector(Callback):
    """Stops when any logged ``*image_std`` (per-batch std of generated images) falls below ``threshold``."""

    def __init__(self, threshold: float):
        self.threshold = threshold

    def on_step(self, state, logs):
        for k, v in logs.items():
            if k.endswith("image_std") and v < self.threshold:
                raise TrainingStopped(f"step {state.step}: {k} = {v:.3g} < collapse_std = {self.threshold:g}: "
                                      "the generator collapsed to a constant image")


def read_metrics(path: Path) -> tuple[list[dict], list[int]]:
    """The records of a ``metrics.jsonl`` and the numbers (from 1) of the lines that are not one (a line torn by
    a killed run, or damaged): those are skipped."""
    records, bad = [], []
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    for n, ln in enumerate(text.splitlines(), 1):
        if not ln.strip():
            continue
        try:
            rec = json.loads(ln)
        except ValueError:
            rec = None
        if isinstance(rec, dict) and isinstance(rec.get("step"), int):
            records.append(rec)
        else:
            bad.append(n)
    return records, bad


class JsonlLogger(Callback):
    """``metrics.jsonl``: one line per logged step. On resume the file is rewritten with the lines up to the resumed
    step: lines past it are dropped, and so is a line torn by the killed run (with a note on stderr)."""

    def __init__(self, run_dir: Path, every_images: int, resume_step: int = 0):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.every = every_images
        self._next = 0
        if self.path.exists():
            records, bad = read_metrics(self.path)
            if bad:
                print(f"{self.path}: dropped {len(bad)} unreadable line(s) ({', '.join(map(str, bad[:5]))}), "
                      "torn by the interrupted run", file=sys.stderr, flush=True)
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in records if r["step"] <= resume_step))
            os.replace(tmp, self.path)

    def on_step(self, state, logs):
        if state.images_seen < self._next and state.images_seen < state.budget:
            return
        self._next = state.images_seen + self.every
        rec = {"step": state.step, "images_seen": state.images_seen, "time": round(time.time(), 3), **logs}
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")


class TensorBoardLogger(Callback):
    def __init__(self, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.w = SummaryWriter(str(Path(run_dir) / "tb"))

    def on_step(self, state, logs):
        for k, v in logs.items():
            self.w.add_scalar(k, v, state.images_seen)

    def on_end(self, state):
        self.w.close()


def wandb_run_id(run_dir: Path) -> str:
    """The W&B run id of a training run: made once, kept in ``RUN/wandb_id.txt``, read back on every resume."""
    import re
    import secrets

    path = Path(run_dir) / "wandb_id.txt"
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    run_id = f"{re.sub(r'[^A-Za-z0-9_-]', '-', Path(run_dir).name)[:40]}-{secrets.token_hex(4)}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return run_id


class WandbLogger(Callback):
    def __init__(self, run_dir: Path, cfg: dict):
        import wandb

        self.run = wandb.init(dir=str(run_dir), config=dict(cfg), name=Path(run_dir).name, id=wandb_run_id(run_dir),
                              resume="allow")  # a resumed training run continues the same W&B run

    def on_step(self, state, logs):
        self.run.log({**logs, "images_seen": state.images_seen}, step=state.step)

    def on_end(self, state):
        self.run.finish()


class ProgressBar(Callback):
    """rich progress in images seen, with ETA."""

    def __init__(self, total: int, start: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.p = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("images"),
                          TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=False)
        self.task = self.p.add_task("train", total=total, completed=start, info="")
        self.p.start()

    def on_step(self, state, logs):
        info = " ".join(f"{k}={v:.4g}" for k, v in list(logs.items())[:4])
        self.p.update(self.task, completed=state.images_seen, info=info)

    def on_end(self, state):
        self.p.stop()


class SampleGrid(Callback):
    """Every ``every_images``, the plug-in's ``preview`` images as ``samples/grid_<images>.png``."""

    def __init__(self, run_dir: Path, every_images: int, prompts: list[str], seed: int = 0):
        self.dir = Path(run_dir) / "samples"
        self.every, self.prompts, self.seed = every_images, prompts, seed
        self._next = every_images

    def on_step(self, state, logs):
        if state.images_seen < self._next:
            return
        self._next = (state.images_seen // self.every + 1) * self.every
        self.write(state)

    def write(self, state):
        try:
            with torch.no_grad():
                imgs = state.distiller.preview(self.prompts, self.seed)
        except NotImplementedError:
            return
        save_grid(imgs, self.dir / f"grid_{state.images_seen:010d}.png")


def save_grid(images: torch.Tensor, path: Path, ncol: int | None = None) -> Path:
    """Images in [-1, 1] (N,3,H,W) tiled into one PNG; clips (N,F,3,H,W) one per row, frames left to right."""
    from PIL import Image

    if images.ndim == 5:
        ncol, images = images.shape[1], images.flatten(0, 1)
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    n, c, h, w = x.shape
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    grid = torch.zeros(c, nrow * h, ncol * w, dtype=torch.uint8)
    for i in range(n):
        r, q = divmod(i, ncol)
        grid[:, r * h:(r + 1) * h, q * w:(q + 1) * w] = x[i]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(path)
    return path


def loss_curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Read ``metrics.jsonl`` back as {key: [(images_seen, value), ...]} (plot it however you like)."""
    path = Path(run_dir) / "metrics.jsonl"
    records, bad = read_metrics(path)
    if bad:
        warnings.warn(f"{path}: skipped {len(bad)} unreadable line(s) ({', '.join(map(str, bad[:5]))}), e.g. one "
                      "torn by a killed run", stacklevel=2)
    out: dict[str, list] = {}
    for rec in records:
        for k, v in rec.items():
            if k not in ("step", "images_seen", "time"):
                out.setdefault(k, []).append((rec["images_seen"], v))
    return out
