"""Train the toy teacher (pixel-space UNet + CLIP text encoder) from scratch.

    python -m addbench.toy.train_base --out DIR --steps N --batch B --device cuda|cpu --seed S
                                     [--lr 3e-4] [--max-minutes M] [--ckpt-every 1000]

Epsilon-prediction MSE on SD1.5's schedule (t ~ U{0..999}), 10% caption dropout (empty string) so
classifier-free guidance works, AdamW + 500-step warm-up, EMA 0.999 (the exported weights), bf16
autocast on CUDA. Batch k is rendered from (seed, k) alone, so a run is reproducible and resuming
(run the same command again: ``DIR/train_state.pt``) continues the exact data stream. ``--max-minutes``
stops early with a checkpoint; ``DIR`` always ends as a loadable diffusers-layout folder.
The shipped ``addbench/toy/assets/base`` was made with:
``--steps 12000 --batch 256 --device cuda --seed 0 --max-minutes 6`` on one H100 (see addbench_base.json).
"""
from __future__ import annotations

import argparse
import copy
import json
import pathlib
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from addbench.toy import nets, pipeline, stream

CAPTION_DROPOUT = 0.1
EMA_DECAY = 0.999
WARMUP = 500


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=12000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--ckpt-every", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--tokenizer", type=Path, default=pipeline.BASE_DIR / "tokenizer")
    return ap.parse_args(argv)


def main(argv=None) -> Path:
    a = parse(argv)
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    tok = pipeline.load_tokenizer(a.tokenizer)
    unet, te = nets.build_unet().to(dev), nets.build_text_encoder().to(dev)
    ema = {"unet": copy.deepcopy(unet).eval().requires_grad_(False), "te": copy.deepcopy(te).eval().requires_grad_(False)}
    params = list(unet.parameters()) + list(te.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01)
    sched = nets.build_scheduler()
    abar = sched.alphas_cumprod.to(dev)
    state_f = a.out / "train_state.pt"
    step = 0
    if state_f.is_file():
        # tensors and plain containers only (no code runs); Path is allowed for states whose args held Paths
        with torch.serialization.safe_globals([pathlib.PosixPath, pathlib.WindowsPath]):
            st = torch.load(state_f, map_location=dev, weights_only=True)
        unet.load_state_dict(st["unet"]); te.load_state_dict(st["te"])
        ema["unet"].load_state_dict(st["ema_unet"]); ema["te"].load_state_dict(st["ema_te"])
        opt.load_state_dict(st["opt"]); step = st["step"]
        print(f"resumed from {state_f} at step {step}", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)

    def save_state():
        tmp = state_f.with_suffix(".tmp")
        torch.save({"unet": unet.state_dict(), "te": te.state_dict(), "ema_unet": ema["unet"].state_dict(),
                    "ema_te": ema["te"].state_dict(), "opt": opt.state_dict(), "step": step,
                    "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}}, tmp)
        tmp.replace(state_f)

    t0 = time.time()
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)
    for k, images, captions, _ in stream.loader(a.batch, a.seed, step, a.steps, a.workers if dev.type == "cuda" else 0):
        g = torch.Generator(device="cpu").manual_seed(a.seed * 1_000_003 + k)
        drop = torch.rand(len(captions), generator=g) < CAPTION_DROPOUT
        captions = ["" if d else c for c, d in zip(captions, drop.tolist())]
        x0 = nets.to_unit(images).to(dev, non_blocking=True)
        t = torch.randint(0, 1000, (len(captions),), generator=g).to(dev)
        eps = torch.randn(x0.shape, generator=g).to(dev)
        ab = abar[t].view(-1, 1, 1, 1).float()
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        ids = tok(captions, padding="max_length", max_length=nets.CONTEXT_LENGTH, truncation=True, return_tensors="pt").input_ids.to(dev)
        for group in opt.param_groups:
            group["lr"] = a.lr * min(1.0, (k + 1) / WARMUP)
        with amp:
            cond = te(ids).last_hidden_state
            pred = unet(x_t, t, encoder_hidden_states=cond).sample
        loss = F.mse_loss(pred.float(), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            d = min(EMA_DECAY, (1 + k) / (10 + k))
            for name, live in (("unet", unet), ("te", te)):
                for pe, p in zip(ema[name].parameters(), live.parameters()):
                    pe.lerp_(p.detach(), 1 - d)
        step = k + 1
        if step % 200 == 0:
            print(f"step {step} loss {loss.item():.4f} {(time.time() - t0) / 60:.1f} min", flush=True)
        out_of_time = a.max_minutes is not None and (time.time() - t0) > 60 * a.max_minutes
        if step % a.ckpt_every == 0 or out_of_time:
            save_state()
        if out_of_time:
            print(f"stopping at step {step}: --max-minutes {a.max_minutes} reached", flush=True)
            break
    save_state()
    meta = {"default_sampler": nets.DEFAULT_SAMPLER,
            "schedule": "DDPM scaled_linear beta 0.00085->0.012, 1000 steps, epsilon prediction (SD1.5's)",
            "training": {"script": "python -m addbench.toy.train_base", "steps_done": step, "batch": a.batch, "seed": a.seed,
                         "lr": a.lr, "caption_dropout": CAPTION_DROPOUT, "ema": EMA_DECAY, "device": str(dev),
                         "minutes": round((time.time() - t0) / 60, 2), "images_seen": step * a.batch}}
    pipeline.save_components(a.out, ema["unet"], ema["te"], a.tokenizer, meta)
    print(json.dumps(meta["training"]), flush=True)
    return a.out


if __name__ == "__main__":
    main()
