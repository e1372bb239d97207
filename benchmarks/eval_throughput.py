"""Evaluation throughput of the coco10k suite at SDXL scale, random weights: generation alone, each metric alone,
and ``addbench eval``'s runner end to end; prints a table, writes JSON.

    python benchmarks/eval_throughput.py --images 2000 --out thru_1gpu.json                  # one GPU
    torchrun --standalone --nproc_per_node=2 benchmarks/eval_throughput.py --images 2000 --out thru_2gpu.json
    python benchmarks/eval_throughput.py --report thru_1gpu.json thru_2gpu.json             # tables + speedup
    python benchmarks/eval_throughput.py --tiny --images 16                                  # CPU smoke run

Time does not depend on weight values, so everything has the real architecture and random weights, written
where the real loading code looks for it (the "world", built once under ``--work`` and reused):

* the model: a 1-step SDXL "student": ``random_weight_base("sdxl")`` (architectures.json: UNet, VAE, both text
  encoders) saved as a diffusers pipeline directory in bf16 with an ``addbench_sampler.json`` (1 step, no CFG,
  512²), loaded by ``load_generator`` inside the run, on the fast path (``--gen``: ``graph`` = CUDA graph +
  channels-last + SDPA, ``graph+compile``, or ``eager``);
* the coco10k suite itself (``addbench/suites/coco10k.yaml``); its prompt set built by ``build_prompt_set`` from a
  synthetic ``captions_val2014.json`` of the official shape (40,504 images, 202,654 captions);
* metric networks in a Hugging Face cache (``HF_HUB_CACHE`` = ``WORK/world-*/hf``, offline), in the layout the
  suite's kwargs resolve to: open_clip ViT-g-14 as the ``laion2b_s34b_b88k`` tag's file
  (``laion/CLIP-ViT-g-14-laion2B-s34B-b88K/open_clip_model.safetensors``, fp32), PickScore as
  ``yuvalkirstain/PickScore_v1`` (transformers ``CLIPModel``, CLIP ViT-H-14 config, fp32), the CLIP-H processor
  ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` (its preprocessor config + the real CLIP BPE tokenizer), HPSv2.1 as
  ``xswu/HPSv2/HPS_v2.1_compressed.pt`` (open_clip ViT-H-14, fp16); clean-fid's Inception as
  ``$ADDBENCH_WEIGHTS/inception-2015-12-05.pt`` (a torchscript with clean-fid's interface around torchvision's
  InceptionV3 blocks: the same network shape as the FID Inception);
* passed through the suite's own metric kwargs (``--metric``-style overrides), because their defaults are user
  paths: ``mps.checkpoint`` (a converted MPS file: CLIP-H + the MPS head, fp32, written by ``mps.save_mps``) and
  ``fid.reference`` (fake COCO statistics: 2048-d mean + a PSD covariance, ``.npz``).

``--metric-dtype`` picks the metric precision: ``suite`` the suite's own ``metric_precision`` (coco10k v2: tf32),
``fp32`` / ``tf32`` that precision (``Suite.with_metric_precision``: fp32 weights, TF32 matmuls allowed or not),
``bf16`` fp32 plus each metric's own precision kwarg (CLIP score ``precision=pure_bf16``, PickScore / MPS
``dtype=bfloat16``, HPSv2 ``amp=True``: fp16 autocast like the official scorer). ``--also-dtypes`` times the
metrics in other precisions on the same images and reports how far their values move (``drift_vs_*``).

``--tiny`` swaps every network for a tiny one (CPU, 64² generation upscaled to the suite's 512 by the runner;
then ``clip_score`` needs a ``local-dir:`` model and ``hpsv2`` tiny ``arch_overrides``, both via overrides).

Measured: generation alone (``Generator.generate`` in the run's micro-batches, warm), each metric alone
(``update_batch`` on 64 generated 512² images, its own resizes included, warm), all metrics sharing one batch,
and the end-to-end ``evaluate`` (loading, generation + scoring + PNG writing, sync, record) for ``--images`` images
with the per-phase seconds the runner records. Projection to 10k images: the measured wall time plus the
steady-state cost per image (generate + score + I/O waits of the run, per rank) for the images not run; the
record phase (bootstrap CIs) grows a little with n, so the projection is a slight underestimate.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

TARGET_S, TARGET_SPEEDUP, SUITE_N = 600.0, 1.8, 10_000
COMMIT = hashlib.sha1(b"addbench random weights").hexdigest()  # fake snapshot revision of the HF cache
REPOS = {"clip": "laion/CLIP-ViT-g-14-laion2B-s34B-b88K", "processor": "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
         "pickscore": "yuvalkirstain/PickScore_v1", "hps": "xswu/HPSv2"}
CLIP_H = dict(  # laion/CLIP-ViT-H-14-laion2B-s32B-b79K (PickScore, MPS)
    text=dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24),
    vision=dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=16, num_hidden_layers=32, patch_size=14,
                image_size=224), projection_dim=1024)
CLIP_TINY = dict(text=dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2),
                 vision=dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2,
                             patch_size=8, image_size=32), projection_dim=16)
OPEN_CLIP_TINY = dict(embed_dim=16, vision_cfg=dict(image_size=32, layers=1, width=32, head_width=16, patch_size=8),
                      text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=1))
WORDS = dict(adj="red small large old wooden white black young busy empty green tall".split(),
             noun="man woman dog cat bus train pizza plate giraffe kite skateboarder clock bench surfer".split(),
             verb="sitting standing riding holding walking parked lying eating flying looking".split(),
             place="street table beach field kitchen park table snow road room window water".split())


# ---- environment: set before anything imports huggingface_hub ------------------------------------------------
def setup_env(work: Path, tiny: bool) -> Path:
    world = work / ("world-tiny" if tiny else "world-full")
    os.environ["HF_HUB_CACHE"] = str(world / "hf")
    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["ADDBENCH_CACHE"] = str(work / "cache")
    os.environ["ADDBENCH_WEIGHTS"] = str(world / "weights")
    if "huggingface_hub" in sys.modules:  # already imported (e.g. by a caller): point its constants here too
        from huggingface_hub import constants

        constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE = str(world / "hf"), True
    return world


NEEDS = ("diffusers", "transformers", "open_clip", "cleanfid", "scipy", "ftfy", "pandas", "pyarrow", "rich", "yaml",
         "safetensors", "huggingface_hub", "PIL", "torchvision")  # what the run imports (besides torch, numpy)


def preflight() -> None:
    import importlib.util

    missing = [m for m in NEEDS if importlib.util.find_spec(m) is None]
    if missing:
        raise SystemExit(f"eval_throughput: cannot import {', '.join(missing)}; install them (or put their wheels "
                         f"on PYTHONPATH) first")


def rank() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


# ---- the world: random-weight files where the real loaders look ----------------------------------------------
def snapshot(world: Path, repo: str) -> Path:
    """``models--org--name/snapshots/<rev>/`` of the world's HF cache (refs/main points at it)."""
    folder = world / "hf" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(COMMIT)
    (folder / "snapshots" / COMMIT).mkdir(parents=True, exist_ok=True)
    return folder / "snapshots" / COMMIT


