"""MPS: a tiny model in the official layout, pickled whole with classes nobody can import, converted safely,
and scored; compared with a reference written in the official code's structure (not addbench's)."""
import copy
import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from addbench.errors import AddbenchError

_spec = importlib.util.spec_from_file_location("_pickscore_helpers", Path(__file__).with_name("test_pickscore.py"))
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)


# ---- reference: the official module tree (names as in Kwai-Kolors/MPS cross_modeling.py), written in einsum ----
class BiasFreeLN(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(1 + 0.1 * torch.randn(dim))
        self.register_buffer("bias", torch.zeros(dim))

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias)


class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, *a):
        return self.fn(x, *a) + x


def swiglu(x):
    x, g = x.chunk(2, -1)
    return F.silu(g) * x


class Rotary(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d)))


def rot(pos, t):
    a, b = t[..., : t.shape[-1] // 2], t[..., t.shape[-1] // 2:]
    return t * pos.cos() + torch.cat((-b, a), -1) * pos.sin()


class ParallelTransformerBlock(nn.Module):
    def __init__(self, dim, dh, h, mult):
        super().__init__()
        self.h, self.dh, self.dims = h, dh, (dh * h, dh, dh, dim * mult * 2)
        self.norm, self.rotary_emb = BiasFreeLN(dim), Rotary(dh)
        self.fused_attn_ff_proj = nn.Linear(dim, sum(self.dims), bias=False)
        self.attn_out = nn.Linear(dh * h, dim, bias=False)
        self.ff_out = nn.Sequential(nn.Identity(), nn.Linear(dim * mult, dim, bias=False))

    def forward(self, x):
        n = x.shape[1]
        q, k, v, ff = self.fused_attn_ff_proj(self.norm(x)).split(self.dims, -1)
        q = q.unflatten(-1, (self.h, self.dh)).permute(0, 2, 1, 3)
        f = torch.einsum("i,j->ij", torch.arange(n).float(), self.rotary_emb.inv_freq)
        pos = torch.cat((f, f), -1)
        q, k = rot(pos, q) * self.dh ** -0.5, rot(pos, k)
        attn = torch.einsum("bhid,bjd->bhij", q, k).softmax(-1)
        out = torch.einsum("bhij,bjd->bhid", attn, v).permute(0, 2, 1, 3).flatten(2)
        return self.attn_out(out) + self.ff_out[1](swiglu(ff))


class CrossAttention(nn.Module):
    def __init__(self, dim, dh, h, mult):
        super().__init__()
        self.h, self.dh = h, dh
        self.norm = BiasFreeLN(dim)
        self.to_q, self.to_kv = nn.Linear(dim, h * dh, bias=False), nn.Linear(dim, 2 * dh, bias=False)
        self.to_out = nn.Linear(h * dh, dim, bias=False)
        self.ff = nn.Sequential(nn.Linear(dim, dim * mult * 2, bias=False), nn.Identity(),
                                nn.Linear(dim * mult, dim, bias=False))

    def forward(self, x, ctx, mask):
        x = self.norm(x)
        q = self.to_q(x).unflatten(-1, (self.h, self.dh)).permute(0, 2, 1, 3) * self.dh ** -0.5
        k, v = self.to_kv(ctx).chunk(2, -1)
        sim = torch.einsum("bhid,bjd->bhij", q, k) + mask.unsqueeze(1)
        out = torch.einsum("bhij,bjd->bhid", sim.softmax(-1), v).permute(0, 2, 1, 3).flatten(2)
        return self.to_out(out) + self.ff[2](swiglu(self.ff[0](x)))


class Cross_model(nn.Module):
    def __init__(self, dim, layer_num=2, dim_head=8, heads=4, ff_mult=4):
        super().__init__()
        self.layers = nn.ModuleList(nn.ModuleList([Residual(CrossAttention(dim, dim_head, heads, ff_mult)),
                                                   Residual(ParallelTransformerBlock(dim, dim_head, heads, ff_mult))])
                                    for _ in range(layer_num))

    def forward(self, q, ctx, mask):
        for ca, sa in self.layers:
            q = sa(ca(q, ctx, mask))
        return q


class OfficialCLIPModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        from transformers import CLIPModel

        self.model = CLIPModel(config)
        self.cross_model = Cross_model(dim=config.projection_dim)

    def reference_score(self, pix, text_ids, cond_ids, thr):
        """README infer_example with one prompt and one image."""
        m = self.model
        t = m.text_model(input_ids=text_ids)
        text_f, text_eos = m.text_projection(t.last_hidden_state), m.text_projection(t.pooler_output)
        image_f = m.visual_projection(m.vision_model(pixel_values=pix).last_hidden_state)
        cond_f = m.text_projection(m.text_model(input_ids=cond_ids).last_hidden_state)
        sim = torch.einsum("bid,bjd->bji", text_f, cond_f).max(dim=1, keepdim=True)[0]
        sim = sim / sim.max()
        mask = torch.where(sim > thr, 0.0, float("-inf")).repeat(1, image_f.shape[1], 1)
        img = self.cross_model(image_f, text_f, mask)[:, 0, :]
        img, txt = img / img.norm(dim=-1, keepdim=True), text_eos / text_eos.norm(dim=-1, keepdim=True)
        return (m.logit_scale.exp() * torch.diag(txt @ img.T))[0]


_STAND_IN = (BiasFreeLN, Residual, Rotary, ParallelTransformerBlock, CrossAttention, Cross_model, OfficialCLIPModel)


def pickle_whole(model, path):
    """torch.save of the whole model, its classes in a module that exists only while saving (as published: the
    loader cannot import them)."""
    mod = types.ModuleType("trainer_models_clip_model_stand_in")
    sys.modules[mod.__name__] = mod
    try:
        for c in _STAND_IN:
            c.__module__ = mod.__name__
            setattr(mod, c.__name__, c)
        torch.save(model, path)
    finally:
        del sys.modules[mod.__name__]
    return path


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    root = tmp_path_factory.mktemp("mps")
    torch.manual_seed(0)
    model = OfficialCLIPModel(helpers.tiny_clip_config())
    with torch.no_grad():
        model.model.logit_scale.fill_(3.0)
    pickle_whole(model, root / "MPS_overall_checkpoint.pth")  # whole pickled model, as published
    return root, model.eval(), helpers.write_processor(root / "processor")


def test_convert_and_score_match_official_structure(official, tmp_path):
    from addbench.metrics.mps import MPS, OVERALL_CONDITION, main

    root, model, proc = official
    out = tmp_path / "mps.safetensors"
    assert main(["convert", str(root / "MPS_overall_checkpoint.pth"), str(out)]) == 0
    metric = MPS(checkpoint=str(out), processor=str(proc), batch_size=2)
    g = torch.Generator().manual_seed(5)
    images = torch.randint(0, 256, (3, 3, 36, 44), dtype=torch.uint8, generator=g)
    prompts = ["a portrait with detailed hands and face", "blue", "a red car parked near a lake at sunset"]
    metric.update(images, prompts, [(0, 0), (1, 0), (2, 0)])

    from transformers import AutoTokenizer, CLIPImageProcessorPil

    tok, ip = AutoTokenizer.from_pretrained(proc), CLIPImageProcessorPil.from_pretrained(proc)  # PIL, as official
    ids = lambda s: tok(s, max_length=tok.model_max_length, padding="max_length", truncation=True,
                        return_tensors="pt").input_ids
    ref = []
    for im, p in zip(images, prompts):
        pix = ip(__import__("PIL.Image").Image.fromarray(im.permute(1, 2, 0).numpy()), return_tensors="pt")
        with torch.no_grad():
            ref.append(model.reference_score(pix["pixel_values"], ids(p), ids(OVERALL_CONDITION), 0.01))
    ref = torch.stack(ref)
    assert torch.allclose(torch.tensor(metric.scores), ref, atol=1e-4, rtol=1e-4), (metric.scores, ref)
    assert metric.compute() == pytest.approx(ref.mean().item(), rel=1e-4)
    assert metric.id == "mps[MPS_overall,overall,mask>0.01,logit_scale*cos]"
    # the eval scripts behind the MPS paper's tables threshold at 0.3: their own id, their own numbers
    evals = MPS(checkpoint=str(out), processor=str(proc), mask_threshold=0.3, batch_size=2)
    assert evals.id == "mps[MPS_overall,overall,mask>0.3,logit_scale*cos]"
    ref03 = []
    for im, p in zip(images, prompts):
        pix = ip(__import__("PIL.Image").Image.fromarray(im.permute(1, 2, 0).numpy()), return_tensors="pt")
        with torch.no_grad():
            ref03.append(model.reference_score(pix["pixel_values"], ids(p), ids(OVERALL_CONDITION), 0.3))
    assert torch.allclose(evals.score(images, prompts), torch.stack(ref03), atol=1e-4, rtol=1e-4)
    # the mask matters: a threshold that hides every token but the best one changes the score
    strict = MPS(checkpoint=str(out), processor=str(proc), mask_threshold=0.999)
    assert not torch.allclose(strict.score(images, prompts), ref, atol=1e-3)


def test_errors(official, tmp_path):
    from addbench.metrics.mps import MPS, convert

    root, _, proc = official
    with pytest.raises(AddbenchError, match=r"MPS weights .*nope.safetensors not found; download "
                                            r"MPS_overall_checkpoint.pth"):
        MPS(checkpoint=str(tmp_path / "nope.safetensors"), processor=str(proc))
    with pytest.raises(AddbenchError, match=r"python -m addbench.metrics.mps convert"):
        MPS(checkpoint=str(root / "MPS_overall_checkpoint.pth"), processor=str(proc))
    other = tmp_path / "other.pth"
    torch.save(nn.Linear(2, 2), other)
    with pytest.raises(AddbenchError, match="unexpected key 'weight' in the MPS checkpoint"):
        convert(other, tmp_path / "x.safetensors")


# ---- the pickled config as transformers of different versions write it -----------------------------------------
DTYPE_VARIANTS = {  # attribute -> value, set on the CLIPConfig and both sub-configs before pickling
    "dtype-object": {"dtype": torch.float32},  # newer transformers keep a torch.dtype on the object
    "dtype-torch-string": {"dtype": "torch.float32"},  # the string the audit's pickle carried
    "dtype-string": {"dtype": "float32"},
    "torch_dtype-string": {"torch_dtype": "float16"},  # older transformers
    "torch_dtype-torch-string": {"torch_dtype": "torch.float16"},
    "both-keys": {"dtype": torch.bfloat16, "torch_dtype": "float32"},
}


def _scores(path, proc):
    from addbench.metrics.mps import MPS

    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return MPS(checkpoint=str(path), processor=str(proc)).score(images, ["a red car", "two cats on a sofa"])


@pytest.fixture(scope="module")
def plain_scores(official, tmp_path_factory):
    from addbench.metrics.mps import convert

    root, _, proc = official
    return _scores(convert(root / "MPS_overall_checkpoint.pth", tmp_path_factory.mktemp("plain") / "m.safetensors"),
                   proc)


def _variant(model, tmp_path, set_attrs):
    m = copy.deepcopy(model)
    cfg = m.model.config
    set_attrs(cfg)
    return pickle_whole(m, tmp_path / "MPS_overall_checkpoint.pth")


@pytest.mark.parametrize("variant", sorted(DTYPE_VARIANTS))
def test_config_dtype_in_any_key_and_form_converts(official, plain_scores, tmp_path, variant):
    from addbench.metrics.mps import convert

    root, model, proc = official

    def set_dtype(cfg):
        for c in (cfg, cfg.text_config, cfg.vision_config):
            c.__dict__.update(DTYPE_VARIANTS[variant])

    out = convert(_variant(model, tmp_path, set_dtype), tmp_path / "m.safetensors")
    assert torch.equal(_scores(out, proc), plain_scores)  # the dtype field changes nothing


def test_legacy_sub_config_dicts(official, plain_scores, tmp_path):
    """Sub-configs pickled as plain dicts (``text_config_dict``, an older CLIPConfig layout), with ``torch_dtype``."""
    from addbench.metrics.mps import convert

    root, model, proc = official

    def legacy(cfg):
        for sub in ("text_config", "vision_config"):
            d = getattr(cfg, sub).to_dict()
            d.pop("dtype", None)
            cfg.__dict__[f"{sub}_dict"] = dict(d, torch_dtype="float32")
            del cfg.__dict__[sub]

    out = convert(_variant(model, tmp_path, legacy), tmp_path / "m.safetensors")
    assert torch.equal(_scores(out, proc), plain_scores)


def test_file_from_the_old_converter_with_a_dtype_string_loads(official, plain_scores, tmp_path):
    """Files converted before dtypes were dropped may carry "dtype": "torch.float32" in their metadata."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from addbench.metrics.mps import convert

    root, _, proc = official
    good = convert(root / "MPS_overall_checkpoint.pth", tmp_path / "good.safetensors")
    with safe_open(str(good), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    cfg = json.loads(meta["clip_config"])
    for c in (cfg, cfg["text_config"], cfg["vision_config"]):
        c["dtype"] = "torch.float32"
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata=dict(meta, clip_config=json.dumps(cfg)))
    assert torch.equal(_scores(old, proc), plain_scores)


def _one_line_error(exc_info, path):
    msg = str(exc_info.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


def test_conversion_failures_are_one_line_naming_the_file(official, tmp_path, monkeypatch, capsys):
    from addbench.metrics import mps
    from addbench.metrics.mps import convert, main

    root, model, proc = official

    def bad_act(cfg):
        cfg.vision_config.__dict__["hidden_act"] = "no_such_activation"

    src = _variant(model, tmp_path, bad_act)
    with pytest.raises(AddbenchError, match="does not build a transformers CLIPModel") as e:
        convert(src, tmp_path / "x.safetensors")
    _one_line_error(e, src)
    assert not (tmp_path / "x.safetensors").exists()

    def wider(cfg):
        cfg.vision_config.__dict__["intermediate_size"] = 99

    src = _variant(model, tmp_path, wider)
    with pytest.raises(AddbenchError, match="weights do not fit the model of its config") as e:
        convert(src, tmp_path / "x.safetensors")
    _one_line_error(e, src)

    src = root / "MPS_overall_checkpoint.pth"
    monkeypatch.setattr(mps, "clip_config_dict", lambda stub: (_ for _ in ()).throw(RuntimeError("boom\nmore")))
    with pytest.raises(AddbenchError, match=r"could not convert the MPS checkpoint \(RuntimeError: boom more\); "
                                            r"is it MPS_overall_checkpoint.pth from Kwai-Kolors/MPS\?") as e:
        convert(src, tmp_path / "x.safetensors")
    _one_line_error(e, src)
    assert main(["convert", str(src), str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {src}: could not convert")
