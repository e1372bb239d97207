"""Feature backbones for discriminators: ``backbone(x, t=None, cond=None) -> list of features``.

- ``Dinov2Backbone``  DINOv2 ViT (transformers ``Dinov2Model``, ADD's best: ViT-S) on images in [-1, 1];
                      features after blocks ``layers`` as patch tokens (N, C, L) or maps (N, C, h, w);
                      ``cls_embedding(x)`` gives the CLS image embedding ADD conditions on (ViT-L there).
- ``SamBackbone``     SAM ViT image encoder (transformers ``SamVisionModel``), blocks 3, 6, 9, 12 as maps
                      (DMDX-ADP's pixel discriminator).
- ``NetworkTaps``     forward hooks on named modules of any nn.Module: the teacher UNet / DiT blocks for
                      DMDX's latent discriminator, the fake UNet's bottleneck for DMD2. The names come from
                      the base adapter's ``feature_taps``; nothing here knows a model family.

Backbones are not frozen here (``MultiHeadDiscriminator`` freezes them) and never run under no_grad:
the generator's gradient must flow through them to their input.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from addbench.errors import AddbenchError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_pretrained(cls, path_or_id, what: str):
    """``cls.from_pretrained`` from a local directory or the HF cache only; a clear error otherwise."""
    p = Path(str(path_or_id)).expanduser()
    if p.exists() and not (p / "config.json").is_file():
        raise AddbenchError(f"{what}: {p / 'config.json'} not found; pass a directory written by save_pretrained")
    try:
        return cls.from_pretrained(str(p) if p.exists() else str(path_or_id), local_files_only=True)
    except OSError as e:
        raise AddbenchError(f"{what}: cannot load {path_or_id!r} from a local dir or the HF cache ({e.__class__.__name__}); "
                            "download it yourself and pass its directory - addbench downloads nothing") from None


def tokens_to_map(tokens: torch.Tensor, height: int | None = None, width: int | None = None) -> torch.Tensor:
    """(N, L, C) tokens -> (N, C, h, w); square grids unless height/width are given."""
    n, length, c = tokens.shape
    if height is None:
        height = width = math.isqrt(length)
    if height * width != length:
        raise ValueError(f"cannot reshape {length} tokens to a {height}×{width} map; pass height/width")
    return tokens.transpose(1, 2).reshape(n, c, height, width)


def _prep_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """[-1, 1] images -> ImageNet-normalised, resized to size×size (bilinear, differentiable)."""
    x = (x.float() + 1) / 2
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean = x.new_tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
    return (x - mean) / std


class Dinov2Backbone(nn.Module):
    def __init__(self, model, layers: Sequence[int] = (3, 6, 9, 12), layout: str = "tokens", resolution: int = 224):
        super().__init__()
        if not isinstance(model, nn.Module):
            from transformers import Dinov2Model
            model = load_pretrained(Dinov2Model, model, "DINOv2 backbone")
        cfg = model.config
        if max(layers) > cfg.num_hidden_layers or min(layers) < 1:
            raise AddbenchError(f"DINOv2 has blocks 1..{cfg.num_hidden_layers}; got layers {list(layers)}")
        if layout not in ("tokens", "map") or resolution % cfg.patch_size:
            raise ValueError("layout must be 'tokens' or 'map' and resolution a multiple of the patch size")
        self.model, self.layers, self.layout, self.resolution = model, tuple(layers), layout, resolution
        self.n_prefix = 1 + int(getattr(cfg, "num_register_tokens", 0) or 0)
        self.channels = [cfg.hidden_size] * len(self.layers)

    def forward(self, x: torch.Tensor, t=None, cond=None) -> list[torch.Tensor]:
        out = self.model(pixel_values=_prep_images(x, self.resolution), output_hidden_states=True)
        feats = [out.hidden_states[k][:, self.n_prefix:] for k in self.layers]  # drop CLS / registers
        if self.layout == "map":
            return [tokens_to_map(f) for f in feats]
        return [f.transpose(1, 2) for f in feats]  # (N, C, L) for 1D heads

    def cls_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """ADD's c_img: the (layer-normed) CLS token of the last block, (N, C)."""
        return self.model(pixel_values=_prep_images(x, self.resolution)).pooler_output


