"""Trainable discriminator heads. Each maps one backbone feature to a logit map:
``head(feature, cond=None) -> (N, 1, ...)``.

- ``DMDXHead``      DMDX appendix B (after SDXL-Lightning): 4 × [4×4 conv stride 2, GroupNorm(32), SiLU],
                    then a 1×1 conv to a logit map. Works on (N, C, H, W) maps of any size (tiny maps are
                    padded so every stride-2 conv keeps at least 1×1).
- ``DMD2Head``      DMD2's classifier branch on the fake UNet bottleneck: stride-2 4×4 conv + GroupNorm(32)
                    + SiLU down to 4×4, one more conv to 1×1, then a 1×1 conv -> one logit per sample.
- ``TokenHead``     ADD / StyleGAN-T head on ViT tokens (N, C, L): 1D conv blocks (spectral norm, local
                    batch norm, LeakyReLU 0.2; a k=1 block then a residual k=9 block) and projection
                    conditioning (Miyato & Koyama) on a conditioning vector (ADD: text ⊕ image embedding).
- ``Video3DHead``   DMDX video head: 3 × [3×3×3 conv stride 1] then 3 × [4×4 2D conv stride 2] per frame,
                    GroupNorm(32) + SiLU after each, 1×1 conv -> (N, 1, T, h, w).
- ``VectorHead``    MLP head on (N, C) feature vectors (the gmm base's MLP taps): ``n_blocks`` × [Linear,
                    LayerNorm, SiLU] (LayerNorm: GroupNorm(32) on a vector normalises a few values per group),
                    then one logit per sample, (N, 1).

``head_for(feature, width, n_blocks, cond_dim, kind)`` picks the head for a probe feature by its ndim.

GroupNorm uses gcd(32, channels) groups so toy widths (8, 16, ...) work; it is 32 for real models.
Any head built with ``cond_dim > 0`` projects its output onto an embedding of ``cond``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm


def group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(channels, groups), channels)


class Projection(nn.Module):
    """Projection conditioning: logit = <h, W c> / sqrt(cmap_dim) per position; plain 1-channel if cond_dim = 0."""

    def __init__(self, width: int, cond_dim: int = 0, cmap_dim: int = 64, ndim: int = 2):
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[ndim]
        self.cond_dim, self.cmap_dim = cond_dim, cmap_dim
        self.out = conv(width, cmap_dim if cond_dim else 1, 1)
        self.embed = nn.Linear(cond_dim, cmap_dim) if cond_dim else None

    def forward(self, h: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        out = self.out(h)
        if self.embed is None:
            return out
        if cond is None or cond.shape != (h.shape[0], self.cond_dim):
            got = None if cond is None else tuple(cond.shape)
            raise ValueError(f"head expects cond of shape ({h.shape[0]}, {self.cond_dim}), got {got}")
        cmap = self.embed(cond.to(out.dtype)).reshape(*cond.shape[:1], self.cmap_dim, *([1] * (out.ndim - 2)))
        return (out * cmap).sum(1, keepdim=True) / math.sqrt(self.cmap_dim)


class Down2d(nn.Module):
    """4×4 conv, stride 2; padding 1 as usual, more on maps smaller than 2 so the output is >= 1×1."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 4, 2, padding=0)

    def forward(self, x):
        ph, pw = (max(1, math.ceil((4 - s) / 2)) for s in x.shape[-2:])
        return self.conv(F.pad(x, (pw, pw, ph, ph)))


