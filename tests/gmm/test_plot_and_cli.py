"""Scatter PNGs: the module entry point and ``addbench samples --model gmm``."""
from PIL import Image

from addbench.gmm import analytic
from addbench.gmm.mixture import make_mixture
from addbench.gmm.plot import TITLE, scatter_png


def test_scatter_png_draws_truth_and_each_panel(tmp_path):
    mix = make_mixture()
    cls = [0, 1, 2, 3] * 50
    x = analytic.sample(mix, cls, seed=0)
    out = scatter_png(tmp_path / "s.png", {"a": (x, cls), "b": (x * 3, cls)}, mix, size=100)
    with Image.open(out) as im:
        assert im.size == (3 * 104 + 4, 100 + TITLE + 8)
    hi = make_mixture(dim=6, seed=1)  # D > 2: principal axes of the mode means
    scatter_png(tmp_path / "h.png", {"x": (analytic.sample(hi, cls, seed=0), cls)}, hi, size=64)


def test_cli_samples_writes_a_gmm_scatter(tmp_path):
    from typer.testing import CliRunner

    from addbench.cli import app

    out = tmp_path / "g.png"
    res = CliRunner().invoke(app, ["samples", "--model", "gmm", "-p", "class 0", "-p", "class 2", "-p", "",
                                   "--seeds", ",".join(map(str, range(20))), "--steps", "1,8", "--grid", str(out),
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    with Image.open(out) as im:
        assert im.size[0] > 3 * 320  # exact + 2 step counts


def test_module_entry_point(tmp_path):
    from addbench.gmm.plot import main

    assert main(["--steps", "2", "--n", "10", "--out", str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "m.png").is_file()
