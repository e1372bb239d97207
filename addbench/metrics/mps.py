"""MPS, Multi-dimensional Preference Score (Zhang et al., CVPR 2024; Kwai-Kolors/MPS), "overall" model.

The public checkpoint ``MPS_overall_checkpoint.pth`` is a whole pickled model (``torch.save(model)``), so
loading it the official way runs arbitrary code. Convert it once, without running any of it::

    python -m addbench.metrics.mps convert MPS_overall_checkpoint.pth MPS_overall.safetensors

(:mod:`addbench.metrics.safe_unpickle` reads only tensors; the CLIP config is read from the pickled config
object's attributes). The metric then loads the safetensors file into our own re-implementation. The config's
dtype field is dropped, whatever its key and form (``torch_dtype`` in older transformers, ``dtype`` in newer
ones; a ``torch.float32`` object, ``"torch.float32"`` or ``"float32"``): the tensors carry their own dtype and
the metric runs in its ``dtype`` argument. Every other field the current ``CLIPTextConfig`` /
``CLIPVisionConfig`` knows is kept, the model is built from it on the meta device and checked against the
weights, and any failure is one line naming the file.

Architecture (re-implemented from the paper's public code, not copied): a CLIP-H (transformers
``CLIPModel``, laion/CLIP-ViT-H-14) whose text and image *token* features are projected
(``text_projection(last_hidden_state)``; ``visual_projection(last_hidden_state)``, i.e. image tokens
before ``post_layernorm``), plus a head of 4 blocks, each a cross-attention from image tokens to text
tokens (multi-query: one key/value head, parallel SwiGLU feed-forward, bias-free LayerNorm) and a
parallel self-attention + SwiGLU block with rotary embeddings (PaLM style), both residual.

Score, as the README's ``infer_example`` (``clip_model(text, images, condition)``):

1. ``text_f`` = projected text tokens (77, padded to max length, no attention mask), ``text_eos`` =
   projected pooled text embedding; ``cond_f`` = projected tokens of the condition prompt (for "overall":
   the 22 attribute words below).
2. ``s[j] = max_k <text_f[j], cond_f[k]>``; ``s /= max(s)``; text token j is visible to the head iff
   ``s[j] > mask_threshold``.
3. ``img = head(image tokens, text tokens, mask)[CLS]``; ``score = logit_scale.exp() * cos(text_eos, img)``.

The mask threshold: **0.01 by default**, and the id says it (``mask>0.01``). Kwai-Kolors/MPS (commit be9027f)
uses two values. 0.01 is in ``CLIPModel.forward`` (``trainer/models/clip_model.py``, line 122:
``torch.where(sim_text_condition > 0.01, 0, float('-inf'))``), which the README's ``infer_example`` calls
(``clip_model(text_inputs, image_inputs, condition_inputs)``): the scorer the README hands to anyone scoring
images, so presumably what tables of generated-image MPS (DMDX Table 1 ...) ran. 0.3 is in the two eval scripts
behind the paper's preference-accuracy tables (``eval_overall_mps_on_hpdv2.py`` line 70,
``eval_overall_mps_on_imagereward.py`` line 71, which re-implement the forward pass inline). To reproduce those,
pass ``mask_threshold=0.3``: the id then says ``mask>0.3``, so the two never compare.

Differences from the official scorer, all deliberate: (a) the official code normalises ``s`` by the max over
the *whole batch*; it is always called with one prompt, and we normalise per prompt, which is the same
number and keeps scores independent of batching; (b) the official run is fp16 on CUDA; we run fp32 unless
``dtype="float16"``; (c) images go through transformers' PIL CLIP image processor, as the official ones do.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from addbench.errors import AddbenchError
from addbench.metrics.base import Key, Metric
from addbench.metrics.pickscore import CLIP_H_PROCESSOR, ClipPixels, load_clip_processor
from addbench.metrics.views import ImageBatch, as_batch

OVERALL_CONDITION = ("light, color, clarity, tone, style, ambiance, artistry, shape, face, hair, hands, limbs, "
                     "structure, instance, texture, quantity, attributes, position, number, location, word, things.")
FORMAT = "addbench-mps/1"


# ---- the head ----------------------------------------------------------------------------------------
def _swiglu(x: torch.Tensor) -> torch.Tensor:
    a, gate = x.chunk(2, dim=-1)
    return F.silu(gate) * a


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class CrossBlock(nn.Module):
    """Image tokens attend to text tokens (one shared key/value head); parallel SwiGLU FF; residual."""

    def __init__(self, dim: int, heads: int, dim_head: int, ff_inner: int):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_kv = nn.Linear(dim, 2 * dim_head, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim, bias=False)
        self.ff_in = nn.Linear(dim, 2 * ff_inner, bias=False)
        self.ff_out = nn.Linear(ff_inner, dim, bias=False)

    def forward(self, x, context, mask):  # mask: additive (b, n, m)
        b, n, _ = x.shape
        h = self.norm(x)
        q = self.to_q(h).view(b, n, self.heads, self.dim_head).transpose(1, 2) * self.dim_head ** -0.5
        k, v = self.to_kv(context).chunk(2, dim=-1)
        attn = (q @ k.unsqueeze(1).transpose(-1, -2) + mask.unsqueeze(1)).softmax(dim=-1)
        out = (attn @ v.unsqueeze(1)).transpose(1, 2).reshape(b, n, -1)
        return x + self.to_out(out) + self.ff_out(_swiglu(self.ff_in(h)))


class SelfBlock(nn.Module):
    """Self-attention (rotary, one key/value head) and SwiGLU FF from one fused projection; residual."""

    def __init__(self, dim: int, heads: int, dim_head: int, ff_inner: int):
        super().__init__()
        self.heads, self.dim_head, self.ff_inner = heads, dim_head, ff_inner
        self.norm = nn.LayerNorm(dim)
        self.fused = nn.Linear(dim, heads * dim_head + 2 * dim_head + 2 * ff_inner, bias=False)
        self.attn_out = nn.Linear(heads * dim_head, dim, bias=False)
        self.ff_out = nn.Linear(ff_inner, dim, bias=False)

    def forward(self, x):
        b, n, _ = x.shape
        d = self.dim_head
        q, k, v, ff = self.fused(self.norm(x)).split([self.heads * d, d, d, 2 * self.ff_inner], dim=-1)
        q = q.view(b, n, self.heads, d).transpose(1, 2)
        inv_freq = 1.0 / (10000 ** (torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d))
        angles = torch.arange(n, device=x.device, dtype=torch.float32)[:, None] * inv_freq[None]
        angles = torch.cat((angles, angles), dim=-1).to(x.dtype)
        q = q * angles.cos() + _rotate_half(q) * angles.sin()
        k = k * angles.cos() + _rotate_half(k) * angles.sin()
        attn = ((q * d ** -0.5) @ k.unsqueeze(1).transpose(-1, -2)).softmax(dim=-1)
        out = (attn @ v.unsqueeze(1)).transpose(1, 2).reshape(b, n, -1)
        return x + self.attn_out(out) + self.ff_out(_swiglu(ff))


class MPSHead(nn.Module):
    def __init__(self, dim: int = 1024, layers: int = 4, heads: int = 16, dim_head: int = 64, ff_mult: int = 4):
        super().__init__()
        self.blocks = nn.ModuleList(nn.ModuleDict({"cross": CrossBlock(dim, heads, dim_head, dim * ff_mult),
                                                   "self_block": SelfBlock(dim, heads, dim_head, dim * ff_mult)})
                                    for _ in range(layers))

    def forward(self, image_tokens, text_tokens, mask):
        x = image_tokens
        for blk in self.blocks:
            x = blk["self_block"](blk["cross"](x, text_tokens, mask))
        return x

    @staticmethod
    def dims_from_state_dict(sd: dict[str, torch.Tensor]) -> dict:
        dim_head = sd["blocks.0.cross.to_kv.weight"].shape[0] // 2
        return dict(dim=sd["blocks.0.cross.to_q.weight"].shape[1], dim_head=dim_head,
                    heads=sd["blocks.0.cross.to_q.weight"].shape[0] // dim_head,
                    layers=len({k.split(".")[1] for k in sd if k.startswith("blocks.")}),
                    ff_mult=sd["blocks.0.cross.ff_out.weight"].shape[1] // sd["blocks.0.cross.to_q.weight"].shape[1])


# ---- conversion from the official pickled model ---------------------------------------------------------
_HEAD_MAP = [  # official Cross_model key (after "cross_model.layers.<i>.") -> ours (after "blocks.<i>.")
    (r"0\.fn\.norm\.(weight|bias)", r"cross.norm.\1"), (r"0\.fn\.to_q\.weight", "cross.to_q.weight"),
    (r"0\.fn\.to_kv\.weight", "cross.to_kv.weight"), (r"0\.fn\.to_out\.weight", "cross.to_out.weight"),
    (r"0\.fn\.ff\.0\.weight", "cross.ff_in.weight"), (r"0\.fn\.ff\.2\.weight", "cross.ff_out.weight"),
    (r"1\.fn\.norm\.(weight|bias)", r"self_block.norm.\1"),
    (r"1\.fn\.fused_attn_ff_proj\.weight", "self_block.fused.weight"),
    (r"1\.fn\.attn_out\.weight", "self_block.attn_out.weight"), (r"1\.fn\.ff_out\.1\.weight", "self_block.ff_out.weight"),
    (r"1\.fn\.rotary_emb\.inv_freq", None),  # recomputed
]


def convert_state_dict(official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official ``CLIPModel`` (MPS trainer) state dict -> ``clip.*`` (transformers CLIPModel) + ``head.*``."""
    out: dict[str, torch.Tensor] = {}
    for key, t in official.items():
        if key.startswith("model."):
            if not key.endswith("position_ids"):  # a buffer older transformers saved; rebuilt by CLIPModel
                out["clip." + key[len("model."):]] = t
            continue
        m = re.fullmatch(r"cross_model\.layers\.(\d+)\.(.+)", key)
        for pat, repl in _HEAD_MAP if m else []:
            if re.fullmatch(pat, m.group(2)):
                if repl is not None:
                    out[f"head.blocks.{m.group(1)}." + re.sub(pat, repl, m.group(2))] = t
                break
        else:
            raise AddbenchError(f"unexpected key {key!r} in the MPS checkpoint; is it MPS_overall_checkpoint.pth?")
    if not any(k.startswith("head.") for k in out) or "clip.logit_scale" not in out:
        raise AddbenchError("the checkpoint lacks the MPS head or the CLIP logit_scale; is it an MPS model?")
    return out


