"""addbench.eval.profiling: the kernel table of one call (CPU operators here; CUDA kernels on a GPU)."""
import torch

from addbench.eval.profiling import profile_kernels


def test_profile_kernels_counts_and_ranks_what_ran():
    a, b = torch.randn(256, 256), torch.randn(256, 256)

    def fn():
        for _ in range(3):
            torch.mm(a, b)
        torch.relu(a)

    t = profile_kernels(fn, top=100, cuda=False)
    rows = {r["name"]: r for r in t["top"]}
    assert rows["aten::mm"]["calls"] == 3 and rows["aten::relu"]["calls"] == 1
    assert t["distinct"] == len(t["top"]) and t["kernels"] == sum(r["calls"] for r in t["top"]) >= 4
    assert t["top"][0]["name"] == "aten::mm"  # three 256^3 products outweigh one relu
    assert abs(sum(r["share"] for r in t["top"]) - 1.0) < 1e-6
    assert abs(t["busy_ms"] - sum(r["self_ms"] for r in t["top"])) < 1e-6 and t["busy_ms"] > 0
    one = profile_kernels(fn, top=1, cuda=False)
    assert len(one["top"]) == 1 and one["distinct"] == t["distinct"] and one["top"][0]["name"] == "aten::mm"
