"""addbench.eval.latency: eager and fast records from one process (CPU, tiny SDXL), the benchmark table."""
import json

import pytest

from addbench.bases.fast import FastOptions, parse_inductor, parse_variant
from addbench.errors import AddbenchError
from addbench.eval.latency import _build, measure_latency, summarize


def test_summarize_median_p90():
    s = summarize([5.0, 1.0, 3.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0, 100.0])
    assert s == {"median_ms": 6.0, "p90_ms": 10.0, "min_ms": 1.0, "runs": 11}


def test_build_from_architecture_spec():
    spec = {"class": "transformers.CLIPTextModel(CLIPTextConfig(**kwargs))",
            "kwargs": {"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "vocab_size": 100, "max_position_embeddings": 77}}
    m = _build(spec)
    assert type(m).__name__ == "CLIPTextModel" and m.config.hidden_size == 8
    vae = _build({"class": "diffusers.AutoencoderKL", "kwargs": {"block_out_channels": [4], "norm_num_groups": 2}})
    assert vae.config.block_out_channels == [4] or tuple(vae.config.block_out_channels) == (4,)


def test_measure_latency_both_modes(tiny_dir):
    r = measure_latency(model=str(tiny_dir("sdxl")), res=32, nfe=[1, 2], batch=2, runs=2, warmup=1, device="cpu",
                        fast_options=[FastOptions(), FastOptions(fuse_qkv=True)])
    assert r["device"] == "cpu" and r["dtype"] == "float32" and r["batch"] == 2
    recs = r["records"]
    assert [(x["mode"], x["nfe"]) for x in recs] == [("eager", 1), ("eager", 2)] + [("fast", 1), ("fast", 2)] * 2
    for x in recs:
        want = {"text_encode", "vae_decode", "end_to_end"} | {f"network_eval_{i}" for i in range(x["steps"])}
        assert want <= set(x["parts"]) and all(x["parts"][k]["runs"] == 2 for k in want)
        assert x["cfg"] == 1.0 and x["steps"] == x["nfe"] and len(x["timesteps"]) == x["nfe"]
    fast = [x for x in recs if x["mode"] == "fast"]
    assert [x["variant"] for x in fast] == ["graph+channels_last"] * 2 + ["graph+channels_last+fused_qkv"] * 2
    for x in fast:
        assert x["cuda_graph"] is False and x["graph_scope"] is None  # CPU: the same loop, eagerly
        assert x["vs_eager"]["latents_rel_l2"] < 1e-5 and x["vs_eager"]["max_abs_uint8"] <= 1
        assert x["speedup_end_to_end"] > 0
    json.dumps(r)
    assert r["complete"] is True and r["format"] == "addbench-latency/1"


def test_measure_latency_with_cfg_counts_two_evaluations_per_step(tiny_dir):
    r = measure_latency(model=str(tiny_dir("sdxl")), res=32, nfe=[2, 4], runs=1, warmup=0, device="cpu", guidance=3.0)
    for x in r["records"]:
        assert x["cfg"] == 3.0 and x["steps"] == x["nfe"] // 2
        assert sorted(k for k in x["parts"] if k.startswith("network_eval_") and k[-1].isdigit()) == \
            [f"network_eval_{i}" for i in range(x["steps"])]
    fast = [x for x in r["records"] if x["mode"] == "fast"]
    assert len(fast) == 2 and all(x["vs_eager"]["latents_rel_l2"] < 1e-5 for x in fast)


def test_measure_latency_refusals(tiny_dir):
    with pytest.raises(AddbenchError, match="exactly one"):
        measure_latency(device="cpu")
    with pytest.raises(AddbenchError, match="sdxl only"):
        measure_latency(base="sd15", random_weights=True, device="cpu")
    with pytest.raises(AddbenchError, match="even NFE"):
        measure_latency(model=str(tiny_dir("sdxl")), nfe=[1], guidance=2.0, device="cpu", res=32)
    with pytest.raises(AddbenchError, match="compiled ones last"):
        measure_latency(model=str(tiny_dir("sdxl")), nfe=[1], device="cpu", res=32, runs=1, warmup=0, modes=("fast",),
                        fast_options=[FastOptions(compile="default", cuda_graph=False), FastOptions()])


def test_benchmark_script_table_and_json(tiny_dir, tmp_path, capsys, load_benchmark):
    bench = load_benchmark("latency_sdxl")
    out = tmp_path / "lat.json"
    rc = bench.main(["--model", str(tiny_dir("sdxl")), "--res", "32", "--nfe", "1", "--runs", "2", "--warmup", "0",
                     "--variants", "graph", "--device", "cpu", "--dtype", "fp32", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "| eager | eager" in text and "| fast  | graph+channels_last" in text
    r = json.loads(out.read_text())
    assert r["checks"]["failed"] == [] and r["target_1step"]["variant"] == "graph+channels_last"
    assert "profile" not in r["records"][-1] and r["complete"] is True
    rc = bench.main(["--model", str(tiny_dir("sdxl")), "--res", "32", "--nfe", "1", "--runs", "1", "--warmup", "0",
                     "--variants", "graph", "--modes", "fast", "--device", "cpu", "--dtype", "fp32", "--profile",
                     "--out", str(out)])
    text = capsys.readouterr().out
    prof = json.loads(out.read_text())["records"][-1]["profile"]
    assert rc == 0 and sorted(prof) == ["network_eval_0", "text_encode", "vae_decode"]
    assert any("conv" in k["name"] for k in prof["vae_decode"]["top"])
    assert not any("conv" in k["name"] for k in prof["text_encode"]["top"])  # the parts are profiled apart
    assert all(p["kernels"] > 0 and p["busy_ms"] > 0 for p in prof.values())
    assert "kernels | graph+channels_last | network_eval_0:" in text
    assert bench.main(["--variants", "graph+turbo", "--device", "cpu"]) == 2  # one line, before any model loads
    assert "unknown fast variant 'graph+turbo'" in capsys.readouterr().err


def test_variant_grammar():
    with pytest.raises(AddbenchError, match="unknown fast variant 'graph\\+turbo'"):
        parse_variant("graph+turbo")
    assert parse_variant("graph+compile+fused") == FastOptions(compile="default", fuse_qkv=True)
    assert parse_variant("graph+streams+bench") == FastOptions(text_streams=True, cudnn_benchmark=True)
    assert parse_variant("nograph+compile+text", "max-autotune-no-cudagraphs") == FastOptions(
        cuda_graph=False, compile="max-autotune-no-cudagraphs", compile_text=True)
    assert parse_variant("graph+text") == FastOptions()  # text only means something with compile
    tune = parse_inductor(["coordinate_descent_tuning=true", "freezing=False", "max_autotune_gemm_search_space=EXHAUSTIVE",
                           "realize_reads_threshold=4"])
    assert tune == (("coordinate_descent_tuning", True), ("freezing", False),
                    ("max_autotune_gemm_search_space", "EXHAUSTIVE"), ("realize_reads_threshold", 4))
    assert parse_variant("graph+compile", "default", tune).inductor == tune
    assert parse_variant("graph", "default", tune).inductor == ()  # only compiled variants take them
    with pytest.raises(AddbenchError, match="KEY=VALUE"):
        parse_inductor(["freezing"])


def test_benchmark_keeps_finished_records_when_a_later_variant_dies(tiny_dir, tmp_path, capsys, monkeypatch,
                                                                     load_benchmark):
    """Each record is written as it lands (atomically): a run killed in a fast variant's compile keeps eager."""
    import addbench.eval.latency as latency

    bench = load_benchmark("latency_sdxl")
    out = tmp_path / "lat.json"

    def killed(*a, **k):
        raise KeyboardInterrupt  # stands in for the timeout's signal arriving mid-compile

    monkeypatch.setattr(latency, "fast_parts", killed)
    with pytest.raises(KeyboardInterrupt):
        bench.main(["--model", str(tiny_dir("sdxl")), "--res", "32", "--nfe", "1,2", "--runs", "1", "--warmup", "0",
                    "--variants", "graph", "--device", "cpu", "--dtype", "fp32", "--out", str(out)])
    r = json.loads(out.read_text())
    assert r["complete"] is False and [(x["mode"], x["nfe"]) for x in r["records"]] == [("eager", 1), ("eager", 2)]
    assert "record: eager | eager | NFE 2 | end to end" in capsys.readouterr().out
    assert [f.name for f in tmp_path.iterdir()] == ["lat.json"]  # no temp file left behind


def test_latency_results_are_leaderboard_rows(tiny_dir, tmp_path):
    """`addbench latency --out` files join the leaderboard: one row per mode/variant and NFE, end-to-end seconds in
    the published tables' latency_s[GPU,res,batch] id family (a column per device), beside eval records."""
    from addbench.eval.latency import measure_latency
    from addbench.eval.records import atomic_write_json
    from addbench.eval.tables import find_records, leaderboard, measured_rows

    res = measure_latency(model=str(tiny_dir("sdxl")), nfe=[1, 2], res=32, runs=1, warmup=0, device="cpu", dtype="fp32")
    (tmp_path / "runs").mkdir()
    atomic_write_json(tmp_path / "runs" / "latency-cpu.json", res)
    (tmp_path / "runs" / "mine").mkdir()
    (tmp_path / "runs" / "mine" / "record.json").write_text(json.dumps({
        "format": "addbench-record/1", "complete": True, "model": {"name": "mine", "nfe": 1},
        "suite": {"name": "coco10k", "limit": None},
        "metrics": {"fid[inception-2015-12-05,clean]": {"value": 20.0, "ci95": None, "higher_is_better": False}}}))
    assert [p.name for p in find_records([str(tmp_path / "runs")])] == ["record.json", "latency-cpu.json"]
    rows, skipped = measured_rows(find_records([str(tmp_path / "runs")]))
    lat = [r for r in rows if "latency_s[cpu,32px,b1]" in r["metrics"]]
    assert skipped == [] and len(lat) == 4  # eager and fast, NFE 1 and 2
    e2e = {(r["model"].rsplit("[", 1)[1][:-1], r["nfe"]): r["metrics"]["latency_s[cpu,32px,b1]"]["value"] for r in lat}
    for rec in res["records"]:
        assert e2e[(rec["variant"], rec["nfe"])] == rec["parts"]["end_to_end"]["median_ms"] / 1e3
    text, _ = leaderboard([str(tmp_path / "runs")], ["add_table2"])
    head = text.splitlines()[0]
    assert "latency_s[cpu,32px,b1] ↓" in head and "latency_s[A100,512px,b1] ↓" in head
    assert text.count("[eager]") == 2 and text.count("[graph+channels_last]") == 2
    assert text.count("| latency 32px b1 float32 CFG 1.0 |") == 4  # device, res, batch, dtype and CFG are stated
    partial = {**res, "complete": False}
    atomic_write_json(tmp_path / "partial.json", partial)
    assert measured_rows([tmp_path / "partial.json"]) == ([], [str(tmp_path / "partial.json")])
    (tmp_path / "other.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(AddbenchError, match="neither a run record nor a latency result"):
        measured_rows(find_records([str(tmp_path / "other.json")]))


def test_fast_only_and_cache_folder_only_for_compiled_variants(tiny_dir, tmp_path):
    """--no-eager times the fast variants alone; the compile-cache folder is set only when a variant compiles."""
    r = measure_latency(model=str(tiny_dir("sdxl")), res=32, nfe=[1], batch=1, runs=1, warmup=0, device="cpu",
                        modes=("fast",), compile_cache=str(tmp_path / "cc"))
    assert [x["mode"] for x in r["records"]] == ["fast"] and "vs_eager" not in r["records"][0]
    assert r["compile_cache"] is None and not (tmp_path / "cc").exists()  # nothing compiled: torch's caches untouched
    assert set(r["records"][0]["compile_cache_events"]) >= {"fx_graph_hits", "fx_graph_misses"}
