import json

import pytest
import yaml

from addbench.errors import AddbenchError
from addbench.eval.tables import _cell, leaderboard_frame, make_table, measured_rows, published_files, published_rows


def _record(tmp_path, name, nfe, value, ci, complete=True, precision=None):
    d = tmp_path / name
    d.mkdir()
    rec = {"format": "addbench-record/1", "complete": complete, "model": {"name": name, "nfe": nfe},
           "suite": {"name": "coco10k", "limit": None, **({"metric_precision": precision} if precision else {})},
           "metrics": {"clip_score[ViT-g-14/laion2b_s34b_b88k,x100]": {"value": value, "ci95": ci, "higher_is_better": True},
                       "fid[inception-2015-12-05,clean]": {"value": 20.0, "ci95": None, "higher_is_better": False}}}
    (d / "record.json").write_text(json.dumps(rec))
    return d / "record.json"


def test_published_tables_match_the_papers():
    assert {"dmdx_table1", "dmdx_table6", "add_table2"} <= set(published_files())
    rows = {(r["model"], r["nfe"]): r for r in published_rows(["dmdx_table1"])}
    dmdx = rows[("DMDX", 1)]["metrics"]
    assert dmdx["clip_score[ViT-g-14/laion2b_s34b_b88k,x100]"]["text"] == "35.2557"
    assert dmdx["mps"]["text"] == "11.1978"
    assert rows[("LCM", 2)]["metrics"]["pickscore[PickScore_v1,logit_scale*cos]"]["value"] == 20.1267
    assert rows[("SDXL-Base", 50)]["metrics"]["hpsv2[v2.1,ViT-H-14,cos*100]"]["value"] == 27.3743
    t6 = {r["model"]: list(r["metrics"].values())[0]["value"] for r in published_rows(["dmdx_table6"])}
    assert t6 == {"ADD (512px)": 0.6071, "LCM": 0.6257, "SDXL-Lightning": 0.6707, "DMD2": 0.6715, "DMDX": 0.7156,
                  "SDXL-Base": 0.6936}
    add = {(r["model"], r["nfe"]): r["metrics"] for r in published_rows(["add_table2"])}
    assert add[("ADD-M", 1)]["fid[inception-2015-12-05,clean]"]["text"] == "19.7"
    assert add[("ADD-M", 1)]["clip_score[ViT-g-14/laion2b_s34b_b88k,cosine]"]["text"] == "0.326"
    assert add[("DPM Solver", 25)]["latency_s[A100,512px,b1]"]["higher_is_better"] is False
    assert all(r["source"].startswith("published: ") for r in published_rows(["all"]))


def test_measured_and_published_rows_in_one_table(tmp_path):
    rows, skipped = measured_rows([_record(tmp_path, "mine", 1, 35.31234, [35.1, 35.5]),
                                   _record(tmp_path, "half", 1, 1.0, None, complete=False)])
    assert skipped == [str(tmp_path / "half")] and len(rows) == 1
    df = leaderboard_frame(rows + published_rows(["dmdx_table1"]))
    assert df["source"][0] == "measured" and (df["source"][1:].str.startswith("published: DMDX")).all()
    assert df["clip_score[ViT-g-14/laion2b_s34b_b88k,x100] ↑"][0] == "35.31 ± 0.20"
    assert df["fid[inception-2015-12-05,clean] ↓"][0] == "20.00"
    assert df["fid[inception-2015-12-05,clean] ↓"][1] == ""  # DMDX Table 1 has no FID
    md = make_table(df, "md")
    assert md.count("\n") == len(df) + 2
    with pytest.raises(AddbenchError, match="unknown table format"):
        make_table(df, "html")


def test_cells():
    assert _cell(0.31234, [0.3101, 0.3146], "pm", 4) == "0.3123 ± 0.0023"
    assert _cell(0.31234, [0.3101, 0.3146], "interval", 4) == "0.3123 [0.3101, 0.3146]"
    assert _cell(19.71, None, "pm", 4) == "19.71"


def test_malformed_published_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"source": "x", "rows": [{"model": "m"}]}))
    with pytest.raises(AddbenchError, match="malformed"):
        published_rows([str(bad)])
    with pytest.raises(AddbenchError, match="nothing to show"):
        leaderboard_frame([])


def test_a_run_scored_off_its_suites_metric_precision_is_labelled(tmp_path):
    rows, _ = measured_rows([_record(tmp_path, "own", 1, 35.0, None, precision="tf32"),
                             _record(tmp_path, "strict", 1, 35.0, None, precision="fp32"),
                             _record(tmp_path, "old", 1, 35.0, None)])
    assert [r["suite"] for r in rows] == ["coco10k", "coco10k (fp32 metrics)", "coco10k"]  # coco10k v2 is tf32