def _plain(obj):
    from addbench.metrics.safe_unpickle import Stub

    if isinstance(obj, Stub):
        obj = obj.attrs()
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj if isinstance(obj, (str, int, float, bool)) or obj is None else repr(obj)


DTYPE_KEYS = ("dtype", "torch_dtype")  # newer transformers write ``dtype``, older ones ``torch_dtype``


def clip_config_dict(config_stub) -> dict:
    """The pickled transformers CLIPConfig's public fields (or a ``CLIPConfig.to_dict()``), as a dict
    CLIPConfig(**d) accepts today: fields the current classes do not know, private ones, non-scalars and the
    dtype (under either key, in any form) are dropped."""
    from transformers import CLIPTextConfig, CLIPVisionConfig

    raw = _plain(config_stub)
    if not isinstance(raw, dict):
        raise AddbenchError(f"the pickled CLIP config is a {type(raw).__name__}, not an object with fields")

    def keep(d, cls):
        known = set(cls().to_dict())
        return {k: v for k, v in (d if isinstance(d, dict) else {}).items() if k in known and not k.startswith("_")
                and isinstance(v, (int, float, str, bool, list)) and k not in ("architectures", "model_type")
                and k not in DTYPE_KEYS}
    top = {k: raw[k] for k in ("projection_dim", "logit_scale_init_value") if k in raw}
    # accept sub-configs pickled as plain dicts under ``*_config_dict`` (an older CLIPConfig layout) too
    return dict(top, text_config=keep(raw.get("text_config") or raw.get("text_config_dict"), CLIPTextConfig),
                vision_config=keep(raw.get("vision_config") or raw.get("vision_config_dict"), CLIPVisionConfig))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def build_clip(clip_config: dict, where: str, device="meta"):
    """transformers ``CLIPModel`` from a converted config (dtype fields of older converters dropped), on
    ``device``; a config the installed transformers refuses is one AddbenchError naming ``where``."""
    from transformers import CLIPConfig, CLIPModel

    from addbench.metrics.openclip_loading import built_on

    cfg = {k: v for k, v in clip_config.items() if k not in DTYPE_KEYS}
    for sub in ("text_config", "vision_config"):
        if isinstance(cfg.get(sub), dict):
            cfg[sub] = {k: v for k, v in cfg[sub].items() if k not in DTYPE_KEYS}
    try:
        if device == "meta":
            with torch.device("meta"):
                return CLIPModel(CLIPConfig(**cfg))
        with built_on(device):
            return CLIPModel(CLIPConfig(**cfg))
    except Exception as exc:  # any refusal by transformers: one line
        raise AddbenchError(f"{where}: its CLIP config does not build a transformers CLIPModel "
                            f"({_one_line(exc)})") from None


