"""SDXL-architecture generation latency, eager vs fast, in one process: prints a table, writes JSON.

    python benchmarks/latency_sdxl.py --res 512 --nfe 1,2,4 --batch 1 --runs 20 \
        --variants graph,graph+compile --out latency.json

Random weights of the full-size SDXL architecture unless ``--model`` (a pipeline / checkpoint dir) is
given. Every fast variant is checked against the eager output of the same prompts and seeds (final x0
latents, relative L2 <= ``--tol``, finite; uint8 images); the script exits 1 when a check fails (after
writing the JSON). Variants: ``graph`` (CUDA graph + channels-last + SDPA), ``graph+compile`` (the same
with torch.compile of UNet and VAE decoder, ``--compile-mode``), ``+text`` also compiles the text encoders,
``+fused`` adds fused QKV projections, ``+streams`` runs SDXL's two text encoders on two CUDA streams,
``+bench`` turns on cuDNN's benchmark mode (process-wide: list it last); ``--inductor KEY=VALUE`` sets
``torch._inductor.config`` for the compiled variants (e.g. ``coordinate_descent_tuning=true``, ``freezing=true``:
cheaper to compile than max-autotune). With ``--out`` the JSON is rewritten (atomically) after every record,
``"complete": false`` until the end, so a run killed in a later variant's compile keeps what it measured.
``--profile`` adds, per fast variant, each part's kernels (launch count, summed kernel time against the part's
timed median, the top kernels) from one un-graphed run under ``torch.profiler``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from addbench.bases.fast import parse_inductor, parse_variant
from addbench.errors import AddbenchError
from addbench.eval.latency import measure_latency
from addbench.eval.records import atomic_write_json

TARGET_MS, TARGET_SPEEDUP = 15.0, 6.0


def table(result: dict) -> str:
    head = ("mode", "variant", "NFE", "text ms", "net eval ms", "VAE ms", "e2e med ms", "e2e p90 ms", "speedup",
            "latents relL2", "max|d uint8|")
    rows = [head]
    for r in result["records"]:
        p, v = r["parts"], r.get("vs_eager", {})
        rows.append((r["mode"], r["variant"], str(r["nfe"]), f"{p['text_encode']['median_ms']:.2f}",
                     f"{p['network_eval_median_ms']:.2f}", f"{p['vae_decode']['median_ms']:.2f}",
                     f"{p['end_to_end']['median_ms']:.2f}", f"{p['end_to_end']['p90_ms']:.2f}",
                     f"{r['speedup_end_to_end']:.2f}x" if "speedup_end_to_end" in r else "-",
                     f"{v['latents_rel_l2']:.2e}" if v else "-", str(v.get("max_abs_uint8", "-"))))
    w = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(row)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (x + 2) for x in w) + "|")
    return "\n".join(lines)


def profile_lines(result: dict, top: int = 6) -> list[str]:
    """Per profiled variant and part: kernel launches, their summed time against the part's median, top kernels."""
    lines = []
    for r in result["records"]:
        for part, prof in r.get("profile", {}).items():
            timed = r["parts"].get(part, {}).get("median_ms")
            lines.append(f"kernels | {r['variant']} | {part}: {prof['kernels']} launches, {prof['distinct']} distinct, "
                         f"busy {prof['busy_ms']:.2f} ms" + (f" of {timed:.2f} ms timed" if timed else ""))
            lines += [f"    {k['self_ms']:8.3f} ms {100 * k['share']:5.1f}% x{k['calls']:<4d} {k['name'][:90]}"
                      for k in prof["top"][:top]]
    return lines


def checks(result: dict, tol: float) -> list[str]:
    bad = []
    for r in result["records"]:
        v = r.get("vs_eager")
        if v and (not v["latents_finite"] or not v["latents_rel_l2"] <= tol):
            bad.append(f"{r['variant']} NFE {r['nfe']}: latents rel L2 {v['latents_rel_l2']:.3e} > {tol} "
                       f"or not finite ({v['latents_finite']})")
    return bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="pipeline / checkpoint dir (default: random-weight SDXL)")
    ap.add_argument("--res", type=int, default=512)
    ap.add_argument("--nfe", default="1,2,4")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--variants", default="graph,graph+compile")
    ap.add_argument("--compile-mode", default="default")
    ap.add_argument("--inductor", action="append", default=[], metavar="KEY=VALUE",
                    help="torch._inductor.config setting for the compiled variants (repeatable), e.g. "
                         "coordinate_descent_tuning=true, freezing=true")
    ap.add_argument("--modes", default="eager,fast")
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--tol", type=float, default=5e-2, help="max relative L2 of fast vs eager final latents")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    ap.add_argument("--profile", action="store_true",
                    help="also list each part's kernels (count, busy ms, the top ones) for every fast variant")
    a = ap.parse_args(argv)
    try:
        variants = [parse_variant(v, a.compile_mode, parse_inductor(a.inductor)) for v in a.variants.split(",") if v]
    except AddbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def progress(partial: dict) -> None:  # each record as it lands: a timeout in a later compile loses nothing
        r = partial["records"][-1]
        print(f"record: {r['mode']} | {r['variant']} | NFE {r['nfe']} | end to end "
              f"{r['parts']['end_to_end']['median_ms']:.2f} ms", flush=True)
        if a.out:
            atomic_write_json(a.out, partial)

    result = measure_latency(model=a.model, base=None if a.model else "sdxl", random_weights=a.model is None,
                             res=a.res, nfe=[int(n) for n in a.nfe.split(",")], batch=a.batch, runs=a.runs,
                             device=a.device, dtype=a.dtype, modes=tuple(a.modes.split(",")), guidance=a.guidance,
                             warmup=a.warmup, fast_options=variants, profile=a.profile, on_record=progress)
    bad = checks(result, a.tol)
    result["checks"] = {"tol_latents_rel_l2": a.tol, "failed": bad}
    one = [r for r in result["records"] if r["mode"] == "fast" and r["nfe"] == 1]
    if one:
        best = min(one, key=lambda r: r["parts"]["end_to_end"]["median_ms"])
        ms, sp = best["parts"]["end_to_end"]["median_ms"], best.get("speedup_end_to_end")
        result["target_1step"] = {"variant": best["variant"], "end_to_end_ms": ms, "speedup": sp,
                                  "meets_15ms": ms <= TARGET_MS, "meets_6x": sp is not None and sp >= TARGET_SPEEDUP}
    if a.out:
        atomic_write_json(a.out, result)
    print(f"{result['device']} | torch {result['torch']} | diffusers {result['diffusers']} | {result['dtype']} | "
          f"{a.res}px batch {a.batch} | CFG {a.guidance} | {a.runs} runs after {a.warmup} warm-up | medians, ms")
    for r in result["records"]:
        if r["mode"] == "fast":
            print(f"  {r['variant']} NFE {r['nfe']}: graph scope {r.get('graph_scope')}, build {r.get('build_s', 0):.1f}s"
                  + (f", graph error: {r['graph_error']}" if r.get("graph_error") else ""))
    for line in profile_lines(result):
        print(line)
    print(table(result))
    if "target_1step" in result:
        print("1-step target:", json.dumps(result["target_1step"]))
    for line in bad:
        print("CHECK FAILED:", line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
