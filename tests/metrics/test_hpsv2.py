"""HPSv2 on a tiny open_clip model saved in hpsv2's checkpoint format, checked against hpsv2's own recipe."""
import pytest
import torch

from addbench.errors import AddbenchError

TINY = dict(embed_dim=16, vision_cfg=dict(image_size=32, layers=2, width=32, head_width=16, patch_size=8),
            text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=2))


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-H-14", pretrained=None, **TINY)
    path = tmp_path_factory.mktemp("hps") / "HPS_v2.1_compressed.pt"
    # DDP-style prefix, as some HPS checkpoints carry; the loader strips it
    torch.save({"state_dict": {"module." + k: v for k, v in model.state_dict().items()}}, path)
    return path, model.eval()


MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def official_transform(size, antialias=True, pad_unresized=False):
    """hpsv2's evaluation transform, written out from hpsv2/src/open_clip/transform.py: create_model_and_transforms
    (light_augmentation=True) -> image_transform(is_train=False, resize_longest_max=True) = convert RGB, ToTensor,
    ResizeMaxSize(size, fill=0) (longest side to size on the float tensor, pad to a square), Normalize.
    ``pad_unresized``: also pad when the longest side already is ``size`` (hpsv2 does not; its ViT then fails)."""
    from torchvision import transforms as T
    from torchvision.transforms import functional as TF

    def resize_max_size(img):
        height, width = img.shape[1:]
        scale = size / float(max(height, width))
        if scale != 1.0 or pad_unresized:
            new_size = tuple(round(dim * scale) for dim in (height, width))
            if scale != 1.0:
                img = TF.resize(img, new_size, T.InterpolationMode.BICUBIC, antialias=antialias)
            pad_h, pad_w = size - new_size[0], size - new_size[1]
            img = TF.pad(img, padding=[pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2], fill=0)
        return img

    return T.Compose([lambda im: im.convert("RGB"), T.ToTensor(), resize_max_size, T.Normalize(MEAN, STD)])


def reference_scores(model, images, prompts, transform=None):
    """hpsv2 img_score.py: PIL -> its evaluation transform; model(image, text) -> diag(image_f @ text_f.T)."""
    import open_clip
    from PIL import Image

    tf = transform or official_transform(model.visual.image_size[0])
    tok = open_clip.get_tokenizer("ViT-H-14")
    out = []
    for im, p in zip(images, prompts):
        x = tf(Image.fromarray(im.permute(1, 2, 0).numpy())).unsqueeze(0)
        with torch.no_grad():
            o = model(x, tok([p]), )
        f_img, f_txt = (o["image_features"], o["text_features"]) if isinstance(o, dict) else o[:2]
        out.append(torch.diagonal(f_img @ f_txt.T)[0])
    return torch.stack(out)


def _images(n, h, w, seed):
    return torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


PROMPTS = ["a watercolor fox", "a city at night, neon lights", "a watercolor fox"]


def test_hpsv2_matches_hpsv2_recipe(tiny_ckpt):
    from addbench.metrics.hpsv2 import HPSv2

    path, model = tiny_ckpt
    metric = HPSv2(checkpoint=str(path), version="v2.1", arch_overrides=TINY, batch_size=2)
    images = _images(3, 40, 56, seed=3)
    metric.update(images, PROMPTS, [(0, 0), (1, 0), (2, 0)])
    ref = reference_scores(model, images, PROMPTS)
    assert torch.allclose(torch.tensor(metric.scores), 100 * ref, atol=1e-3)  # 1e-5 of the cosine
    assert metric.compute() == pytest.approx(100 * ref.mean().item(), abs=1e-3)
    assert metric.id == "hpsv2[v2.1,ViT-H-14,cos*100,longest+pad]"
    raw = HPSv2(checkpoint=str(path), arch_overrides=TINY, scale=1, antialias=False)
    assert raw.id == "hpsv2[v2.1,ViT-H-14,cos,longest+pad,noaa]"
    noaa = reference_scores(model, images[:2], PROMPTS[:2], official_transform(32, antialias=False))
    assert torch.allclose(raw.score(images[:2], PROMPTS[:2]), noaa, atol=1e-5)


