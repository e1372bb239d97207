"""CogVideoX-2b / -5b at full size with random weights: one sampling pass (text encode, per-step transformer
time, VAE decode) and ADM training iterations (per turn time, peak memory, FLOPs); prints the numbers, writes JSON.

    python benchmarks/video_cogvideox.py --arch cogvideox-2b --iters 3 --runs 2 --out video_2b.json
    python benchmarks/video_cogvideox.py --arch cogvideox-5b --iters 2 --runs 1 --skip adm
    python benchmarks/video_cogvideox.py --tiny --out tiny.json          # CPU smoke run, seconds

Base: ``addbench.bases.cogvideox.random_weight_base`` (``architectures.json``: transformer 1.69 B / 5.57 B,
3D VAE 216 M, T5-XXL encoder 4.76 B; the 5B uses 3D RoPE and SNR shift 1), bf16 on the GPU, prompts padded to
226 tokens by a small T5 tokenizer. ``--stand-in text_encoder,vae`` swaps parts for 1-layer stand-ins (same
interfaces) to save memory; the record says which. Needs torch, diffusers, transformers, safetensors only.

Sampling (``--steps`` DDIM steps at CFG ``--guidance``: one batched call on [null, cond] per step, as
``addbench.bases.sampling.denoise``; 49 frames at 480x720 unless ``--frames`` / ``--res``): ``--warmup``
passes then ``--runs`` timed ones, CUDA events; per part medians: text encode, each step (transformer call +
DDIM update), VAE decode (+ uint8 to the host), end to end. Steps 8 (the ADM student) by default; the teacher's
50-step time is 50 x the step time.

ADM (``dmdx.adm`` with its cogvideox preset, through the training engine exactly as ``addbench train``, except
that no training state is saved): micro-batch ``--micro-batch`` (1) video, ``--iters`` steps of which the
first ``--warmup-iters`` are not timed; per turn time (fake, g, d), videos/s, peak memory over the timed steps
(``peak_gib``) and over everything (``peak_all_gib``), FLOPs of step 0 by phase and MFU. Overrides:
``--set key=value`` (e.g. ``student_cfg=true`` for "ADM w/ CFG"). Timing and FLOP code: ``train_sdxl.py``.
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # train_sdxl (timers, FLOPs)
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # addbench, distillers from this checkout

import train_sdxl as tb  # noqa: E402

GIB = 2**30
PROMPT = "a golden retriever running through a field of sunflowers at sunset, slow motion, cinematic"


# ---- the base -------------------------------------------------------------------------------------------
def build_base(arch: str, tiny: bool, root: Path, device: str | None, stand_in: tuple[str, ...]):
    if tiny:
        from addbench.bases.loading import load_base
        from addbench.bases.tiny import save_tiny_pipeline

        pipe = save_tiny_pipeline("cogvideox", root / "pipe", rotary=(arch == "cogvideox-5b"))
        return load_base(str(pipe), device=device or "cpu", dtype="fp32")
    from addbench.bases.cogvideox import random_weight_base

    parts = tuple(p for p in ("transformer", "vae", "text_encoder") if p not in stand_in)
    return random_weight_base(arch, device=device or "cuda", dtype=torch.bfloat16, parts=parts)


def params(m) -> int:
    return sum(p.numel() for p in m.parameters())


# ---- one sampling pass ----------------------------------------------------------------------------------
@torch.no_grad()
def sampling_pass(base, sampler, clock: tb.Clock, seed: int = 0) -> dict:
    """``addbench.bases.sampling.denoise`` + decode + uint8, with a mark around every part and step."""
    from addbench.bases.sampling import initial_noise, timesteps_for, to_uint8

    ts = timesteps_for(base, sampler)
    shape = base.latent_shape(sampler.height, sampler.width, sampler.frames)
    m = [clock.mark()]
    cond = base.encode_prompts([PROMPT])
    m.append(clock.mark())
    x = initial_noise([seed], shape).to(base.device)
    for i, t in enumerate(ts):
        x0 = base.x0(x, t, cond, guidance=sampler.guidance).float()
        x = x0 if i + 1 == len(ts) else base.schedule.pf_ode_step(x, x0, t, ts[i + 1])
        m.append(clock.mark())
    clip = to_uint8(base.decode(x)).cpu()
    m.append(clock.mark())
    part = [clock.ms(m[i], m[i + 1]) for i in range(len(m) - 1)]
    return {"text_ms": part[0], "step_ms": part[1:-1], "vae_ms": part[-1], "e2e_ms": sum(part),
            "latents": x, "clip_shape": list(clip.shape), "finite": bool(torch.isfinite(x).all())}


def run_sampling(base, a, rec: dict) -> None:
    from addbench.bases.interface import Sampler

    cuda = base.device.type == "cuda"
    s = base.default_sampler
    h, w = a.res or (s.height, s.width)
    sampler = Sampler(steps=a.steps, guidance=a.guidance, height=h, width=w, frames=a.frames or s.frames)
    rec.update(steps=a.steps, guidance=a.guidance, height=h, width=w, frames=sampler.frames,
               latent_shape=list(base.latent_shape(h, w, sampler.frames)), nfe=sampler.nfe,
               vae_tiling=bool(a.vae_tiling))
    clock = tb.Clock(cuda)
    runs = []
    for i in range(a.warmup + a.runs):
        r = sampling_pass(base, sampler, clock)
        if i >= a.warmup:
            runs.append(r)
    med = lambda v: round(statistics.median(v), 2)  # noqa: E731
    steps = [ms for r in runs for ms in r["step_ms"]]
    rec.update(runs=len(runs), text_ms=med([r["text_ms"] for r in runs]), step_ms=med(steps),
               step_ms_min=round(min(steps), 2), step_ms_max=round(max(steps), 2),
               vae_decode_ms=med([r["vae_ms"] for r in runs]), e2e_ms=med([r["e2e_ms"] for r in runs]),
               clip_shape=runs[-1]["clip_shape"], finite=all(r["finite"] for r in runs),
               per_step_ms_last_run=[round(v, 2) for v in runs[-1]["step_ms"]])
    rec["teacher_50step_est_ms"] = round(rec["text_ms"] + 50 * rec["step_ms"] + rec["vae_decode_ms"], 1)
    rec["_latents"] = runs[-1]["latents"]  # for the --tiny test; dropped from the JSON


# ---- ADM iterations through the engine ------------------------------------------------------------------
def run_adm(base, a, root: Path, rec: dict) -> None:
    from addbench.train import loop
    from addbench.train.data import TrainData
    from addbench.train.entry import resolve_config
    from addbench.train.parallel import init_distributed
    from distillers.dmdx import ADM

    cuda = base.device.type == "cuda"
    prompts = root / "prompts.txt"
    prompts.write_text("\n".join([PROMPT, *tb.PROMPTS]) + "\n")
    mb = a.micro_batch
    over = [f"batch={mb}", f"budget_images={a.iters * mb}", "grad_checkpointing=true", "ema=0.0",
            f"precision={'bf16' if cuda else 'fp32'}", "sample_every_images=0", "tensorboard=false", "wandb=false",
            "progress=false", f"prompts={prompts}"]
    if a.res:
        over.append(f"resolution={a.res[0]},{a.res[1]}")
    if a.frames:
        over.append(f"frames={a.frames}")
    if a.tiny:
        over += ["resolution=32,32", "frames=9", "head_width=64"]
    over += list(a.set)
    cfg = resolve_config(ADM, base, over)
    rec.update(overrides=[o for o in over if not o.startswith("prompts=")],
               config={k: cfg[k] for k in ("gen_steps", "real_guidance", "student_cfg", "resolution", "frames",
                                           "head_width", "lr_g", "lr_d", "lr_fake", "batch")})
    ctx = init_distributed(base.device.type)
    torch.manual_seed(int(cfg["seed"]))
    plugin = ADM(cfg)
    t0 = time.perf_counter()
    timer = None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-adm-", dir=root) as run_dir:
            state = loop.setup(plugin, base, cfg, ctx, Path(run_dir))
            rec["setup_s"] = round(time.perf_counter() - t0, 2)
            if cuda:
                rec["after_setup_gib"] = round(torch.cuda.memory_allocated() / GIB, 2)
            rec["trainable_params"] = {k: params(n) for k, n in state.nets.items()}
            rec["heads"] = len(state.nets["d"])
            data = TrainData(cfg, plugin.data_needs, ctx.rank, ctx.world_size, ctx.device)
            timer = tb.TurnTimer(data, cuda, not a.no_flops, a.warmup_iters)
            with tb.no_state_saving():
                loop.run(state, timer, callbacks=[timer])
            rec["last_logs"] = {k: round(v, 5) for k, v in state.history[-1].items()} if state.history else {}
    finally:
        if timer is not None:
            timer._stop_flops()
            tb.summarize(rec, timer, mb, a.warmup_iters)
        tb.remove_taps(plugin)


def finish_adm(rec: dict, cuda: bool, peak: float | None) -> None:
    if cuda:
        now = round(torch.cuda.max_memory_allocated() / GIB, 2)
        if "peak_warmup_gib" in rec:
            rec["peak_gib"], rec["peak_all_gib"] = now, max(now, rec["peak_warmup_gib"])
        else:
            rec["peak_gib"] = rec["peak_all_gib"] = now
        rec["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / GIB, 2)
    if rec.get("model_tflop_per_step") is not None and rec.get("step_ms"):
        rec["model_tflop_per_s"] = round(rec["model_tflop_per_step"] / (rec["step_ms"] / 1e3), 2)
        if peak:
            rec["mfu"] = round(rec["model_tflop_per_s"] / peak, 4)


# ---- main -----------------------------------------------------------------------------------------------
def write_json(path: Path | None, result: dict) -> None:
    clean = json.loads(json.dumps(result, default=lambda o: None))
    for sec in ("sampling",):
        if isinstance(clean.get(sec), dict):
            clean[sec].pop("_latents", None)
    tb.write_json(path, clean)


def guarded(section: str, fn, rec: dict) -> int:
    """Run one section; an OOM or error is recorded (and printed), not raised. Returns 1 on an error."""
    try:
        fn()
        return 0
    except torch.OutOfMemoryError as e:
        rec.update(status="oom", error=str(e).splitlines()[0][:300])
        print(f"{section}: out of memory: {rec['error']}", flush=True)
        return 0
    except Exception as e:  # noqa: BLE001 - report and go on
        rec.update(status="error", error=f"{type(e).__name__}: {e}"[:500], traceback=traceback.format_exc()[-3000:])
        print(f"{section}: {rec['error']}\n{rec['traceback']}", flush=True)
        return 1


def parse_res(s: str | None):
    if not s:
        return None
    h, _, w = s.lower().partition("x")
    return int(h), int(w or h)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="cogvideox-2b", choices=["cogvideox-2b", "cogvideox-5b"])
    ap.add_argument("--tiny", action="store_true", help="tiny random CogVideoX on the CPU (smoke test of this script)")
    ap.add_argument("--skip", default="", help="comma list of sections to skip: sampling, adm")
    ap.add_argument("--steps", type=int, default=8, help="sampling: DDIM steps (8 = the ADM student)")
    ap.add_argument("--guidance", type=float, default=6.0, help="sampling: CFG scale (1 = none)")
    ap.add_argument("--runs", type=int, default=2, help="sampling: timed passes")
    ap.add_argument("--warmup", type=int, default=1, help="sampling: untimed passes first")
    ap.add_argument("--res", default=None, help="HxW pixels (default: the base's 480x720; --tiny 32x32)")
    ap.add_argument("--frames", type=int, default=None, help="frames per clip (default 49; --tiny 9)")
    ap.add_argument("--vae-tiling", action="store_true", help="decode with the VAE's spatial tiling")
    ap.add_argument("--iters", type=int, default=3, help="ADM: engine steps, warm-up included")
    ap.add_argument("--warmup-iters", type=int, default=1, help="ADM: first steps not timed (FLOPs counted on step 0)")
    ap.add_argument("--micro-batch", type=int, default=1, help="ADM: videos per step")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="ADM config override")
    ap.add_argument("--no-flops", action="store_true", help="ADM: skip the FLOP count of step 0")
    ap.add_argument("--stand-in", default="", help="comma list of text_encoder, vae: 1-layer stand-ins (memory)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="bf16 dense peak for MFU (default: by GPU name)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    a = ap.parse_args(argv)
    a.res = parse_res(a.res)
    skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    if skip - {"sampling", "adm"}:
        raise SystemExit(f"--skip takes sampling, adm; got {sorted(skip)}")
    if a.iters <= a.warmup_iters or a.warmup_iters < (0 if a.no_flops else 1):
        raise SystemExit("need --iters > --warmup-iters >= 1 (step 0 is the FLOP-counted warm-up; --no-flops allows 0)")
    stand_in = tuple(s.strip() for s in a.stand_in.split(",") if s.strip())
    if set(stand_in) - {"text_encoder", "vae"}:
        raise SystemExit("--stand-in takes text_encoder, vae")
    if not a.tiny and not torch.cuda.is_available() and (a.device or "cuda") == "cuda":
        raise SystemExit("full-size runs need a CUDA GPU; use --tiny on a CPU")
    if a.tiny:
        torch.set_num_threads(1)
    t_start = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="addbench-video-bench-")
    root = Path(tmp.name)
    base = build_base(a.arch, a.tiny, root, a.device, stand_in)
    cuda = base.device.type == "cuda"
    if a.vae_tiling:
        base.vae.enable_tiling()
    import diffusers
    import transformers

    peak, peak_src = tb.peak_tflops(base.device, a.peak_tflops)
    result = {"device": torch.cuda.get_device_name(base.device) if cuda else "cpu", "torch": torch.__version__,
              "diffusers": diffusers.__version__, "transformers": transformers.__version__,
              "arch": a.arch + (" (tiny)" if a.tiny else " (random weights)"), "dtype": str(base.dtype).replace("torch.", ""),
              "stand_in": list(stand_in), "peak_tflops": peak, "peak_source": peak_src,
              "params": {"transformer": params(base.network), "vae": params(base.vae),
                         "text_encoder": params(base.text_encoder)},
              "base_build_s": round(time.perf_counter() - t_start, 1)}
    if cuda:
        result["base_resident_gib"] = round(torch.cuda.memory_allocated() / GIB, 2)
    p = result["params"]
    print(f"{result['device']} | torch {torch.__version__} | diffusers {diffusers.__version__} | {result['arch']} "
          f"{result['dtype']} | transformer {p['transformer'] / 1e6:.1f} M, VAE {p['vae'] / 1e6:.1f} M, text "
          f"{p['text_encoder'] / 1e6:.1f} M{' (stand-ins: ' + ', '.join(stand_in) + ')' if stand_in else ''} | "
          f"built in {result['base_build_s']} s" + (f", resident {result['base_resident_gib']} GiB" if cuda else ""),
          flush=True)
    rc = 0
    if "sampling" not in skip:
        rec = result["sampling"] = {"status": "ok"}
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        rc |= guarded("sampling", lambda: run_sampling(base, a, rec), rec)
        if cuda:
            rec["peak_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 2)
        if rec["status"] == "ok":
            print(f"sampling {rec['frames']}x{rec['height']}x{rec['width']}, {rec['steps']} steps, CFG {rec['guidance']:g} "
                  f"({rec['nfe']} NFE), median of {rec['runs']}: text {rec['text_ms']:.1f} ms | step {rec['step_ms']:.1f} ms "
                  f"(min {rec['step_ms_min']:.1f}, max {rec['step_ms_max']:.1f}) | VAE decode {rec['vae_decode_ms']:.1f} ms | "
                  f"end to end {rec['e2e_ms']:.1f} ms | 50-step teacher est. {rec['teacher_50step_est_ms'] / 1e3:.2f} s"
                  + (f" | peak {rec['peak_gib']} GiB" if cuda else "") + f" | clip {rec['clip_shape']}", flush=True)
        write_json(a.out, result)
    if "adm" not in skip:
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        rec = result["adm"] = {"status": "ok", "micro_batch": a.micro_batch}
        if cuda:
            rec["resident_gib"] = round(torch.cuda.memory_allocated() / GIB, 2)
        t0 = time.perf_counter()
        rc |= guarded("adm", lambda: run_adm(base, a, root, rec), rec)
        rec["total_s"] = round(time.perf_counter() - t0, 1)
        finish_adm(rec, cuda, peak)
        if rec.get("step_ms") is not None:
            turns = ", ".join(f"{t} {v['mean_ms']:.0f} ms" for t, v in rec["turn_ms"].items())
            tp = rec["trainable_params"]
            print(f"ADM iteration ({rec['config']['gen_steps']}-step student, micro-batch {a.micro_batch}, "
                  f"{rec['steps_run'] - a.warmup_iters} timed after {a.warmup_iters} warm-up): {rec['step_ms']:.0f} ms | "
                  f"{turns} | {rec['images_per_s']:.3f} videos/s"
                  + (f" | peak {rec['peak_gib']} GiB (all {rec['peak_all_gib']} GiB)" if cuda else "")
                  + (f" | {rec['model_tflop_per_step']:.1f} TFLOP/step" if rec.get("model_tflop_per_step") else "")
                  + (f", MFU {rec['mfu']:.1%}" if rec.get("mfu") else "")
                  + f" | trainable g {tp['g'] / 1e6:.1f} M, fake {tp['fake'] / 1e6:.1f} M, "
                    f"{rec['heads']} heads {tp['d'] / 1e6:.1f} M", flush=True)
        elif rec["status"] == "ok":
            rec["status"] = "error"
    result["total_s"] = round(time.perf_counter() - t_start, 1)
    result["complete"] = True
    write_json(a.out, result)
    if a.out:
        print(f"wrote {a.out}")
    tmp.cleanup()
    main.last_result = result  # the --tiny test reads the latents from here
    return rc


if __name__ == "__main__":
    sys.exit(main())
