import io
import json

import pandas as pd
import pytest
import yaml

from addbench.errors import AddbenchError
from addbench.eval.tables import (_cell, leaderboard, leaderboard_frame, make_table, measured_rows, numeric_frame,
                                  numeric_metadata, plain_names, published_files, published_rows, write_numeric)


def _record(tmp_path, name, nfe, value, ci, complete=True, precision=None, fid_ci=None):
    d = tmp_path / name
    d.mkdir()
    rec = {"format": "addbench-record/1", "complete": complete, "model": {"name": name, "nfe": nfe},
           "suite": {"name": "coco10k", "limit": None, **({"metric_precision": precision} if precision else {})},
           "metrics": {"clip_score[ViT-g-14/laion2b_s34b_b88k,x100]": {"value": value, "ci95": ci, "higher_is_better": True},
                       "fid[inception-2015-12-05,clean]": {"value": 20.0, "ci95": fid_ci, "higher_is_better": False}}}
    if fid_ci:
        rec["metrics"]["fid[inception-2015-12-05,clean]"]["ci"] = {"method": "basic+bias", "draws": 1000,
                                                                  "level": 0.95, "unit": "prompt"}
    (d / "record.json").write_text(json.dumps(rec))
    return d / "record.json"


def test_published_tables_match_the_papers():
    assert {"dmdx_table1", "dmdx_table6", "add_table2"} <= set(published_files())
    rows = {(r["model"], r["nfe"]): r for r in published_rows(["dmdx_table1"])}
    dmdx = rows[("DMDX", 1)]["metrics"]
    assert dmdx["clip_score[ViT-g-14/laion2b_s34b_b88k,x100]"]["text"] == "35.2557"
    assert dmdx["mps"]["text"] == "11.1978"
    assert rows[("LCM", 2)]["metrics"]["pickscore[PickScore_v1,logit_scale*cos]"]["value"] == 20.1267
    assert rows[("SDXL-Base", 50)]["metrics"]["hpsv2[v2.1,ViT-H-14,cos*100,longest+pad]"]["value"] == 27.3743
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
    assert df["clip_score[ViT-g-14/laion2b_s34b_b88k,x100] ↑"][0] == "35.31 [35.10, 35.50]"  # arms 0.19 / 0.21
    assert df["fid[inception-2015-12-05,clean] ↓"][0] == "20.00"
    assert df["fid[inception-2015-12-05,clean] ↓"][1] == ""  # DMDX Table 1 has no FID
    md = make_table(df, "md")
    assert md.count("\n") == len(df) + 2
    with pytest.raises(AddbenchError, match="unknown table format"):
        make_table(df, "html")


def test_cells():
    assert _cell(0.31234, [0.3100, 0.3146], "pm", 4) == "0.3123 ± 0.0023"  # symmetric to the digits shown
    assert _cell(0.31234, [0.3100, 0.3146], "interval", 4) == "0.3123 [0.3100, 0.3146]"
    assert _cell(0.31234, [0.3101, 0.3146], "pm", 4) == "0.3123 [0.3101, 0.3146]"  # arms 0.0023 / 0.0022
    assert _cell(19.71, None, "pm", 4) == "19.71"


def test_asymmetric_or_excluding_intervals_are_never_printed_with_pm():
    # an FID interval of the new rule: longer arm below the estimate
    assert _cell(141.25, [118.0, 150.1], "pm", 4) == "141 [118, 150]"
    # an old record's percentile FID interval that lies above its estimate ("127 ± 39" before)
    assert _cell(127.0, [140.0, 218.0], "pm", 4) == "127 [140, 218]"
    assert "±" not in _cell(17.73, [18.02, 20.83], "pm", 4)
    # symmetric within rounding: ± with the arm's value
    assert _cell(5.70, [4.52, 6.88], "pm", 4) == "5.7 ± 1.2"
    for fmt in ("md", "latex"):
        df = leaderboard_frame([{"model": "m", "nfe": 1, "suite": "s", "source": "measured", "metrics": {
            "fid": {"value": 127.0, "ci95": [140.0, 218.0], "higher_is_better": False}}}])
        text = make_table(df, fmt)
        assert "127 [140, 218]" in text and "pm" not in text and "±" not in text


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


