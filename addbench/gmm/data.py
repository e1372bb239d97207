"""Training data of the default unit world: ``prompts=gmm:N`` and ``real_images=gmm:N`` (addbench.train.data).

A "real image" is one exact sample x0 ~ p(x0 | class), a float32 (D,) vector, with its caption ``"class k"``;
classes follow the class prior. Both are pure functions of (N, seed).
"""
from __future__ import annotations

import numpy as np
import torch

from addbench.gmm import analytic
from addbench.gmm.captions import caption, draw_classes
from addbench.gmm.mixture import make_mixture


def exact_dataset(n: int, seed: int = 0, mixture=None) -> tuple[torch.Tensor, list[str]]:
    """(x0 float32 (n, D), captions): exact samples of the world (the default one when ``mixture`` is None)."""
    mixture = mixture or make_mixture()
    classes = draw_classes(n, seed, mixture)
    x0 = analytic.sample(mixture, classes, seed=int(np.random.default_rng([seed, 1]).integers(2**62)))
    return x0.float(), [caption(k) for k in classes]
