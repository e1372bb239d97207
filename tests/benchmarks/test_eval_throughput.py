"""benchmarks/eval_throughput.py --tiny: the whole path on the CPU (world of random-weight files where the real
loaders look, the coco10k suite, generation and metric timings, the runner end to end, projection, report)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "eval_throughput.py"
METRICS = {"clip_score", "pickscore", "hpsv2", "mps", "fid"}


def test_tiny_run_end_to_end(tmp_path):
    out = tmp_path / "tiny.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(SCRIPT.parents[1]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--images", "8", "--work", str(tmp_path / "work"),
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads(out.read_text())
    assert res["tiny"] and res["world_size"] == 1 and res["device"] == "cpu"
    parts, e2e = res["parts"], res["e2e"]
    assert parts["generate"]["images_per_s"] > 0 and parts["all_metrics_shared_batch"]["images_per_s"] > 0
    assert {k.split("[")[0] for k in parts["metrics"]} == METRICS
    assert e2e["complete"] and e2e["n"] == 8 and e2e["timing_s"]["generated"] == 8
    assert {k.split("[")[0] for k in e2e["metric_values"]} == METRICS
    # the suite's real kwargs resolved through the world: the hub ids and tags, not local paths
    assert "pickscore[PickScore_v1,logit_scale*cos]" in e2e["metric_values"]
    assert "fid[inception-2015-12-05,clean]" in e2e["metric_values"]
    assert e2e["projected_10k_s"] >= e2e["wall_s"] > 0
    assert "projected coco10k" in proc.stdout and "end to end: 8 images" in proc.stdout
    assert not list((tmp_path / "work" / "runs").glob("*/samples"))  # samples removed after the run


def test_report_speedup_from_two_results(tmp_path, capsys, load_benchmark):
    bench = load_benchmark("eval_throughput")
    t = {"load": 5, "wait_metrics": 0, "generate": 100, "score": {"fid[x]": 50}, "wait_io": 1, "loop": 160, "sync": 1}
    one = {"device": "H200", "world_size": 1, "torch": "2", "gen_mode": "graph", "metric_dtype": "suite", "tiny": False,
           "e2e": {"n": 2000, "world_size": 1, "wall_s": 200.0, "images_per_s": 10.0, "timing_s": t,
                   "projected_10k_s": 800.0, "meets_10min": False}}
    two = json.loads(json.dumps(one))
    two["world_size"] = two["e2e"]["world_size"] = 2
    two["e2e"].update(wall_s=105.0, projected_10k_s=420.0, meets_10min=True)
    (tmp_path / "a.json").write_text(json.dumps(one))
    (tmp_path / "b.json").write_text(json.dumps(two))
    assert bench.main(["--report", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    text = capsys.readouterr().out
    assert "misses the 10-minute target" in text and "meets the 10-minute target" in text
    assert "projected 10k 1.90x, measured at n=2000 1.90x -> meets the 1.8x target" in text
