"""Shared image views (addbench.metrics.views): each resize runs once per batch, and every metric gives the same
numbers as its old per-image path (tiny models; the old path is what a metric falls back to without a view)."""
from __future__ import annotations

import importlib.util
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from addbench.metrics import views
from addbench.metrics.views import ImageBatch, PilResize, TorchResize

HERE = Path(__file__).parent


def _helpers(name):
    spec = importlib.util.spec_from_file_location(f"_views_{name}", HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _smooth(n, size, seed):
    """Smooth random images (upsampled 6x6 noise + a little grain): resizes of them are not trivial."""
    g = torch.Generator().manual_seed(seed)
    low = torch.nn.functional.interpolate(torch.rand(n, 3, 6, 6, generator=g), size=(size, size), mode="bicubic")
    return ((low + 0.05 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1) * 255).round().to(torch.uint8)


PROMPTS = ["a red square", "a blue circle on green", "two yellow triangles", "a photo of a cat",
           "an astronaut riding a horse", "a small purple star"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """CLIP score, PickScore, MPS, HPSv2 on tiny random models (CLIP-family inputs at 32²); FID on open_clip features."""
    import open_clip
    from safetensors.torch import save_file
    from transformers import CLIPModel

    from addbench.metrics.mps import MPSHead, save_mps

    root = tmp_path_factory.mktemp("views")
    cs, ps, hp = _helpers("test_clip_score"), _helpers("test_pickscore"), _helpers("test_hpsv2")
    clip_dir = root / "clip"
    clip_dir.mkdir()
    (clip_dir / "open_clip_config.json").write_text(json.dumps(cs.CFG))
    torch.manual_seed(2)
    save_file(open_clip.create_model(f"local-dir:{clip_dir}").state_dict(),
              str(clip_dir / "open_clip_model.safetensors"))
    torch.manual_seed(0)
    pick = CLIPModel(ps.tiny_clip_config())
    pick.save_pretrained(root / "pick")
    proc = ps.write_processor(root / "processor")
    torch.manual_seed(1)
    mps = save_mps(root / "mps.safetensors", CLIPModel(ps.tiny_clip_config()),
                   MPSHead(dim=16, layers=2, heads=2, dim_head=8))
    torch.manual_seed(0)
    hps_path = root / "HPS_v2.1_compressed.pt"
    torch.save({"state_dict": open_clip.create_model("ViT-H-14", pretrained=None, **hp.TINY).state_dict()}, hps_path)
    return {"clip_score": dict(model=f"local-dir:{clip_dir}", pretrained=None, convention="x100", batch_size=4),
            "pickscore": dict(model=str(root / "pick"), processor=str(proc), batch_size=4),
            "mps": dict(checkpoint=str(mps), processor=str(proc), batch_size=4),
            "hpsv2": dict(checkpoint=str(hps_path), arch_overrides=hp.TINY, batch_size=4),
            "fid": dict(reference="unused", features=f"open_clip:local-dir:{clip_dir}", batch_size=4)}


def _metric(name, kw):
    from addbench.metrics.fid import batched_resize
    from addbench.registry import METRICS

    m = METRICS.get(name)(device="cpu", **kw)
    if name == "fid":  # FID resizes through the view on GPUs only: force it here
        m.view = batched_resize(m.resize, m.extractor.input_size)
        m.views = (m.view,)
    return m


def _without_view(m):
    """The metric's per-image path (what it does for images no view covers)."""
    if hasattr(m, "pixels"):
        m.pixels.view = None
    else:
        m.view = None
    m.views = ()
    return m


def _outputs(m):
    return m.features()[0] if m.name == "fid" else torch.tensor(m.scores)


@pytest.mark.parametrize("name", ["clip_score", "pickscore", "mps", "hpsv2", "fid"])
def test_view_path_gives_the_old_numbers(tiny, name):
    images = _smooth(len(PROMPTS), 48, seed=4)
    keys = [(i, 0) for i in range(len(PROMPTS))]
    new, old = _metric(name, tiny[name]), _without_view(_metric(name, tiny[name]))
    assert new.views, f"{name} should read a shared view for square images"
    new.update(images, PROMPTS, keys)
    old.update(images, PROMPTS, keys)
    if name == "fid":  # torch's antialiased bicubic vs clean-fid's PIL float resize: same filter, float rounding
        assert torch.allclose(_outputs(new), _outputs(old), rtol=1e-4, atol=1e-5)
    else:  # the same pixels bit for bit, so the same scores
        assert torch.equal(_outputs(new), _outputs(old)), (name, _outputs(new) - _outputs(old))


def test_one_resize_per_batch_shared_by_the_clip_family(tiny, monkeypatch):
    calls = []
    real = PilResize.one
    monkeypatch.setattr(PilResize, "one", lambda self, im: calls.append(self) or real(self, im))
    images = _smooth(4, 64, seed=5)
    keys = [(i, 0) for i in range(4)]
    metrics = [_metric(n, tiny[n]) for n in ("clip_score", "pickscore", "mps")]
    assert {v for m in metrics for v in m.views} == {PilResize(32)}
    with ThreadPoolExecutor(2) as pool:
        batch = ImageBatch(images, "cpu", pool)
        batch.prefetch({v for m in metrics for v in m.views})
        for m in metrics:
            m.update_batch(batch, PROMPTS[:4], keys)
    assert len(calls) == 4  # one PIL resize per image, not one per image and metric
    for m in metrics:  # and each equals the metric scoring alone
        alone = _metric(m.name, tiny[m.name])
        alone.update(images, PROMPTS[:4], keys)
        assert alone.scores == m.scores


def test_non_square_images_keep_the_per_image_path(tiny, monkeypatch):
    monkeypatch.setattr(views.ImageBatch, "get", lambda *a: pytest.fail("no view for non-square images"))
    m = _metric("pickscore", tiny["pickscore"])
    m.update(_smooth(2, 40, seed=6)[..., :36], PROMPTS[:2], [(0, 0), (1, 0)])
    assert len(m.scores) == 2


@pytest.mark.parametrize("kind,bound", [("smooth", 1e-3), ("noise", 5e-3)])
def test_torch_antialiased_bicubic_is_cleanfid_resize(kind, bound):
    """clean-fid's "clean" resize (PIL bicubic on float channels) vs the batched view, 512 -> 299, on [0, 255]."""
    from cleanfid.resize import make_resizer

    g = torch.Generator().manual_seed(7)
    images = _smooth(2, 512, seed=7) if kind == "smooth" else torch.randint(0, 256, (2, 3, 512, 512), generator=g,
                                                                           dtype=torch.uint8)
    clean = make_resizer("PIL", False, "bicubic", (299, 299))
    ref = np.stack([clean(im.permute(1, 2, 0).numpy()).transpose(2, 0, 1) for im in images])
    ours = TorchResize((299, 299), "bicubic", True, clamp=(0.0, 255.0))(ImageBatch(images)).numpy()
    assert np.abs(ours - ref).max() < bound