def _block2d(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(Down2d(cin, cout), group_norm(cout), nn.SiLU())


class DMDXHead(nn.Module):
    def __init__(self, in_channels: int, width: int | None = None, n_blocks: int = 4, cond_dim: int = 0,
                 cmap_dim: int = 64):
        super().__init__()
        width = width or in_channels
        self.blocks = nn.Sequential(*[_block2d(in_channels if i == 0 else width, width) for i in range(n_blocks)])
        self.proj = Projection(width, cond_dim, cmap_dim, ndim=2)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.proj(self.blocks(x), cond)


class DMD2Head(nn.Module):
    def __init__(self, in_channels: int, size: int, width: int | None = None, cond_dim: int = 0, cmap_dim: int = 64):
        super().__init__()
        width = width or in_channels
        layers, c, s = [], in_channels, size
        while s > 4:
            layers += [nn.Conv2d(c, width, 4, 2, padding=1), group_norm(width), nn.SiLU()]
            c, s = width, s // 2
        layers += [nn.Conv2d(c, width, s, s, padding=0), group_norm(width), nn.SiLU()]  # s×s -> 1×1
        self.size, self.blocks = size, nn.Sequential(*layers)
        self.proj = Projection(width, cond_dim, cmap_dim, ndim=2)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            raise ValueError(f"DMD2Head built for {self.size}×{self.size} maps, got {tuple(x.shape[-2:])}")
        return self.proj(self.blocks(x), cond)


class LocalBatchNorm1d(nn.Module):
    """StyleGAN-T's BatchNormLocal: batch statistics over groups of ~``virtual_bs`` samples and all tokens."""

    def __init__(self, channels: int, virtual_bs: int = 8, eps: float = 1e-5):
        super().__init__()
        self.virtual_bs, self.eps = virtual_bs, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, length = x.shape
        g = math.ceil(n / self.virtual_bs)
        while n % g:
            g += 1
        y = x.float().reshape(g, n // g, c, length)
        mean = y.mean((1, 3), keepdim=True)
        var = y.var((1, 3), keepdim=True, unbiased=False)
        y = ((y - mean) * torch.rsqrt(var + self.eps)).reshape(n, c, length).to(x.dtype)
        return y * self.weight[None, :, None] + self.bias[None, :, None]


class _Block1d(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, spectral: bool):
        conv = nn.Conv1d(cin, cout, kernel, padding=kernel // 2, padding_mode="circular")
        super().__init__(spectral_norm(conv) if spectral else conv, LocalBatchNorm1d(cout), nn.LeakyReLU(0.2))


class _Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return (self.fn(x) + x) / math.sqrt(2)


class TokenHead(nn.Module):
    def __init__(self, channels: int, width: int | None = None, cond_dim: int = 0, cmap_dim: int = 64,
                 spectral: bool = True):
        super().__init__()
        width = width or channels
        self.main = nn.Sequential(_Block1d(channels, width, 1, spectral), _Residual(_Block1d(width, width, 9, spectral)))
        self.proj = Projection(width, cond_dim, cmap_dim, ndim=1)

    def forward(self, tokens: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if tokens.ndim != 3:
            raise ValueError(f"TokenHead expects (N, C, L) tokens, got shape {tuple(tokens.shape)}")
        return self.proj(self.main(tokens), cond)


class Video3DHead(nn.Module):
    def __init__(self, in_channels: int, width: int | None = None, cond_dim: int = 0, cmap_dim: int = 64):
        super().__init__()
        width = width or in_channels
        layers = []
        for i in range(3):
            layers += [nn.Conv3d(in_channels if i == 0 else width, width, 3, 1, padding=1), group_norm(width), nn.SiLU()]
        self.temporal = nn.Sequential(*layers)
        self.spatial = nn.Sequential(*[_block2d(width, width) for _ in range(3)])
        self.proj = Projection(width, cond_dim, cmap_dim, ndim=3)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"Video3DHead expects (N, C, T, H, W), got shape {tuple(x.shape)}")
        h = self.temporal(x)
        n, c, t = h.shape[:3]
        h = self.spatial(h.transpose(1, 2).reshape(n * t, c, *h.shape[-2:]))
        h = h.reshape(n, t, c, *h.shape[-2:]).transpose(1, 2)
        return self.proj(h, cond)


class VectorHead(nn.Module):
    def __init__(self, in_channels: int, width: int | None = None, n_blocks: int = 2, cond_dim: int = 0,
                 cmap_dim: int = 64):
        super().__init__()
        width = width or in_channels
        self.blocks = nn.Sequential(*[nn.Sequential(nn.Linear(in_channels if i == 0 else width, width),
                                                    nn.LayerNorm(width), nn.SiLU()) for i in range(n_blocks)])
        self.proj = Projection(width, cond_dim, cmap_dim, ndim=1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 2:
            raise ValueError(f"VectorHead expects (N, C) features, got shape {tuple(x.shape)}")
        return self.proj(self.blocks(x)[..., None], cond)[..., 0]


HEAD_KINDS = ("dmdx", "dmd2")


def head_for(feature: torch.Tensor, width: int | None = None, n_blocks: int = 4, cond_dim: int = 0,
             kind: str = "dmdx") -> nn.Module:
    """The head for one probe ``feature`` by its ndim: (N, C) ``VectorHead``; (N, C, L) ``TokenHead``;
    (N, C, h, w) ``DMDXHead`` (kind "dmdx") or ``DMD2Head`` (kind "dmd2", built for h × h maps); (N, C, F, h, w)
    ``Video3DHead``. ``width`` 0 / None = the feature's channels; ``n_blocks`` is read by the vector and DMDX heads."""
    if kind not in HEAD_KINDS:
        raise ValueError(f"head kind {kind!r}; use one of {', '.join(HEAD_KINDS)}")
    c, width = feature.shape[1], width or None
    if feature.ndim == 2:
        return VectorHead(c, width=width, n_blocks=n_blocks, cond_dim=cond_dim)
    if feature.ndim == 3:
        return TokenHead(c, width=width, cond_dim=cond_dim)
    if feature.ndim == 4:
        if kind == "dmd2":
            return DMD2Head(c, feature.shape[-1], width=width, cond_dim=cond_dim)
        return DMDXHead(c, width=width, n_blocks=n_blocks, cond_dim=cond_dim)
    if feature.ndim == 5:
        return Video3DHead(c, width=width, cond_dim=cond_dim)
    raise ValueError(f"no discriminator head for a feature of shape {tuple(feature.shape)}")