@pytest.mark.parametrize("h,w", [(40, 56), (56, 40), (256, 352), (20, 28), (32, 24), (33, 47)])
def test_non_square_images_are_letterboxed_as_hpsv2(tiny_ckpt, h, w):
    """Longest side to 224 (here 32), the other in proportion, black padding: hpsv2's ResizeMaxSize, to 1e-5 of
    the cosine, on the batched (view) path and on the image-by-image path. (32, 24): the longest side is already
    32, hpsv2 neither resizes nor pads (its ViT would fail); we pad."""
    from addbench.metrics.hpsv2 import HPSv2

    path, model = tiny_ckpt
    metric = HPSv2(checkpoint=str(path), arch_overrides=TINY, scale=1, batch_size=2)
    images = _images(3, h, w, seed=h * w)
    got = metric.score(images, PROMPTS)
    ref = reference_scores(model, images, PROMPTS, official_transform(32, pad_unresized=(h, w) == (32, 24)))
    assert torch.allclose(got, ref, atol=1e-5), (got, ref)
    metric.view, metric.views = None, ()  # image by image
    assert torch.allclose(metric.score(images, PROMPTS), ref, atol=1e-5)


def test_square_images_score_as_before(tiny_ckpt):
    """On square images longest+pad is the old shortest-side resize + centre crop: the numbers do not move."""
    from torchvision import transforms as T

    from addbench.metrics.hpsv2 import HPSv2

    path, model = tiny_ckpt
    metric = HPSv2(checkpoint=str(path), arch_overrides=TINY, scale=1, batch_size=2)
    images = _images(3, 48, 48, seed=7)
    old = T.Compose([T.ToTensor(), T.Resize(32, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(32),
                     T.Normalize(MEAN, STD)])
    assert torch.allclose(metric.score(images, PROMPTS), reference_scores(model, images, PROMPTS, old), atol=1e-5)
    assert torch.allclose(metric.score(images, PROMPTS), reference_scores(model, images, PROMPTS), atol=1e-5)


def test_geometry_is_open_clip_longest_resize_mode():
    """Today's open_clip calls the same geometry image_transform(resize_mode="longest", fill_color=0); it resizes the
    PIL image in uint8 (hpsv2: the float tensor), so the pixels agree to a few uint8 steps and the padding exactly."""
    import open_clip
    from PIL import Image

    from addbench.metrics.hpsv2 import hps_preprocess

    g = torch.Generator().manual_seed(0)
    for h, w in ((256, 352), (352, 256), (100, 61)):
        low = torch.nn.functional.interpolate(torch.rand(1, 3, 5, 5, generator=g), size=(h, w), mode="bilinear")
        image = (low * 200 + 28).round().to(torch.uint8)  # smooth, no clipping at 0 / 255
        ours = hps_preprocess(image, 224)[0]
        oc = open_clip.image_transform(224, is_train=False, mean=MEAN, std=STD, resize_mode="longest", fill_color=0)
        theirs = oc(Image.fromarray(image[0].permute(1, 2, 0).numpy()))
        pad_value = (-torch.tensor(MEAN) / torch.tensor(STD)).view(3, 1, 1)
        assert torch.equal(torch.isclose(ours, pad_value.expand_as(ours)).all(0),
                           torch.isclose(theirs, pad_value.expand_as(theirs)).all(0))
        assert (ours - theirs).abs().max() < 2.5 / 255 / min(STD)


def test_missing_and_bad_checkpoints(tmp_path):
    from addbench.metrics.hpsv2 import HPSv2

    with pytest.raises(AddbenchError, match=r"HPSv2 checkpoint .*HPS_v2_compressed.pt not found; download "
                                            r"HPS_v2_compressed.pt from the hub repo xswu/HPSv2"):
        HPSv2(version="v2.0", checkpoint=str(tmp_path / "HPS_v2_compressed.pt"))
    with pytest.raises(AddbenchError, match="unknown HPSv2 version"):
        HPSv2(version="v3", checkpoint=str(tmp_path / "x.pt"))
    bad = tmp_path / "bad.pt"
    torch.save({"state_dict": {"visual.proj": torch.zeros(2, 2)}}, bad)
    with pytest.raises(AddbenchError, match="does not fit open_clip ViT-H-14"):
        HPSv2(checkpoint=str(bad), arch_overrides=TINY)


def test_full_vit_h14_key_mapping_on_meta_device():
    """A ViT-H-14-shaped hpsv2 state dict (DDP prefix) maps onto open_clip's ViT-H-14 without allocating weights."""
    import open_clip

    from addbench.metrics.hpsv2 import checkpoint_state_dict

    with torch.device("meta"):
        model = open_clip.create_model("ViT-H-14", pretrained=None, device="meta")
    sd = model.state_dict()
    assert len(sd) == 686 and sum(v.numel() for v in sd.values()) == 986_109_441
    assert sd["visual.proj"].shape == (1280, 1024) and sd["text_projection"].shape == (1024, 1024)
    ckpt = {"state_dict": {"module." + k: torch.empty_like(v) for k, v in sd.items()}}
    missing, unexpected = model.load_state_dict(checkpoint_state_dict(ckpt), strict=True, assign=True)
    assert not missing and not unexpected
