"""addbench report on synthetic eval runs and a training log: the page's sections and files, the page in headless
Chromium (every image decodes), and the labelled sample grid of ``addbench samples`` with no padding waste.

The Chromium test needs Debian's chromium and chromedriver (as tests/arena/test_browser.py): it fails, never skips,
without them. ``REPORT_SCREENSHOT=1`` also writes docs/report_example.png.
"""
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from addbench.cli import app
from addbench.eval.grid import font, labelled_tile, sample_grid, tile, wrap
from addbench.eval.records import validate
from addbench.eval.samples import sample_name, write_png

DOCS = Path(__file__).resolve().parents[2] / "docs"
CLIP = "toy_clip_score[local-dir:clip@0000,x100]"
FID = "toy_fid[open_clip:local-dir:clip@0000,clean]"
PROMPTS = ["a red circle at the top left on a dark background", "a blue square", "a green triangle in the center",
           "a large yellow circle on a striped background", "a small purple square at the bottom right",
           "a cyan triangle on a light background"]
SEEDS = (0, 1)
COLOURS = [(220, 40, 40), (40, 60, 220), (40, 180, 60), (230, 210, 40), (150, 50, 190), (40, 200, 210)]
runner = CliRunner()


def _image(p: int, seed: int, nfe: int) -> torch.Tensor:
    """32x32: the prompt's colour as a square whose size grows with the NFE, the seed shifting it."""
    img = np.full((32, 32, 3), 40 if p % 2 else 200, np.uint8)
    side = 6 + 3 * min(nfe, 4)
    x = 2 + 4 * seed
    img[x:x + side, x:x + side] = COLOURS[p]
    return torch.from_numpy(img).permute(2, 0, 1).contiguous()


def write_run(root: Path, model: str, nfe: int, clip_offset: float, fid: float) -> Path:
    """An eval run dir as the runner writes it: samples/*.png, per_sample.parquet and a record that validates."""
    run = root / "toy-smoke" / f"{model}-nfe{nfe}-{nfe:08x}"
    (run / "samples").mkdir(parents=True)
    rows = []
    for p, prompt in enumerate(PROMPTS):
        for s in SEEDS:
            name = f"samples/{sample_name(p, s)}"
            write_png(run / name, _image(p, s, nfe), {"prompt": prompt, "seed": s, "model": model})
            rows.append({"prompt_index": p, "seed": s, "prompt": prompt, "image": name,
                         CLIP: clip_offset + 2.0 * p + 0.1 * s})  # prompt 5 best, prompt 0 worst
    df = pd.DataFrame(rows)
    df.to_parquet(run / "per_sample.parquet", index=False)
    mean = float(df[CLIP].mean())
    record = {"format": "addbench-record/1", "complete": True, "run_key": "0" * 64,
              "model": {"name": model, "model_hash": "ab" * 32, "base": "toy", "nfe": nfe,
                        "sampler": {"steps": nfe, "guidance": 1.0, "solver": "ddim"}, "dtype": "float32"},
              "suite": {"name": "toy-smoke", "version": 2, "hash": "s1", "config_sha256": "c1", "prompt_sha256": "p1",
                        "n_prompts": len(PROMPTS), "seeds": list(SEEDS), "limit": None, "generation_dtype": "fp32"},
              "metrics": {
                  CLIP: {"name": "toy_clip_score", "value": mean, "ci95": [mean - 0.8, mean + 0.8],
                         "ci": {"method": "percentile", "draws": 1000, "level": 0.95, "unit": "prompt"},
                         "higher_is_better": True, "convention": "x100", "kwargs": {}, "n": 12, "per": "sample"},
                  FID: {"name": "toy_fid", "value": fid, "ci95": [fid - 10, fid + 25],
                        "ci": {"method": "basic+bias", "draws": 1000, "level": 0.95, "unit": "prompt"},
                        "higher_is_better": False, "convention": "clean", "kwargs": {"n_ref": 200}, "n": 12,
                        "per": "set"}},
              "provenance": {"libraries": {"torch": "2.x"}, "python": "3.12", "device": "cpu", "world_size": 1,
                             "git_commit": "feedc0de", "timestamp": "2026-12-03T00:00:00+00:00",
                             "command": f"addbench eval --model {model} --suite toy-smoke"}}
    (run / "record.json").write_text(json.dumps(validate(record)))
    return run