def test_numeric_csv_and_parquet_leaderboards(tmp_path):
    paths = [_record(tmp_path, "mine", 1, 35.31234, [35.1, 35.5], fid_ci=[18.5, 21.0]),
             _record(tmp_path, "old", 4, 34.0, [33.5, 34.4])]  # no "ci": a record written before it was stored
    rows, _ = measured_rows(paths)
    rows += published_rows(["dmdx_table1", "add_table2"])
    df = numeric_frame(rows)
    assert list(df.columns[:5]) == ["model", "nfe", "clip_score_ViT_g_14_laion2b_s34b_b88k_x100",
                                    "clip_score_ViT_g_14_laion2b_s34b_b88k_x100_ci_lo",
                                    "clip_score_ViT_g_14_laion2b_s34b_b88k_x100_ci_hi"]  # two clip_score ids
    assert list(df.columns[-3:]) == ["suite", "source", "run"]
    assert "fid" in df and "fid_ci_lo" in df and "pickscore" in df and "latency_s" in df
    assert not any("↑" in c or "↓" in c or "[" in c for c in df.columns)
    values = df.drop(columns=["model", "suite", "source", "run"])
    assert all(str(t) in ("float64", "Int64") for t in values.dtypes)
    mine = df[df["model"] == "mine"].iloc[0]
    assert (mine["fid"], mine["fid_ci_lo"], mine["fid_ci_hi"]) == (20.0, 18.5, 21.0)
    old = df[df["model"] == "old"].iloc[0]
    assert old["fid"] == 20.0 and pd.isna(old["fid_ci_lo"]) and old["nfe"] == 4
    dmdx = df[(df["model"] == "DMDX") & (df["nfe"] == 1)].iloc[0]
    assert dmdx["mps"] == 11.1978 and pd.isna(dmdx["mps_ci_lo"]) and dmdx["source"].startswith("published: DMDX")
    meta = numeric_metadata(rows)
    assert meta["metrics"]["fid"]["id"] == "fid[inception-2015-12-05,clean]"
    assert meta["metrics"]["fid"]["higher_is_better"] is False
    assert meta["metrics"]["fid"]["ci_methods"] == ["basic+bias (1000 draws, level 0.95, per prompt)"]
    clip = meta["metrics"]["clip_score_ViT_g_14_laion2b_s34b_b88k_x100"]
    assert clip["id"] == "clip_score[ViT-g-14/laion2b_s34b_b88k,x100]" and clip["ci_methods"] == ["unrecorded"]
    assert meta["columns"] == list(df.columns)
    # csv text = the same numbers; parquet + side file through write_numeric
    text, _ = leaderboard([str(tmp_path)], ["dmdx_table1", "add_table2"], fmt="csv")
    back = pd.read_csv(io.StringIO(text))
    assert list(back.columns) == list(df.columns) and back["fid"].notna().sum() == df["fid"].notna().sum()
    for fmt in ("csv", "parquet"):
        out, side, _ = write_numeric([str(tmp_path)], ["dmdx_table1", "add_table2"], tmp_path / f"lb.{fmt}", fmt)
        got = pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)
        assert list(got.columns) == list(df.columns) and len(got) == len(df)
        assert side == tmp_path / "lb.meta.json"
        assert json.loads(side.read_text())["metrics"]["fid"]["higher_is_better"] is False
    import pyarrow.parquet as pq
    embedded = json.loads(pq.read_schema(tmp_path / "lb.parquet").metadata[b"addbench"])
    assert embedded["format"] == "addbench-leaderboard/1"
    with pytest.raises(AddbenchError, match="parquet"):
        make_table(df, "parquet")


def test_plain_names():
    assert plain_names(["toy_fid[a,clean]", "kid[x]", "mps"]) == {"toy_fid[a,clean]": "toy_fid", "kid[x]": "kid",
                                                                    "mps": "mps"}
    assert plain_names(["latency_s[A100,512px,b1]", "latency_s[H200,512px,b1]"]) == {
        "latency_s[A100,512px,b1]": "latency_s_A100_512px_b1", "latency_s[H200,512px,b1]": "latency_s_H200_512px_b1"}
    # a metric named like a fixed column, or whose sanitised id repeats another's, still gets a column of its own
    assert plain_names(["model", "a[b]", "a_b", "a(b)", "x y[1]"]) == {
        "model": "model_metric", "a[b]": "a", "a_b": "a_b", "a(b)": "a_b_metric", "x y[1]": "x_y"}


def test_shipped_records_still_load_and_print():
    """The records under leaderboards/runs (written before ``ci`` existed) load into every format."""
    from pathlib import Path

    runs = Path(__file__).resolve().parents[2] / "leaderboards" / "runs"
    if not runs.is_dir():
        pytest.skip("no shipped records")
    for fmt in ("md", "latex", "csv"):
        text, skipped = leaderboard([str(runs)], fmt=fmt)
        assert text and "toy" in text
    df = numeric_frame(measured_rows(sorted(runs.rglob("record.json")))[0])
    assert df["toy_fid"].notna().all()
    shown = df["toy_fid_ci_lo"].notna()  # v1 records' FID percentile intervals are dropped (shown_interval)
    assert shown.any() and not shown.all()
    assert ((df.loc[shown, "toy_fid_ci_lo"] <= df.loc[shown, "toy_fid"])
            & (df.loc[shown, "toy_fid"] <= df.loc[shown, "toy_fid_ci_hi"])).all()


def test_shown_interval_drops_intervals_that_are_not_confidence_intervals():
    from addbench.eval.tables import shown_interval

    legacy_fid = {"value": 26.0, "ci95": [25.6, 29.6], "per": "set"}  # a v1 record: no "ci", percentile of FID
    assert shown_interval(legacy_fid) is None
    new_fid = {**legacy_fid, "ci": {"method": "basic+bias", "draws": 1000, "level": 0.95, "unit": "prompt"}}
    assert shown_interval(new_fid) == [25.6, 29.6]
    assert shown_interval({**new_fid, "ci95": [26.5, 29.6]}) is None  # does not contain its estimate
    legacy_mean = {"value": 0.69, "ci95": [0.65, 0.73], "per": "sample"}  # a percentile interval of a mean: valid
    assert shown_interval(legacy_mean) == [0.65, 0.73]


def test_committed_toy_leaderboards_print_every_estimate_inside_its_interval():
    from pathlib import Path

    from addbench.eval.tables import leaderboard_rows, numeric_frame

    root = Path(__file__).resolve().parents[2] / "leaderboards" / "runs"
    rows, _ = leaderboard_rows([str(p) for p in sorted(root.glob("toy-2k*/*/record.json"))])
    df = numeric_frame(rows)
    checked = 0
    for col in [c for c in df.columns if f"{c}_ci_lo" in df.columns]:
        both = df[[col, f"{col}_ci_lo", f"{col}_ci_hi"]].dropna()
        assert ((both[f"{col}_ci_lo"] <= both[col]) & (both[col] <= both[f"{col}_ci_hi"])).all(), col
        checked += len(both)
    assert len(df) >= 20 and checked >= 40
