"""The budget-scaling table and plot of the toy study, from the committed toy-2k records.

    python -m distillers.toy_scaling --out docs/toy_budget_scaling.png   # prints the Markdown table

Reads ``leaderboards/runs/toy-2k-x0.25``, ``toy-2k`` and ``toy-2k-x4`` (the same presets trained at 0.25x, 1x and 4x
the shared budget of ``distillers/BUDGET.md``, 76,800 generated images at 1x) and plots toy-2k FID against images
seen per student, beside the teacher's FID at 1, 2, 4 and 25 steps.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from distillers.toy_study import TRIALS, fid_of

RUNS = Path(__file__).resolve().parents[1] / "leaderboards" / "runs"
SCALES = {"toy-2k-x0.25": 0.25, "toy-2k": 1.0, "toy-2k-x4": 4.0}
IMAGES_1X = 76_800
# trial name -> the method row it belongs to (the 0.25x records are the toy-val winners: "adp-vel", ...)
METHOD_OF = {n: n.split("-")[0] for trials in TRIALS.values() for n, _, _ in trials}
LABEL = {"add": "ADD", "dmd": "DMD", "dmd2": "DMD2", "adp": "DMDX ADP", "adm": "DMDX ADP + ADM"}


def series() -> tuple[dict[str, dict[float, float]], dict[int, float]]:
    """(student label -> {scale: FID}, teacher steps -> FID) from the committed records."""
    students: dict[str, dict[float, float]] = {}
    teacher: dict[int, float] = {}
    for folder, scale in SCALES.items():
        for rec in sorted((RUNS / folder).glob("*/record.json")):
            r = json.loads(rec.read_text())
            name, _, sampler = r["model"]["name"].partition("@")
            steps = int(sampler.split("step")[0])
            if name == "toy":
                teacher[steps] = fid_of(r)
                continue
            if name.startswith(("add-adv0", "add-randinit")):  # the ablations are not budget points
                continue
            method = METHOD_OF.get(name, name.split("-")[0])
            four = steps == 4 or name.endswith("-4step")
            label = f"{LABEL.get(method, method)}, {'4' if four else '1'}-step"
            students.setdefault(label, {})[scale] = fid_of(r)
    return students, teacher


def table(students: dict[str, dict[float, float]]) -> str:
    head = "| student | " + " | ".join(f"{s:g}x ({int(s * IMAGES_1X):,} images)" for s in SCALES.values())
    rows = [head + " |", "|---|" + "---|" * len(SCALES)]
    for label in sorted(students):
        cells = [f"{students[label][s]:.1f}" if s in students[label] else "" for s in SCALES.values()]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def plot(students: dict[str, dict[float, float]], teacher: dict[int, float], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for label in sorted(students):
        pts = sorted(students[label].items())
        ax.plot([s * IMAGES_1X for s, _ in pts], [f for _, f in pts], "o-" if "1-step" in label else "s--",
                label=label)
    for steps, fid in sorted(teacher.items()):
        if steps in (1, 2, 4, 25):
            ax.axhline(fid, color="grey", lw=0.8, ls=":")
            ax.text(IMAGES_1X * 4.3, fid, f"teacher {steps} step{'s' * (steps > 1)}", va="center", fontsize=7)
    ax.set(xscale="log", yscale="log", xlabel="generated images seen in training", ylabel="toy-2k FID (fp32)",
           title="Toy world: FID vs training budget (0.25x, 1x, 4x)")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="PNG to write (default: only print the table)")
    args = ap.parse_args(argv)
    students, teacher = series()
    print(table(students), end="")
    if args.out:
        plot(students, teacher, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