def write_captions(path: Path, seed: int = 0) -> Path:
    """A captions_val2014.json of the official shape: 40,504 images, 202,654 captions, COCO-like sentences."""
    import numpy as np

    rng = np.random.default_rng(seed)
    images, anns = 40504, 202654
    per = np.full(images, 5)
    per[: anns - 5 * images] += 1
    w = {k: rng.choice(v, anns) for k, v in WORDS.items()}
    adj2 = rng.choice(WORDS["adj"], anns)
    image_ids = np.repeat(np.arange(1, images + 1) * 7, per)
    ann = [{"image_id": int(image_ids[j]), "id": j + 1,
            "caption": f"A {w['adj'][j]} {w['noun'][j]} {w['verb'][j]} next to a {adj2[j]} {w['place'][j]}."}
           for j in range(anns)]
    path.write_text(json.dumps({"images": [{"id": int(i)} for i in np.unique(image_ids)], "annotations": ann}))
    return path


def write_ref_stats(path: Path, dim: int = 2048, seed: int = 0) -> Path:
    import numpy as np

    rng = np.random.default_rng(seed)
    a = rng.standard_normal((dim, 256)) * 0.5
    np.savez(path, mu=rng.standard_normal(dim) * 0.1, sigma=a @ a.T / 256 + 0.01 * np.eye(dim))
    return path


def write_inception(path: Path, tiny: bool) -> Path:
    """A torchscript with clean-fid's InceptionV3W interface (``.layers``: (N,3,299,299) in [-1,1] -> (N,2048,1,1))."""
    import torch
    from torch import nn

    class Inception(nn.Module):
        def __init__(self, layers):
            super().__init__()
            self.layers = layers

        def forward(self, x, return_features: bool = False):
            return self.layers((x - 128) / 128).flatten(1)

    torch.manual_seed(0)
    if tiny:
        layers = nn.Sequential(nn.Conv2d(3, 8, 8, stride=8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 2048, 1))
    else:
        import torchvision

        net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
        names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                 "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                 "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool"]
        layers = nn.Sequential(*[getattr(net, n) for n in names])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.script(Inception(layers.eval())).save(str(path))
    return path


