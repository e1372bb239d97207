"""README's main job on the toy world: (optionally train a 1-step student,) evaluate the toy teacher at
1, 4 and 25 steps (+ the student) on the ``toy`` suite, write a sample grid and print the leaderboard.

Everything goes through the public pieces -- ``addbench.train.entry.train``, ``addbench.eval.runner.evaluate``,
``addbench.eval.grid.sample_grid``, ``addbench.eval.tables.leaderboard`` -- so the demo exercises exactly what a
researcher runs. Re-running resumes: finished evaluations and training are skipped.
"""
from __future__ import annotations

from pathlib import Path

GRID_PROMPTS = ["a red circle at the top left on a dark background",
                "a large blue square at the bottom right on a light background",
                "a green triangle in the center on a striped background"]


def run_demo(out: Path, steps: list[int], device: str = "cpu", suite: str = "toy", distiller: str | None = None,
             train_overrides: list[str] | None = None, progress: bool = True, log=print) -> str:
    from addbench.eval.grid import sample_grid
    from addbench.eval.runner import evaluate
    from addbench.eval.tables import leaderboard

    out = Path(out)
    models: list[tuple[str, dict]] = [("toy", {"steps": s}) for s in steps]
    if distiller:
        from addbench.train.entry import train

        log(f"training a 1-step {distiller} student from the toy teacher -> {out / 'train' / distiller}")
        ckpt = train(distiller, "toy", out / "train" / distiller, list(train_overrides or []), False, device=device)
        models.append((str(ckpt), {}))
    for model, overrides in models:
        log(f"evaluating {model} {overrides or ''} on suite {suite}")
        res = evaluate(model, suite, out_dir=out / "eval", device=device, sampler_overrides=overrides, progress=progress)
        log(f"  -> {res.run_dir}")
    grid = out / "samples.png"
    sample_grid("toy", GRID_PROMPTS, [0, 1], grid, steps, device=device)
    log(f"sample grid (rows = {', '.join(map(str, steps))} steps): {grid}")
    text, _ = leaderboard([str(out / "eval" / suite)], [], fmt="md")
    return text
