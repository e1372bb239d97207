"""The whole video path through the real vbench code in its own env: tiny videos (8 frames, 64x64) for 2
prompts, temporal_flickering scored by VBench; every other dimension stops where its weights would load."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from video_fakes import FakeVideoGenerator

from addbench.errors import AddbenchError
from addbench.eval.runner import evaluate
from addbench.eval.tables import leaderboard
from addbench.video import env as venv
from addbench.eval import video_runner as runner
from addbench.video import scores
from addbench.video.mp4 import read_mp4

TF = {"vbench": {"dimensions": "temporal_flickering", "static_filter": False}}
TF_ID = "vbench[temporal_flickering,x100,unfiltered]"


def _tf_score(path: Path) -> float:
    """VBench's temporal flickering, written out: (255 - mean |frame_t+1 - frame_t|) / 255."""
    v = read_mp4(path).float().numpy()
    return (255.0 - float(np.mean([np.abs(v[i + 1] - v[i]).mean() for i in range(len(v) - 1)]))) / 255.0


@pytest.fixture(scope="module")
def tf_run(vbench_env, no_weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("vruns")
    gen = FakeVideoGenerator()
    res = evaluate(gen, "vbench", out_dir=out, limit=2, progress=False,
                   metric_overrides={"vbench": {**TF["vbench"], "cache_dir": no_weights}})
    return res, gen, out


def test_videos_named_and_counted_like_vbench(tf_run):
    res, gen, _ = tf_run
    names = sorted(p.name for p in (res.run_dir / "videos").iterdir())
    # the first 2 prompts are temporal_flickering prompts: 25 videos each
    assert len(names) == 50 == gen.calls
    assert "In a still frame, a stop sign-0.mp4" in names and "In a still frame, a stop sign-24.mp4" in names
    assert read_mp4(res.run_dir / "videos" / names[0]).shape == (8, 3, 64, 64)
    assert len(list((res.run_dir / "provenance").glob("*.json"))) == 50


def test_vbench_scores_temporal_flickering(tf_run):
    res, _, _ = tf_run
    rec = res.record
    assert rec["complete"] and rec["kind"] == "video" and rec["vbench"]["version"] == "0.1.5"
    m = rec["metrics"][TF_ID]
    assert m["n"] == 10  # VBench's standard mode reads videos 0-4 of each prompt
    videos = res.run_dir / "videos"
    expected = np.mean([_tf_score(videos / f"{p}-{k}.mp4") for p in rec_prompts(res) for k in range(5)])
    assert m["value"] == pytest.approx(100 * expected, abs=0.05)  # cv2 and ffmpeg decode alike
    status = rec["vbench"]["dimensions"]
    assert status["temporal_flickering"] == {"status": "ran"}
    assert status["color"]["status"] == "not requested"
    assert set(rec["vbench"]["total_missing"]) == set(scores.DIMENSIONS) - {"temporal_flickering"}
    assert not {"vbench[total,x100]", "vbench[quality,x100]"} & set(rec["metrics"])  # no partial totals
    df = pd.read_parquet(res.run_dir / "per_sample.parquet")
    assert len(df) == 50 and df[TF_ID].notna().sum() == 10


def rec_prompts(res):
    return [e["prompt_en"] for e in __import__("json").loads((res.run_dir / "vbench" / "full_info.json").read_text())]


def test_resume_skips_finished_videos_and_scores(tf_run, no_weights):
    res, _, out = tf_run
    over = {"vbench": {**TF["vbench"], "cache_dir": no_weights}}
    gen = FakeVideoGenerator()
    again = evaluate(gen, "vbench", out_dir=out, limit=2, progress=False, metric_overrides=over)
    assert gen.calls == 0 and again.record == res.record
    (res.run_dir / "videos" / "In a still frame, a stop sign-3.mp4").unlink()
    (res.run_dir / "record.json").unlink()
    again = evaluate(gen, "vbench", out_dir=out, limit=2, progress=False, metric_overrides=over)
    assert gen.calls == 1  # the one missing video, same noise seed, same pixels
    assert again.record["metrics"][TF_ID]["value"] == pytest.approx(res.record["metrics"][TF_ID]["value"], abs=1e-3)


def test_leaderboard_video_table_with_published_rows(tf_run):
    text, _ = leaderboard([str(tf_run[0].run_dir)], ["dmdx_table3"])
    header, _, *rows = text.splitlines()
    assert header.index("vbench[total,x100]") < header.index("vbench[subject_consistency,x100]")
    assert sum("published: DMDX" in r for r in rows) == 8 and sum(r.endswith("| measured |") for r in rows) == 1
    assert any(r.startswith("| CogVideoX-2b | 200 |") and "| 80.036 | 80.801 | 76.974 |" in r for r in rows)


def test_other_dimensions_stop_where_their_weights_load(vbench_env, no_weights):
    """One probe of the env runs VBench's own init_submodules per dimension with downloads refused."""
    p = venv.probe(vbench_env, list(scores.DIMENSIONS), no_weights)
    expect = {"subject_consistency": "facebookresearch_dino_main", "background_consistency": "ViT-B-32.pt",
              "motion_smoothness": "amt-s.pth", "dynamic_degree": "raft-things.pth",
              "aesthetic_quality": "ViT-L-14.pt", "imaging_quality": "musiq_spaq_ckpt-358bb6af.pth",
              "human_action": "l16_ptk710_ftk710_ftk400_f16_res224.pth", "scene": "tag2text_swin_14m.pth",
              "appearance_style": "ViT-B-32.pt", "temporal_style": "ViClip-InternVid-10M-FLT.pth",
              "overall_consistency": "ViClip-InternVid-10M-FLT.pth"}
    for dim, fname in expect.items():
        opts = {"dimensions": [dim], "static_filter": True}
        with pytest.raises(AddbenchError) as e:
            runner.plan(p, opts)
        msg = str(e.value)
        assert "\n" not in msg and fname in msg and no_weights in msg and dim in msg, msg
    for dim in ("object_class", "multiple_objects", "color", "spatial_relationship"):
        run, unavailable = runner.plan(p, {"dimensions": [dim], "static_filter": True})
        assert run == [] and "detectron2" in unavailable[dim]
    with pytest.raises(AddbenchError, match="raft-things.pth"):  # VBench's static filter needs RAFT
        runner.plan(p, {"dimensions": ["temporal_flickering"], "static_filter": True})
    assert runner.plan(p, {"dimensions": ["temporal_flickering"], "static_filter": False}) == (["temporal_flickering"], {})


def test_missing_weights_stop_the_run_before_any_video(vbench_env, no_weights, tmp_path):
    gen = FakeVideoGenerator()
    with pytest.raises(AddbenchError, match="ViT-L-14.pt"):
        evaluate(gen, "vbench", out_dir=tmp_path, limit=1, progress=False,
                 metric_overrides={"vbench": {"dimensions": "aesthetic_quality", "cache_dir": no_weights}})
    assert gen.calls == 0