def _check_fits(module: nn.Module, part: dict[str, torch.Tensor], where: str) -> None:
    want = {k: v.shape for k, v in module.state_dict().items() if not k.endswith("position_ids")}
    have = {k: v.shape for k, v in part.items() if not k.endswith("position_ids")}
    missing, unexpected = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    bad = [f"{k} {tuple(have[k])} != {tuple(want[k])}" for k in sorted(set(want) & set(have)) if have[k] != want[k]]
    if missing or unexpected or bad:
        raise AddbenchError(f"{where}: weights do not fit the model of its config ({missing[:2]} missing, "
                            f"{unexpected[:2]} unexpected, {bad[:2]} of another shape)")


def convert(src: str | Path, dst: str | Path) -> Path:
    """Official pickled MPS model -> safetensors (``clip.*``, ``head.*``; CLIP config in the metadata).
    Checks the config builds today's CLIPModel and the weights fit it (on the meta device) before writing."""
    from addbench.metrics.safe_unpickle import module_state_dict, safe_load, stub_attr

    src = Path(src)
    todo = (f"is it MPS_overall_checkpoint.pth from Kwai-Kolors/MPS? re-download it, or report this error "
            f"with your transformers version")
    try:
        root, _ = safe_load(src)
        tensors = convert_state_dict(module_state_dict(root))
        config = clip_config_dict(stub_attr(root, "model.config"))
        clip = build_clip(config, str(src))
        _check_fits(clip, {k[5:]: v for k, v in tensors.items() if k.startswith("clip.")}, str(src))
        head_sd = {k[5:]: v for k, v in tensors.items() if k.startswith("head.")}
        with torch.device("meta"):
            head = MPSHead(**MPSHead.dims_from_state_dict(head_sd))
        _check_fits(head, head_sd, str(src))
        return _write(dst, tensors, config, src.name)
    except AddbenchError as exc:
        msg = str(exc)
        raise AddbenchError(msg if str(src) in msg else f"{src}: {msg}") from None
    except Exception as exc:  # anything else: one line, naming the file and what to do
        raise AddbenchError(f"{src}: could not convert the MPS checkpoint ({_one_line(exc)}); {todo}") from None