class SamBackbone(nn.Module):
    def __init__(self, model, layers: Sequence[int] = (3, 6, 9, 12), resolution: int | None = None):
        super().__init__()
        if not isinstance(model, nn.Module):
            from transformers import SamVisionModel
            model = load_pretrained(SamVisionModel, model, "SAM vision backbone")
        cfg = model.config
        if max(layers) > cfg.num_hidden_layers or min(layers) < 1:
            raise AddbenchError(f"SAM encoder has blocks 1..{cfg.num_hidden_layers}; got layers {list(layers)}")
        self.model, self.layers = model, tuple(layers)
        self.resolution = resolution or cfg.image_size  # absolute position embeddings: the config's size
        self.channels = [cfg.hidden_size] * len(self.layers)

    def forward(self, x: torch.Tensor, t=None, cond=None) -> list[torch.Tensor]:
        out = self.model(pixel_values=_prep_images(x, self.resolution), output_hidden_states=True)
        return [out.hidden_states[k].permute(0, 3, 1, 2) for k in self.layers]  # (N, H, W, C) -> (N, C, H, W)


class _StopForward(Exception):
    pass


def pick_tensor(output) -> torch.Tensor:
    """Default tap selector: the module output itself, ``.sample``, or the *last* tensor of a tuple
    (UNet down blocks return (hidden, skips) with skips a tuple; SD3 joint blocks (text, image))."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "sample"):
        return output.sample
    if isinstance(output, (tuple, list)):
        tensors = [o for o in output if isinstance(o, torch.Tensor)]
        if tensors:
            return tensors[-1]
    raise TypeError(f"cannot pick a feature tensor from a {type(output).__name__}; name the tap 'module:index'")


def _parse_tap(tap: str) -> tuple[str, int | None]:
    """'transformer_blocks.3:1' -> ('transformer_blocks.3', 1): element 1 of a tuple output."""
    name, _, idx = tap.partition(":")
    return name, (int(idx) if idx else None)


class NetworkTaps(nn.Module):
    """Features of ``network`` at the modules named ``names`` (in that order), captured by forward hooks.

    A tap is a module name, optionally ``name:index`` to take element ``index`` of a tuple output;
    without an index ``pick_tensor`` chooses. ``forward_fn(network, x, t, cond)`` runs the network (default ``network(x, t, cond)``; distillers pass
    e.g. ``lambda net, x, t, c: base.predict(x, t, c, network=net)``). Hooks record only inside this
    module's forward, so the same network can be used elsewhere. ``stop_early`` aborts the network's
    forward once every tap has fired (DMD2 stops at the bottleneck). ``spatial`` reshapes (N, L, C)
    token outputs (DiT blocks) to square (N, C, h, w) maps; ``to_map(feature, x)`` replaces that with the
    base adapter's layout (``Base.feature_map``: video DiT tokens -> (N, C, F, h, w)).
    """

    def __init__(self, network: nn.Module, names: Sequence[str], forward_fn: Callable | None = None,
                 spatial: bool = True, stop_early: bool = True, to_map: Callable | None = None):
        super().__init__()
        modules = dict(network.named_modules())
        missing = [n for n in names if _parse_tap(n)[0] not in modules]
        if missing or not names:
            raise AddbenchError(f"feature taps {missing or names} not found among the network's modules "
                                "(check the base adapter's feature_taps)")
        self.network, self.names = network, list(names)
        self.forward_fn = forward_fn or (lambda net, x, t, cond: net(x, t, cond))
        self.spatial, self.stop_early, self.to_map = spatial, stop_early, to_map
        self._store: dict[str, torch.Tensor] | None = None
        self._handles = [modules[_parse_tap(n)[0]].register_forward_hook(self._hook(n)) for n in self.names]

    def remove(self) -> None:
        """Detach the hooks from the network."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def _hook(self, name: str):
        def hook(module, args, output):
            if self._store is None:
                return
            index = _parse_tap(name)[1]
            f = pick_tensor(output) if index is None else output[index]
            self._store[name] = tokens_to_map(f) if (self.to_map is None and self.spatial and f.ndim == 3) else f
            if self.stop_early and len(self._store) == len(self.names):
                raise _StopForward
        return hook

    def forward(self, x: torch.Tensor, t=None, cond=None) -> list[torch.Tensor]:
        self._store = {}
        try:
            self.forward_fn(self.network, x, t, cond)
        except _StopForward:
            pass
        finally:
            store, self._store = self._store, None
        missing = [n for n in self.names if n not in store]
        if missing:
            raise RuntimeError(f"feature taps never ran: {missing}")
        if self.to_map is not None:
            return [self.to_map(store[n], x) for n in self.names]
        return [store[n] for n in self.names]
