"""Validation during training: every ``val_every_images``, the current student scored by the harness.

The student (EMA weights when the run exports them) is exported exactly as the final checkpoint would be, to
``RUN/val/checkpoint_<images>/``, and evaluated on ``val_suite`` (default ``toy-val``: tune on a validation split,
never on the suite you report) with the first ``val_limit`` prompts (0 = all). Each metric's value goes into the
step's logs as ``val/<metric name>`` (so into ``metrics.jsonl``, TensorBoard and W&B), and the eval run stays in
``RUN/val/eval/`` with its record. Rank 0 scores; every rank takes part in gathering a sharded student.
"""
from __future__ import annotations

from pathlib import Path

from addbench.train.callbacks import Callback


class Validation(Callback):
    def __init__(self, run_dir: Path, every_images: int, suite: str, limit: int = 0, device=None, is_main=True):
        self.dir = Path(run_dir) / "val"
        self.every, self.suite, self.limit, self.device, self.is_main = every_images, suite, limit, device, is_main
        self._next = every_images

    def on_step(self, state, logs):
        if state.images_seen < self._next:
            return
        self._next = (state.images_seen // self.every + 1) * self.every
        logs.update(self.score(state))

    def score(self, state) -> dict[str, float]:
        from addbench.eval.runner import evaluate
        from addbench.train.checkpoint import export_student
        from addbench.train.loop import final_student

        student = final_student(state, state.distiller.base)  # collective under FSDP2
        if not self.is_main:
            return {}
        network, sampler = state.distiller.student(student)
        cfg = state.cfg
        ckpt = export_student(self.dir / f"checkpoint_{state.images_seen:010d}", network=network, sampler=sampler,
                              base=cfg["base"], distiller=cfg["distiller"], config=cfg)
        import torch

        devices = [torch.device(self.device)] if torch.device(self.device or "cpu").type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # training draws the same numbers with or without validation
            res = evaluate(str(ckpt), self.suite, out_dir=self.dir / "eval", device=str(self.device or "cpu"),
                           limit=self.limit or None, progress=False)
        return {f"val/{m['name']}": float(m["value"]) for m in res.record.get("metrics", {}).values()}
