"""Video suite pieces that need no VBench env: suite keys, options, counts, mp4 round trip, env plumbing."""
from pathlib import Path

import pytest
import torch
from video_fakes import FakeVideoGenerator

from addbench.errors import AddbenchError
from addbench.suites import load_suite
from addbench.video import env as venv
from addbench.eval import video_runner as runner
from addbench.video.mp4 import read_mp4, write_mp4
from addbench.video.prompts import video_name, videos_per_prompt


def test_vbench_suite_is_a_video_suite():
    s = load_suite("vbench")
    assert s.kind == "video" and s.videos == {"per_prompt": 5, "per_prompt_by_dimension": {"temporal_flickering": 25}, "fps": 8}
    assert [m.name for m in s.metrics] == ["vbench"] and s.prompts.sha256


def test_video_keys_checked(tmp_path):
    base = "name: x\nversion: 1\nprompts: {name: p, format: inline, items: [a]}\nmetrics: [vbench]\n"
    (tmp_path / "a.yaml").write_text(base + "videos: {per_prompt: 5}\n")
    with pytest.raises(AddbenchError, match="only for suites with kind: video"):
        load_suite(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text(base + "kind: video\nvideos: {per_prompt: 0}\n")
    with pytest.raises(AddbenchError, match="per_prompt"):
        load_suite(tmp_path / "b.yaml")


def test_counts_and_names():
    by = {"temporal_flickering": 25}
    assert videos_per_prompt(["temporal_flickering"], 5, by) == 25
    assert videos_per_prompt(["color", "scene"], 5, by) == 5
    assert video_name("a cat", 3) == "a cat-3.mp4"


def test_options():
    s = load_suite("vbench")
    o = runner.vbench_options(s, {"vbench": {"dimensions": "color,temporal_flickering", "static_filter": "false"}})
    assert o["dimensions"] == ["temporal_flickering", "color"] and o["static_filter"] is False
    assert len(runner.vbench_options(s, None)["dimensions"]) == 16
    with pytest.raises(AddbenchError, match="unknown vbench dimension"):
        runner.vbench_options(s, {"vbench": {"dimensions": "colour"}})
    with pytest.raises(AddbenchError, match="unknown; known"):
        runner.vbench_options(s, {"vbench": {"weights": "x"}})
    assert runner.metric_id("temporal_flickering", False) == "vbench[temporal_flickering,x100,unfiltered]"


def test_mp4_round_trip(tmp_path):
    v = FakeVideoGenerator().generate(["a dog"], [7])[0]
    write_mp4(tmp_path / "a dog-0.mp4", v, 8, tmp_path / "tmp")
    back = read_mp4(tmp_path / "a dog-0.mp4")
    assert back.shape == v.shape and (back.float() - v.float()).abs().mean() < 4
    assert list((tmp_path / "tmp").iterdir()) == []
    with pytest.raises(AddbenchError, match="uint8"):
        write_mp4(tmp_path / "x.mp4", v.float(), 8, tmp_path / "tmp")


def test_fake_generator_is_deterministic_per_pair():
    g = FakeVideoGenerator()
    a = g.generate(["p", "q"], [1, 2])
    assert torch.equal(a[1], g.generate(["q"], [2])[0]) and a.shape == (2, 8, 3, 64, 64)


def test_env_shares_this_torch_only():
    shared = venv.shared_distributions()
    assert {"torch", "torchvision"} <= set(shared) and "numpy" not in shared
    pins = venv.constraints({n: d.version for n, d in shared.items()}).splitlines()
    assert f"torch=={torch.__version__.split('+')[0]}" in pins[0] and "numpy<2" in pins


def test_env_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(AddbenchError, match="not made by addbench"):
        venv.create_env("minimal", tmp_path)
    assert (tmp_path / "keep.txt").exists()
