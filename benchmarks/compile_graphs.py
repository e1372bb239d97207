"""How many graphs ``torch.compile`` makes for a training ``compile`` setting, counted on the CPU before any GPU
time is spent on compiling them.

    python benchmarks/compile_graphs.py --compile layers --compile layers:BasicTransformerBlock --steps 3

Trains ``--steps`` steps of ``--method`` (default DMDX ADM) on the tiny SDXL pipeline
(``addbench.bases.tiny.save_tiny_pipeline("sdxl")``, 64², batch 2) through the engine, once per ``--compile``
value, with every compiled unit on dynamo's ``aot_eager`` backend: the same graph capture, forward/backward split
and recompiles as inductor, without generating kernels, so a setting costs seconds here. Prints the unique graphs
and the compiled units by class. Each distinct (layer shape, grad mode, batch) is one more graph for inductor to
compile on the GPU; the full SDXL UNet has more shapes than the tiny one (three resolution levels, not two).
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

TINY = ["batch=2", "resolution=64", "tensorboard=false", "progress=false", "sample_every_images=0",
        "prompts=toy:8", "latent_taps=base", "head_width=64"]


def count(pipe: str, method: str, setting: str, steps: int, root: Path, extra: list[str]) -> dict:
    import torch._dynamo
    from torch._dynamo.utils import counters

    from addbench.train.entry import resolve_config, train

    torch._dynamo.reset()
    counters.clear()
    units: collections.Counter = collections.Counter()
    real = torch.nn.Module.compile

    def on_aot_eager(self, **kw):
        units[type(self).__name__] += 1
        return real(self, backend="aot_eager", **kw)

    keys = set(resolve_config(method, pipe))
    overrides = [o for o in TINY if o.split("=")[0] in keys] + [f"compile={setting}", f"budget_images={2 * steps}"]
    torch.nn.Module.compile = on_aot_eager
    t0 = time.perf_counter()
    try:
        train(method, pipe, root / setting.replace(":", "_").replace(",", "_"), overrides + extra, device="cpu")
    finally:
        torch.nn.Module.compile = real
    return {"compile": setting, "unique_graphs": int(counters["stats"]["unique_graphs"]),
            "units": dict(units), "seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--compile", action="append", required=True, help="an engine compile value (repeatable)")
    ap.add_argument("--method", default="dmdx.adm")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config override")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    from addbench.bases.tiny import save_tiny_pipeline
    from addbench.eval.records import atomic_write_json

    torch.set_num_threads(2)
    rows = []
    with tempfile.TemporaryDirectory(prefix="addbench-graphs-") as tmp:
        root = Path(tmp)
        pipe = str(save_tiny_pipeline("sdxl", root / "pipe"))
        for setting in a.compile:
            rows.append(count(pipe, a.method, setting, a.steps, root, a.set))
            print(json.dumps(rows[-1]), flush=True)
    if a.out:
        atomic_write_json(a.out, {"method": a.method, "steps": a.steps, "torch": torch.__version__, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