def clip_config(dims: dict):
    from transformers import CLIPConfig

    tok = dict(vocab_size=49408, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407,
               pad_token_id=49407, hidden_act="gelu")
    return CLIPConfig(text_config={**tok, **dims["text"], "projection_dim": dims["projection_dim"]},
                      vision_config={**dims["vision"], "hidden_act": "gelu", "projection_dim": dims["projection_dim"]},
                      projection_dim=dims["projection_dim"])


def build_world(world: Path, tiny: bool, device: str) -> dict:
    """Write every random-weight file (once); returns what was written with its size."""
    import torch
    from safetensors.torch import save_file

    from addbench.bases.tiny import save_tiny_pipeline, write_pipeline_dir
    from addbench.bases.tokenizer import build_clip_tokenizer
    from addbench.metrics.mps import MPSHead, save_mps
    from addbench.prompts import build_prompt_set
    from addbench.suites import load_suite

    t0 = time.perf_counter()
    world.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    res = 64 if tiny else 512
    sampler = {"steps": 1, "guidance": 1.0, "height": res, "width": res}
    # the model: a 1-step SDXL student pipeline (bf16 on disk)
    model_dir = world / "sdxl-1step"
    if tiny:
        save_tiny_pipeline("sdxl", model_dir)
    else:
        from diffusers import DDIMScheduler

        from addbench.eval.latency import SDXL_SCHEDULER, random_weight_base

        base = random_weight_base("sdxl", device=dev, dtype=torch.bfloat16)
        write_pipeline_dir(model_dir, "StableDiffusionXLPipeline", {
            "unet": base.network, "vae": base.vae, "text_encoder": base.text_encoder,
            "text_encoder_2": base.text_encoder_2, "tokenizer": base.tokenizer, "tokenizer_2": base.tokenizer_2,
            "scheduler": DDIMScheduler(**SDXL_SCHEDULER)}, {"force_zeros_for_empty_prompt": True})
        del base
    (model_dir / "addbench_sampler.json").write_text(json.dumps(sampler))
    # prompts: the suite's own prompt set, built from an official-shape file
    build_prompt_set(load_suite("coco10k").prompts, write_captions(world / "captions_val2014.json"))
    write_ref_stats(world / "coco2014_val_stats.npz")
    write_inception(world / "weights" / "inception-2015-12-05.pt", tiny)
    # CLIP score: open_clip ViT-g-14, the laion2b_s34b_b88k tag's file (tiny: a local-dir model)
    import open_clip

    torch.manual_seed(1)
    if tiny:
        d = world / "tiny-open-clip"
        d.mkdir(exist_ok=True)
        (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": OPEN_CLIP_TINY}))
        save_file(open_clip.create_model(f"local-dir:{d}").state_dict(), str(d / "open_clip_model.safetensors"))
    else:
        with torch.device(dev):
            m = open_clip.create_model("ViT-g-14", pretrained=None)
        save_file({k: v.detach().contiguous().cpu() for k, v in m.state_dict().items()},
                  str(snapshot(world, REPOS["clip"]) / "open_clip_model.safetensors"))
        del m
    # the CLIP-H processor (PickScore, MPS): preprocessor config + the real CLIP BPE tokenizer + config.json
    proc = snapshot(world, REPOS["processor"])
    size = 32 if tiny else 224
    (proc / "preprocessor_config.json").write_text(json.dumps({
        "crop_size": size, "do_center_crop": True, "do_normalize": True, "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": size}))
    build_clip_tokenizer(proc)
    dims = CLIP_TINY if tiny else CLIP_H
    clip_config(dims).save_pretrained(proc)  # the repo's config.json (AutoTokenizer reads it)
    # PickScore and MPS: CLIP-H (transformers), MPS with its head
    from transformers import CLIPModel

    for what in ("pickscore", "mps"):
        torch.manual_seed(2)
        with torch.device(dev):
            model = CLIPModel(clip_config(dims))
            head = MPSHead(dim=dims["projection_dim"], heads=2, dim_head=8) if tiny else MPSHead()
        if what == "pickscore":
            model.save_pretrained(snapshot(world, REPOS["pickscore"]))
        else:
            save_mps(world / "MPS_overall.safetensors", model, head, "random weights (benchmark)")
        del model, head
    # HPSv2.1: open_clip ViT-H-14 in hpsv2's checkpoint format (fp16, like the published file)
    torch.manual_seed(3)
    with torch.device(dev):
        m = open_clip.create_model("ViT-H-14", pretrained=None, **(OPEN_CLIP_TINY if tiny else {}))
    torch.save({"state_dict": {k: v.detach().half().cpu() for k, v in m.state_dict().items()}},
               snapshot(world, REPOS["hps"]) / "HPS_v2.1_compressed.pt")
    del m
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    sizes = {str(p.relative_to(world)): p.stat().st_size for p in sorted(world.rglob("*")) if p.is_file()
             and p.stat().st_size > 1 << 20}
    info = {"tiny": tiny, "build_s": time.perf_counter() - t0, "model": str(model_dir), "files_over_1MiB": sizes,
            "gib_on_disk": sum(sizes.values()) / 2**30}
    (world / "world.json").write_text(json.dumps(info, indent=1))
    return info


def world_ready(world: Path, tiny: bool, device: str) -> dict:
    """Rank 0 builds the world if missing; the other ranks wait for its world.json."""
    marker = world / "world.json"
    if rank()[0] == 0 and not marker.exists():
        return build_world(world, tiny, device)
    deadline = time.time() + 3600
    while not marker.exists():
        if time.time() > deadline:
            raise SystemExit(f"rank {rank()[0]}: {marker} did not appear")
        time.sleep(2)
    return json.loads(marker.read_text())


def metric_overrides(world: Path, tiny: bool, metric_dtype: str) -> dict:
    """Overrides of the suite's metric kwargs (its own constructor kwargs; see the module docstring)."""
    out = {"mps": {"checkpoint": str(world / "MPS_overall.safetensors")},
           "fid": {"reference": str(world / "coco2014_val_stats.npz")}}
    if tiny:
        out["clip_score"] = {"model": f"local-dir:{world / 'tiny-open-clip'}", "pretrained": None}
        out["hpsv2"] = {"arch_overrides": OPEN_CLIP_TINY}
    if metric_dtype == "bf16":  # each metric's own precision kwarg (HPSv2: fp16 autocast, as the official scorer)
        for name, kw in {"clip_score": {"precision": "pure_bf16"}, "pickscore": {"dtype": "bfloat16"},
                         "mps": {"dtype": "bfloat16"}, "hpsv2": {"amp": True}}.items():
            out.setdefault(name, {}).update(kw)
    return out


# ---- measurements ------------------------------------------------------------------------------------------
def _sync(device):
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


GEN_MODES = ("eager", "graph", "graph+nocl", "graph+compile")


def fast_options(gen_mode: str):
    """``eager`` (plain diffusers modules), ``graph`` (the fast path: CUDA graph + channels-last + SDPA),
    ``graph+nocl`` (the same without channels-last), ``graph+compile`` (+ torch.compile of UNet and VAE decoder)."""
    from addbench.bases.fast import FastOptions

    if gen_mode == "eager":
        return None
    return FastOptions(compile="default" if "compile" in gen_mode else None, channels_last="nocl" not in gen_mode)


def measure_generation(model: str, suite, device: str, gen_mode: str, n_images: int) -> tuple[dict, object]:
    """images/s of ``Generator.generate`` alone (warm), and the images (at the suite resolution) for the metrics."""
    import torch

    from addbench.bases.loading import load_generator
    from addbench.eval.runner import _make_fast
    from addbench.eval.samples import resize
    from addbench.prompts import load_prompts

    prompts = load_prompts(suite).prompts[:n_images]
    t = time.perf_counter()
    gen = load_generator(model, device=device, dtype=torch.bfloat16 if "cuda" in device else None)
    gen = _make_fast(gen, fast_options(gen_mode)) if gen_mode != "eager" else gen
    out = {"generator_load_s": time.perf_counter() - t}
    mb = gen.effective_micro_batch
    t = time.perf_counter()
    gen.generate(prompts[:mb], list(range(mb)))  # warm-up (graph capture / compile)
    _sync(device)
    out["generator_warmup_s"] = time.perf_counter() - t
    t = time.perf_counter()
    images = gen.generate(prompts, list(range(len(prompts))))
    _sync(device)
    dt = time.perf_counter() - t
    out["generate"] = {"images_per_s": len(prompts) / dt, "micro_batch": mb, "mode": gen_mode,
                       "images": len(prompts), "s": dt, "resolution": list(images.shape[-2:])}
    return out, resize(images, suite.resolution)


def suite_for(suite, metric_dtype: str):
    """The suite under ``metric_dtype``'s metric precision (bf16 = fp32 matmuls + the bf16 kwargs)."""
    if metric_dtype == "suite":
        return suite
    return suite.with_metric_precision("tf32" if metric_dtype == "tf32" else "fp32")


def measure_metrics(suite, overrides: dict, device: str, images, reps: int) -> dict:
    """images/s of each metric alone (``update_batch`` with its own resizes) and of all on one shared batch."""
    import torch

    from addbench.eval.runner import build_metrics, metric_classes
    from addbench.metrics.views import ImageBatch
    from addbench.prompts import load_prompts

    prompts = load_prompts(suite).prompts[:len(images)]
    keys = [(i, 0) for i in range(len(prompts))]
    t = time.perf_counter()
    metrics = build_metrics(suite, metric_classes(suite, overrides), device)
    out: dict = {"metrics_load_s": time.perf_counter() - t, "metrics": {}}

    def timed(fn) -> float:
        fn()  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        _sync(device)
        return reps * len(prompts) / (time.perf_counter() - t0)

    for m in metrics:
        alone = timed(lambda: m.update_in_precision(ImageBatch(images, device), prompts, keys))
        m.reset()  # values on these images alone, to compare precisions (per-sample scores where the metric has them)
        m.update_in_precision(ImageBatch(images, device), prompts, keys)
        per = m.per_sample()
        try:
            value = float(m.compute())
        except Exception:  # noqa: BLE001 - e.g. a metric that needs more images; the timing stands
            value = None
        out["metrics"][m.id] = {"images_per_s": alone, "value": value,
                                "per_sample": None if per is None else [per[k] for k in keys]}

    def shared():
        batch = ImageBatch(images, device)
        for m in metrics:
            m.update_in_precision(batch, prompts, keys)

    out["all_metrics_shared_batch"] = {"images_per_s": timed(shared)}
    del metrics
    if "cuda" in device:
        torch.cuda.empty_cache()
    return out


def profile_gpu(model: str, suite, overrides: dict, device: str, images, top: int = 25) -> dict:
    """Top CUDA kernels (torch.profiler) of one generate call of a micro-batch (the fast path without its CUDA
    graph, so each kernel shows) and of one pass of all metrics over ``images``: where the GPU time goes."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from addbench.bases.fast import FastOptions
    from addbench.bases.loading import load_generator
    from addbench.eval.profiling import kernel_table
    from addbench.eval.runner import _make_fast, build_metrics, metric_classes
    from addbench.metrics.views import ImageBatch
    from addbench.prompts import load_prompts

    def table(prof) -> list[dict]:
        return kernel_table(prof, top)["top"]

    prompts = load_prompts(suite).prompts[:len(images)]
    gen = _make_fast(load_generator(model, device=device, dtype=torch.bfloat16), FastOptions(cuda_graph=False))
    mb = gen.effective_micro_batch
    gen.generate(prompts[:mb], list(range(mb)))
    _sync(device)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        gen.generate(prompts[:mb], list(range(mb)))
        _sync(device)
    out = {"generate_micro_batch": table(prof)}
    del gen
    metrics = build_metrics(suite, metric_classes(suite, overrides), device)
    keys = [(i, 0) for i in range(len(prompts))]
    for m in metrics:
        m.update_in_precision(ImageBatch(images, device), prompts, keys)
    _sync(device)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        batch = ImageBatch(images, device)
        for m in metrics:
            m.update_in_precision(batch, prompts, keys)
        _sync(device)
    out["metrics_shared_batch"] = table(prof)
    del metrics
    torch.cuda.empty_cache()
    return out


def measure_parts(model: str, suite, world: Path, tiny: bool, metric_dtype: str, device: str, gen_mode: str,
                  also: list[str], also_gen: list[str] = (), n_images: int = 64, reps: int = 3) -> dict:
    """Generation alone (``gen_mode``, then each of ``also_gen``), each metric alone (``metric_dtype``, then each
    of ``also``), the GPU-serial bound."""
    import torch

    out, images = measure_generation(model, suite, device, gen_mode, n_images)
    out["other_gen_modes"] = {}
    for mode in (m for m in also_gen if m != gen_mode):
        other, _ = measure_generation(model, suite, device, mode, n_images)
        out["other_gen_modes"][mode] = {**other["generate"], "warmup_s": other["generator_warmup_s"]}
        gc.collect()
        if "cuda" in device:
            torch.cuda.empty_cache()
    out.update(measure_metrics(suite_for(suite, metric_dtype), metric_overrides(world, tiny, metric_dtype), device,
                               images, reps))
    inv = 1 / out["generate"]["images_per_s"] + 1 / out["all_metrics_shared_batch"]["images_per_s"]
    out["gpu_serial_bound_images_per_s"] = 1 / inv
    out["other_metric_dtypes"] = {}
    for dt in (d for d in also if d != metric_dtype):
        out["other_metric_dtypes"][dt] = measure_metrics(suite_for(suite, dt), metric_overrides(world, tiny, dt),
                                                         device, images, reps)
        out["other_metric_dtypes"][dt]["drift_vs_" + metric_dtype] = drift(out["metrics"],
                                                                          out["other_metric_dtypes"][dt]["metrics"])
    return out


def drift(ref: dict, other: dict) -> dict:
    """Per metric: the value's change and the largest per-sample change against ``ref`` (same images), each also
    relative to the spread of ``ref``'s per-sample scores (std) — how far a precision choice moves a metric."""
    import numpy as np

    out = {}
    others = {k.split("[")[0]: v for k, v in other.items()}  # ids differ by precision (",tf32"): match by name
    for name, r in ref.items():
        o = others.get(name.split("[")[0])
        if o is None or r.get("value") is None or o.get("value") is None:
            continue
        d = {"value_ref": r["value"], "value": o["value"], "abs_diff": abs(o["value"] - r["value"])}
        if r.get("per_sample") and o.get("per_sample"):
            a, b = np.asarray(r["per_sample"], float), np.asarray(o["per_sample"], float)
            d["per_sample_max_abs_diff"] = float(np.abs(a - b).max())
            d["per_sample_std_ref"] = float(a.std())
            d["per_sample_max_diff_over_std"] = float(np.abs(a - b).max() / max(a.std(), 1e-12))
        out[name] = d
    return out


def run_e2e(model: str, suite, n: int, overrides: dict, device: str, gen_mode: str, run_dir: Path, score_batch: int,
            n_boot: int = 1000, background_load: bool | None = None, overlap: bool = False) -> dict:
    from addbench.eval.runner import evaluate

    r, _, world_size = rank()
    t = time.perf_counter()
    res = evaluate(model, suite, device=device, run_dir=run_dir, limit=None if n >= SUITE_N else n,
                   metric_overrides=overrides, fast=fast_options(gen_mode), progress=False, score_batch=score_batch,
                   dtype="bf16" if device.startswith("cuda") else None, n_boot=n_boot, background_load=background_load,
                   overlap_scoring=overlap)
    wall = time.perf_counter() - t
    timing = res.timing
    per_rank = (n + world_size - 1) // world_size
    # steady state: the loop's wall time per image on this rank, less the wait for the metric networks
    cost = (timing["loop"] - timing["wait_metrics"]) / max(1, timing["generated"] + timing["read"])
    projected = wall + max(0, SUITE_N - n) / world_size * cost
    out = {"n": n, "world_size": world_size, "overlap_scoring": overlap, "wall_s": wall, "images_per_s": n / wall,
           "per_rank": per_rank,
           "timing_s": timing, "steady_s_per_image_per_rank": cost, "projected_10k_s": projected,
           "meets_10min": projected <= TARGET_S}
    if r == 0:
        rec = res.record
        out["metric_values"] = {k: v["value"] for k, v in rec["metrics"].items()}
        out["complete"] = rec["complete"]
        out["record_provenance_timing"] = rec["provenance"]["timing_s"]
    return out


# ---- report ------------------------------------------------------------------------------------------------
def report(result: dict, baseline: dict | None = None) -> str:
    lines = [f"{result['device']} x{result['world_size']} | torch {result['torch']} | gen {result['gen_mode']} | "
             f"metrics {result['metric_dtype']} | {'tiny' if result['tiny'] else 'full-size'} random weights"]
    parts = result.get("parts")
    if parts:
        lines.append(f"generation alone: {parts['generate']['images_per_s']:.1f} images/s "
                     f"(micro-batch {parts['generate']['micro_batch']}, warm-up {parts['generator_warmup_s']:.1f} s)")
        for mode, g in parts.get("other_gen_modes", {}).items():
            lines.append(f"  generation as {mode}: {g['images_per_s']:.1f} images/s (warm-up {g['warmup_s']:.1f} s)")
        for mid, m in parts["metrics"].items():
            lines.append(f"  {mid}: {m['images_per_s']:.1f} images/s alone")
        shared = parts["all_metrics_shared_batch"]["images_per_s"]
        lines.append(f"all metrics on one shared batch: {shared:.1f} images/s;"
                     f" generate+score GPU-serial bound: {parts['gpu_serial_bound_images_per_s']:.1f} images/s "
                     f"-> {SUITE_N / parts['gpu_serial_bound_images_per_s']:.0f} s for 10k on one GPU")
        for dt, other in parts.get("other_metric_dtypes", {}).items():
            each = ", ".join(f"{k.split('[')[0]} {v['images_per_s']:.1f}" for k, v in other["metrics"].items())
            shared = other["all_metrics_shared_batch"]["images_per_s"]
            bound = 1 / (1 / parts["generate"]["images_per_s"] + 1 / shared)
            lines.append(f"  metrics as {dt}: {each}; shared {shared:.1f} images/s -> GPU-serial bound "
                         f"{SUITE_N / bound:.0f} s for 10k")
            for ref, dr in ((k[len("drift_vs_"):], v) for k, v in other.items() if k.startswith("drift_vs_")):
                for mid, d in dr.items():
                    per = (f", per-sample max |diff| {d['per_sample_max_abs_diff']:.3g} "
                           f"({d['per_sample_max_diff_over_std']:.3g} x the per-sample std)"
                           if "per_sample_max_abs_diff" in d else "")
                    lines.append(f"    {mid.split('[')[0]} {dt} vs {ref}: value {d['value']:.6g} vs {d['value_ref']:.6g} "
                                 f"(|diff| {d['abs_diff']:.3g}){per}")
    for e in result.get("e2e_runs", [result["e2e"]]):
        t = e["timing_s"]
        score = ", ".join(f"{k.split('[')[0]} {v:.1f}" for k, v in t["score"].items())
        lines.append(f"end to end{' (overlap_scoring)' if e.get('overlap_scoring') else ''}: {e['n']} images in "
                     f"{e['wall_s']:.1f} s ({e['images_per_s']:.1f} images/s) on {e['world_size']} process(es); rank 0 "
                     f"seconds: load {t['load']:.1f}, metrics load {t.get('metrics_load', 0):.1f} (waited "
                     f"{t['wait_metrics']:.1f}), generate {t['generate']:.1f}, score [{score}], wait io "
                     f"{t['wait_io']:.1f}, loop {t['loop']:.1f}, sync {t['sync']:.1f}, split bootstrap "
                     f"{t.get('split_bootstrap', 0):.1f}, record "
                     f"{e.get('record_provenance_timing', {}).get('record', float('nan')):.1f}")
        lines.append(f"  projected coco10k (10,000 images): {e['projected_10k_s']:.0f} s -> "
                     f"{'meets' if e['meets_10min'] else 'misses'} the 10-minute target")
    for what, rows in result.get("profile", {}).items():
        lines.append(f"top CUDA kernels, {what} (self ms, share):")
        lines += [f"  {r['self_ms']:9.2f}  {100 * r['share']:5.1f}%  x{r['calls']:<5d} {r['name']}" for r in rows]
    e = result["e2e"]
    if baseline:
        b = baseline["e2e"]
        sp = b["projected_10k_s"] / e["projected_10k_s"]
        lines.append(f"speedup vs {b['world_size']} process(es): projected 10k {sp:.2f}x"
                     + (f", measured at n={e['n']} {b['wall_s'] / e['wall_s']:.2f}x" if b["n"] == e["n"] else "")
                     + f" -> {'meets' if sp >= TARGET_SPEEDUP else 'misses'} the {TARGET_SPEEDUP}x target")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=2000,
                    help="images (= prompts, 1 seed) of the end-to-end run; 10000 = the whole suite")
    ap.add_argument("--tiny", action="store_true", help="tiny networks on the CPU (smoke run, < 1 min)")
    ap.add_argument("--gen", default="graph", choices=GEN_MODES, help="generation path (see fast_options)")
    ap.add_argument("--also-gen", default="", help="comma list of other generation paths to time alone, e.g. "
                                                   "eager,graph+nocl")
    ap.add_argument("--metric-dtype", default="suite", choices=["suite", "fp32", "tf32", "bf16"],
                    help="suite: the suite's metric_precision; fp32 / tf32: that precision (TF32 matmuls allowed or "
                         "not); bf16: fp32 plus each metric's bf16/amp kwarg")
    ap.add_argument("--also-dtypes", default="", help="comma list (fp32,tf32,bf16): also time each metric alone in "
                                                      "these, with the drift of their values")
    ap.add_argument("--profile", action="store_true", help="also list the top CUDA kernels of generation and scoring")
    ap.add_argument("--score-batch", type=int, default=64)
    ap.add_argument("--work", type=Path, default=Path(".cache/eval_throughput"), help="world + runs (reused)")
    ap.add_argument("--skip-parts", action="store_true", help="only the end-to-end run")
    ap.add_argument("--n-boot", type=int, default=None, help="bootstrap draws of the record (default 1000; tiny: 2)")
    ap.add_argument("--serial-load", action="store_true", help="load the metrics before generating (no overlap)")
    ap.add_argument("--overlap", default=None,
                    help="end-to-end runs to make (default off): off = score in turn with generation, on = overlap_scoring "
                         "(scoring thread + CUDA stream; fp32 metric precision only, e.g. --metric-dtype fp32); the "
                         "report's projection uses the faster")
    ap.add_argument("--keep-samples", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON result here (rank 0)")
    ap.add_argument("--report", type=Path, nargs="+", default=None,
                    help="print the tables of result JSONs (a second one: speedup vs the first); runs nothing")
    a = ap.parse_args(argv)
    if a.report:
        res = [json.loads(p.read_text()) for p in a.report]
        print(report(res[0]))
        for r in res[1:]:
            print(report(r, baseline=res[0]))
        return 0
    preflight()
    work = a.work.resolve()
    world = setup_env(work, a.tiny)

    import torch

    r, local, world_size = rank()
    device = "cpu" if a.tiny or not torch.cuda.is_available() else f"cuda:{local}"
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
    info = world_ready(world, a.tiny, device)
    from addbench.suites import load_suite

    suite = load_suite("coco10k")
    overrides = metric_overrides(world, a.tiny, a.metric_dtype)
    model = info["model"]
    result = {"device": torch.cuda.get_device_name(local) if device.startswith("cuda") else "cpu",
              "world_size": world_size, "torch": torch.__version__, "gen_mode": a.gen, "metric_dtype": a.metric_dtype,
              "tiny": a.tiny, "world": {k: v for k, v in info.items() if k != "files_over_1MiB"}}
    if not a.skip_parts and world_size == 1:
        also = [d for d in a.also_dtypes.split(",") if d]
        also_gen = [g for g in a.also_gen.split(",") if g]
        bad = sorted(set(also_gen) - set(GEN_MODES))
        if bad:
            raise SystemExit(f"--also-gen: unknown {', '.join(bad)}; use {', '.join(GEN_MODES)}")
        result["parts"] = measure_parts(model, suite, world, a.tiny, a.metric_dtype, device, a.gen, also, also_gen,
                                        *((4, 1) if a.tiny else (64, 3)))
        if a.profile and device.startswith("cuda"):
            from addbench.eval.samples import resize

            imgs = torch.randint(0, 256, (32, 3, 512, 512), dtype=torch.uint8)
            try:  # a measurement aid: its failure must not cost the end-to-end run
                result["profile"] = profile_gpu(model, suite, overrides, device, resize(imgs, suite.resolution))
            except Exception as exc:  # noqa: BLE001
                result["profile_error"] = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
    # one name for every rank (torchrun's run id; its workers share a parent), a fresh one for every invocation
    run_id = os.environ.get("TORCHELASTIC_RUN_ID") or (f"ppid{os.getppid()}" if world_size > 1 else f"pid{os.getpid()}")
    n_boot = a.n_boot or (2 if a.tiny else 1000)
    result["e2e_runs"] = []
    for overlap in [v.strip() for v in (a.overlap or "off").split(",") if v.strip()]:
        label = f"{'tiny' if a.tiny else 'full'}-n{a.images}-x{world_size}-{a.gen}-{a.metric_dtype}-overlap{overlap}"
        run_dir = work / "runs" / f"{label}-{run_id}"
        e = run_e2e(model, suite_for(suite, a.metric_dtype), a.images, overrides, device, a.gen, run_dir, a.score_batch, n_boot,
                    False if a.serial_load else None, overlap == "on")
        result["e2e_runs"].append({**e, "n_boot": n_boot})
        if r == 0 and not a.keep_samples:
            shutil.rmtree(run_dir / "samples", ignore_errors=True)
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    result["e2e"] = min(result["e2e_runs"], key=lambda e: e["projected_10k_s"])
    if r == 0:
        if a.out:
            a.out.parent.mkdir(parents=True, exist_ok=True)
            a.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
        print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