def write_training(root: Path) -> Path:
    run = root / "train" / "dmd2-toy"
    run.mkdir(parents=True)
    lines = [json.dumps({"step": s, "images_seen": 32 * s, "time": 1e9 + s, "g/loss": 1.0 / s,
                         "fake/loss": 0.5 + 0.01 * s, "disc/p_real": 0.5}) for s in range(1, 21)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 21, "g/lo')  # a line torn by a kill
    (run / "config.json").write_text(json.dumps({"distiller": "dmd2", "base": "toy", "lr": 1e-5}))
    return run


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    runs = root / "runs"
    write_run(runs, "toy@1step", 1, 20.0, 180.0)
    write_run(runs, "toy@4step", 4, 24.0, 90.0)
    write_run(runs, "student@1step", 1, 23.0, 110.0)
    unfinished = runs / "toy-smoke" / "toy@25step-nfe25-x"
    unfinished.mkdir(parents=True)
    (unfinished / "record.json").write_text(json.dumps({"format": "addbench-record/1", "complete": False}))
    train = write_training(root)
    out = root / "site"
    r = runner.invoke(app, ["report", str(runs), str(train), "--out", str(out), "--title", "Toy smoke report"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert f"wrote {out / 'index.html'}" in r.output
    return out


def _srcs(html: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', html)


def test_the_page_has_every_section_and_only_relative_files(report):
    html = (report / "index.html").read_text()
    assert "<title>Toy smoke report</title>" in html
    table = re.search(r'<table id="leaderboard-image".*?</table>', html, re.S).group(0)
    assert table.count("<tr>") == 4  # header + 3 complete runs; the unfinished one is listed, not shown
    assert "toy@4step" in table and "student@1step" in table and f"{FID} ↓" in table and f"{CLIP} ↑" in table
    assert "Incomplete runs left out" in html and "toy@25step-nfe25-x" in html
    srcs = _srcs(html)
    assert srcs and all(not s.startswith(("/", "http")) and (report / s).is_file() for s in srcs)
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from the network
    plots = [s for s in srcs if "/nfe_" in s]
    assert sorted(Path(s).name for s in plots) == ["nfe_toy_clip_score.png", "nfe_toy_fid.png"]
    assert "bars: 95% intervals over prompts" in html and "basic+bias" in html
    grids = [s for s in srcs if "/grid_" in s]
    assert len(grids) == 2  # one per model family (student, toy), the same prompts in both
    assert html.count("“a red circle at the top left on a dark background”") == 2
    assert "rows toy@1step, NFE 1; toy@4step, NFE 4" in html
    assert Image.open(report / grids[1]).size[0] > 8 * 128  # 4 prompts x 2 seeds of 128 px cells and labels
    best = html.index("<td>best</td>")
    assert html.index(PROMPTS[5], best) < html.index("<td>worst</td>") < html.index(PROMPTS[0], best)
    assert any("train_" in s for s in srcs) and "20 logged steps, 3 values" in html
    assert "1 unreadable line(s) skipped" in html
    assert html.count('<details class="provenance">') == 4  # 3 eval runs + the training run
    assert "feedc0de" in html and "addbench eval --model toy@4step --suite toy-smoke" in html
    assert "&quot;lr&quot;: 1e-05" in html


def test_report_refuses_a_missing_path_in_one_line(tmp_path):
    r = runner.invoke(app, ["report", str(tmp_path / "nope"), "--out", str(tmp_path / "site")])
    assert r.exit_code == 2 and r.output.strip().startswith("error:") and "no such run dir" in r.output


def test_the_page_renders_offline_in_headless_chromium(report, headless_chromium):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = headless_chromium(1280, 900)
    browser.get((report / "index.html").as_uri())
    WebDriverWait(browser, 20).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#leaderboard-image tbody tr")
    assert len(rows) == 3 and "toy@1step" in browser.find_element(By.ID, "leaderboard-image").text
    widths = browser.execute_script("return Array.from(document.images).map(i => [i.getAttribute('src'), "
                                    "i.naturalWidth])")
    assert len(widths) == len(_srcs((report / "index.html").read_text()))
    assert all(w > 0 for _, w in widths), [s for s, w in widths if not w]
    details = browser.find_elements(By.CSS_SELECTOR, "details.provenance")
    assert len(details) == 4 and not details[0].get_attribute("open")  # collapsed until clicked
    if os.environ.get("REPORT_SCREENSHOT") == "1":
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1280, min(int(height), 2600))
        browser.save_screenshot(str(DOCS / "report_example.png"))


# ---- addbench samples: the labelled grid and its generation -----------------------------------------------------

class CountingBase:
    """Just what ``addbench.bases.sampling.sample`` uses, with the toy base's CPU micro-batch of 32; records the
    batch of every prompt encoding and network call."""

    name, video, x0_clip = "counting", False, 1.0
    micro_batch_sizes = {"cuda": 256, "cpu": 32}

    def __init__(self):
        from addbench.bases.interface import Sampler
        from addbench.schedules import VPSchedule

        self.device, self.dtype, self.schedule = torch.device("cpu"), torch.float32, VPSchedule()
        self.default_sampler = Sampler(steps=4, height=8, width=8)
        self.encoded, self.network_batches = [], []

    def latent_shape(self, height, width, frames=1):
        return (3, height, width)

    def encode_prompts(self, prompts):
        self.encoded.append(len(prompts))
        return torch.tensor([float(len(p) % 5) for p in prompts])

    def x0(self, x, t, cond, guidance=1.0, network=None, null=None):
        self.network_batches.append(x.shape[0])
        return torch.tanh(0.5 * x + 0.2 * cond.view(-1, 1, 1, 1))

    def decode(self, latents):
        return latents


def test_a_grid_row_generates_exactly_its_images(tmp_path):
    from addbench.bases.sampling import DiffusionGenerator

    base = CountingBase()
    gen = DiffusionGenerator(base, name="counting@4step")
    prompts, seeds, steps = ["a red circle", "a blue square"], [0, 1], [1, 4, 25]
    assert sample_grid(gen, prompts, seeds, tmp_path / "g.png", steps) == 3
    assert base.encoded == [4, 4, 4]  # prompts x seeds per row, not the base's micro-batch of 32
    assert base.network_batches == [4] * (1 + 4 + 25)
    assert gen.micro_batch is None  # the generator's own setting is restored
    base.encoded.clear()
    sample_grid(gen, [f"prompt {i}" for i in range(20)], seeds, tmp_path / "g40.png", [1])
    assert base.encoded == [20, 20]  # 40 images: two even calls, not 32 + 32 (24 padded)


def test_the_grid_is_labelled_and_upscaled(tmp_path):
    from addbench.bases.sampling import DiffusionGenerator

    gen = DiffusionGenerator(CountingBase(), name="counting@4step")
    prompts, seeds = ["a red circle at the top left on a dark background", "a blue square"], [0, 1]
    sample_grid(gen, prompts, seeds, tmp_path / "bare.png", [1, 4], labels=False)
    sample_grid(gen, prompts, seeds, tmp_path / "labelled.png", [1, 4])
    bare, labelled = Image.open(tmp_path / "bare.png"), Image.open(tmp_path / "labelled.png")
    assert bare.size == (4 * 10 + 2, 2 * 10 + 2)  # 8 px images, native size, 2 px gaps
    assert labelled.size[0] > 4 * 256 and labelled.size[1] > 2 * 256  # cells >= 256 px, plus captions and labels

    rows = [torch.from_numpy(np.random.default_rng(0).integers(0, 255, (4, 3, 8, 8), dtype=np.uint8))]
    captions = [f"{p}\nseed {s}" for p in prompts for s in seeds]
    with_text = np.asarray(labelled_tile(rows, ["counting\n1step\nNFE 1"], captions, min_cell=64))
    blank = np.asarray(labelled_tile(rows, min_cell=64))  # the same images, no labels
    head = with_text.shape[0] - blank.shape[0]
    assert head > 0 and with_text.shape[1] > blank.shape[1]  # caption lines and the row label take room
    assert (with_text[:head] < 100).any()  # dark ink above the images: the captions are drawn
    left = with_text.shape[1] - blank.shape[1]
    cell = with_text[head + 6:head + 6 + 64, left + 6:left + 6 + 64]
    assert np.array_equal(cell, np.kron(rows[0][0].permute(1, 2, 0).numpy(), np.ones((8, 8, 1), np.uint8)))  # nearest
    assert tile(rows).size == (4 * 10 + 2, 10 + 2)


def test_captions_wrap_to_the_cell():
    fnt = font(14)
    lines = wrap("a red circle at the top left on a dark background", fnt, 120)
    assert len(lines) > 1 and " ".join(lines) == "a red circle at the top left on a dark background"
    assert wrap("x" * 200, fnt, 60, max_lines=2)[-1].endswith("…")
