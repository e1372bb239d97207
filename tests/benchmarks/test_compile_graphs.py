"""benchmarks/compile_graphs.py: graphs dynamo captures for an engine ``compile`` setting (tiny SDXL, CPU, aot_eager)."""
from __future__ import annotations

import json


def test_counts_the_graphs_of_the_compiled_layer_classes(load_benchmark, tmp_path):
    bench = load_benchmark("compile_graphs")
    out = tmp_path / "g.json"
    assert bench.main(["--compile", "layers:BasicTransformerBlock", "--steps", "2", "--out", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    assert row["compile"] == "layers:BasicTransformerBlock" and set(row["units"]) == {"BasicTransformerBlock"}
    assert row["units"]["BasicTransformerBlock"] % 3 == 0  # the same blocks in the teacher, the student, the fake score
    # with grad (student), without (real score), input-grad only through frozen weights (fake score in the g turn)
    assert row["unique_graphs"] >= 3