def save_mps(dst: str | Path, clip, head: "MPSHead", source: str = "in-memory modules") -> Path:
    """A converted-format file from a transformers ``CLIPModel`` and an :class:`MPSHead` (random-weight
    benchmarks and tests write the file real runs load)."""
    tensors = {**{f"clip.{k}": v for k, v in clip.state_dict().items()},
               **{f"head.{k}": v for k, v in head.state_dict().items()}}
    return _write(dst, tensors, clip_config_dict(clip.config.to_dict()), source)


def _write(dst: str | Path, tensors: dict, clip_config: dict, source: str) -> Path:
    from safetensors.torch import save_file

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "source": source, "clip_config": json.dumps(clip_config)}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(dst), metadata=meta)
    return dst


def load_mps(path: str | Path, device="cpu"):
    """(transformers CLIPModel, MPSHead) from a converted safetensors file, built on ``device``."""
    from safetensors import safe_open

    from addbench.metrics.openclip_loading import built_on

    path = Path(path).expanduser()
    if not path.is_file():
        raise AddbenchError(f"MPS weights {path} not found; download MPS_overall_checkpoint.pth (Kwai-Kolors/MPS "
                            f"README) and run `python -m addbench.metrics.mps convert IN.pth {path}`")
    if path.suffix != ".safetensors":
        raise AddbenchError(f"{path} is not a converted MPS file; run `python -m addbench.metrics.mps convert "
                            f"{path} {path.with_suffix('.safetensors')}` once (reads tensors only, runs no code)")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise AddbenchError(f"{path} was not written by `addbench.metrics.mps convert` (format {meta.get('format')})")
        sd = {k: f.get_tensor(k) for k in f.keys()}
    try:
        clip_config = json.loads(meta["clip_config"])
        assert isinstance(clip_config, dict)
    except (KeyError, ValueError, AssertionError):
        raise AddbenchError(f"{path} has no readable CLIP config; convert the .pth again") from None
    head_sd = {k[5:]: v for k, v in sd.items() if k.startswith("head.")}
    clip = build_clip(clip_config, f"{path} (convert the .pth again with this addbench)", device)
    with built_on(device):
        head = MPSHead(**MPSHead.dims_from_state_dict(head_sd))
    for module, part in ((clip, {k[5:]: v for k, v in sd.items() if k.startswith("clip.")}), (head, head_sd)):
        missing, unexpected = module.load_state_dict(part, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise AddbenchError(f"{path}: weights do not fit ({missing[:2]} missing, {unexpected[:2]} unexpected)")
    return clip.eval().requires_grad_(False), head.eval().requires_grad_(False)


# ---- the metric ---------------------------------------------------------------------------------------------
class MPS(Metric):
    name = "mps"
    higher_is_better = True

    def __init__(self, device: str | torch.device = "cpu", checkpoint: str = "MPS_overall.safetensors",
                 processor: str = CLIP_H_PROCESSOR, condition: str = OVERALL_CONDITION,
                 mask_threshold: float = 0.01, batch_size: int = 16, dtype: str = "float32"):
        super().__init__(device)
        self.condition, self.mask_threshold, self.batch_size = condition, float(mask_threshold), int(batch_size)
        name = str(dtype).removeprefix("torch.")
        self.dtype = getattr(torch, name, None)
        if not isinstance(self.dtype, torch.dtype):
            raise AddbenchError(f"MPS dtype {dtype!r}: use float32, float16 or bfloat16")
        self.image_processor, self.tokenizer = load_clip_processor(processor, "MPS processor")
        self.clip, self.head = load_mps(checkpoint, self.device)
        self.weight_files = lambda: [("mps", Path(checkpoint).expanduser())]  # hashed into the record's provenance
        self.clip.to(self.device, self.dtype)
        self.head.to(self.device, self.dtype)
        self.pixels = ClipPixels(self.image_processor, self.device, self.dtype)
        self.views = (self.pixels.view,) if self.pixels.view else ()

    def convention(self) -> str:
        cond = "overall" if self.condition == OVERALL_CONDITION else "custom-condition"
        return f"MPS_overall,{cond},mask>{self.mask_threshold:g},logit_scale*cos"

    def _tokens(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(texts, max_length=self.tokenizer.model_max_length, padding="max_length",
                              truncation=True, return_tensors="pt").input_ids.to(self.device)

    def _text(self, ids):
        out = self.clip.text_model(input_ids=ids)
        return self.clip.text_projection(out.last_hidden_state), self.clip.text_projection(out.pooler_output)

    @torch.no_grad()
    def score(self, images: torch.Tensor | ImageBatch, prompts: list[str]) -> torch.Tensor:
        batch = as_batch(images, self.device)
        if len(batch) != len(prompts):
            raise AddbenchError(f"{len(batch)} images but {len(prompts)} prompts")
        cond_f, _ = self._text(self._tokens([self.condition]))
        out = []
        for s in range(0, len(prompts), self.batch_size):
            pix = self.pixels(batch, s, s + self.batch_size)
            text_f, text_eos = self._text(self._tokens(list(prompts[s:s + self.batch_size])))
            img_f = self.clip.visual_projection(self.clip.vision_model(pixel_values=pix).last_hidden_state)
            sim = torch.einsum("bid,jd->bji", text_f, cond_f[0]).amax(dim=1, keepdim=True)  # (b, 1, 77)
            sim = sim / sim.amax(dim=-1, keepdim=True)  # per prompt (official: per batch of one prompt)
            mask = torch.zeros_like(sim).masked_fill(sim <= self.mask_threshold, float("-inf"))
            mask = mask.expand(-1, img_f.shape[1], -1)
            img = self.head(img_f, text_f, mask)[:, 0]
            cos = (F.normalize(img.float(), dim=-1) * F.normalize(text_eos.float(), dim=-1)).sum(-1)
            out.append((self.clip.logit_scale.float().exp() * cos).cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def update(self, images: torch.Tensor, prompts: list[str], keys: list[Key]) -> None:
        self.update_batch(ImageBatch(images, self.device), prompts, keys)

    def update_batch(self, batch: ImageBatch, prompts: list[str], keys: list[Key]) -> None:
        self._record(keys, self.score(batch, prompts))

    def compute(self) -> float:
        return float(np.mean(self.scores)) if self.scores else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m addbench.metrics.mps",
                                 description="Convert the official pickled MPS model to safetensors, safely.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="IN.pth (torch.save of the whole model) -> OUT.safetensors")
    c.add_argument("src")
    c.add_argument("dst")
    args = ap.parse_args(argv)
    try:
        out = convert(args.src, args.dst)
    except AddbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
