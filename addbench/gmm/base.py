"""``GMMBase``: the unit world behind the ``Base`` interface, so every distiller runs on it unchanged.

It is the toy / SD1.5 adapter's code path (:class:`DiffusersBase`: CFG, x0, copies, identity VAE) with a
``GMMDenoiser`` as the network and the same VP schedule (scaled_linear 0.00085..0.012, 1000 steps, ε; α_T ≈
0.068, so reading an ε-prediction at t = T is as ill-conditioned as on SD1.5). Differences:

- latents are points: ``latent_shape(h, w)`` is (D,) whatever h and w (the size keys of configs and samplers
  are ignored); ``encode`` / ``decode`` are the identity on (N, D);
- conditioning: ``encode_prompts`` parses ``"class <k>"`` / ``""`` (:mod:`addbench.gmm.captions`) into a
  one-hot over K classes + the unconditional one; ``Cond.hidden`` (N, 1, K+1), ``Cond.pooled`` (N, K+1);
- feature taps are the MLP blocks; their features are (N, C) vectors (``feature_map`` passes them through;
  ``addbench.discriminators.heads.head_for`` builds a ``VectorHead`` for them);
- the dtype defaults to fp32 on every device (the network is tiny; the mixture stays float64 anyway);
- it is not an image generator: ``load_generator`` refuses it with ``no_generator`` (our choice); sample with
  :func:`addbench.gmm.sample.sample_points`, score with :func:`addbench.gmm.metrics.score`, draw with
  ``addbench samples --model gmm`` (a scatter PNG).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from addbench.bases.cond import Cond
from addbench.bases.diffusers_base import DiffusersBase
from addbench.errors import AddbenchError
from addbench.gmm.captions import UNCOND, parse_captions
from addbench.gmm.mixture import Mixture
from addbench.gmm.network import GMMDenoiser, default_network


class GMMBase(DiffusersBase):
    """``GMMBase(source=None, device=None, dtype=None, mixture=None)``: the default 2-D world's exact teacher;
    ``source`` a directory written by ``GMMDenoiser.save_pretrained``; ``mixture`` another world."""

    name = "gmm"
    resolution = 1  # sizes are ignored (latent_shape)
    sampler_defaults = {"steps": 200, "guidance": 1.0, "solver": "ddim"}
    micro_batch_sizes = {"cuda": 4096, "cpu": 1024}
    no_generator = ("the gmm base samples points, not images: draw them with `addbench samples --model M -p 'class 0' "
                    "--seeds 0,1,... --grid out.png` (a scatter PNG) and score them with addbench.gmm.score")

    def __init__(self, source: str | os.PathLike | None = None, device=None, dtype=None,
                 mixture: Mixture | None = None):
        if source is None:
            net = default_network(mixture)
        elif (Path(source).expanduser() / "config.json").is_file():
            net = GMMDenoiser.from_pretrained(str(Path(source).expanduser()))
        else:
            raise AddbenchError(f"{source} has no config.json; pass a directory written by GMMDenoiser.save_pretrained")
        super().__init__(source, device, "fp32" if dtype is None else dtype,
                         components={"network": net, "scheduler_config": net.scheduler_config()})

    def setup(self, components: dict) -> None:
        self.network = components["network"]

    # ---- the world (read from the network, so a swapped-in student brings its own) ----------------------
    @property
    def mixture(self) -> Mixture:
        return self.network.mixture()

    @property
    def n_classes(self) -> int:
        return self.network.n_classes

    # ---- conditioning ---------------------------------------------------------------------------------
    def one_hot(self, classes: torch.Tensor) -> torch.Tensor:
        """(N,) class ids (UNCOND = -1) -> (N, K+1) one-hot rows, index K = unconditional."""
        k = self.n_classes
        idx = torch.where(classes == UNCOND, torch.full_like(classes, k), classes)
        return F.one_hot(idx, k + 1).to(self.device, self.dtype)

    def _encode(self, prompts: list[str]) -> Cond:
        onehot = self.one_hot(torch.from_numpy(parse_captions(prompts, self.n_classes)))
        return Cond(onehot[:, None, :], onehot)

    def _network_call(self, net, x, t, cond: Cond) -> torch.Tensor:
        return net(x, t, cond.hidden[:, 0])

    # ---- shapes and features ---------------------------------------------------------------------------
    @property
    def feature_taps(self) -> list[str]:
        return [f"blocks.{i}" for i in range(len(self.network.blocks))]

    def feature_map(self, feature: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        return feature  # (N, C) vectors: heads.head_for gives them a VectorHead

    def latent_shape(self, height: int = 1, width: int = 1, frames: int = 1) -> tuple[int, ...]:
        if frames != 1:
            raise AddbenchError(f"gmm is a point base; frames must be 1, got {frames}")
        return (self.network.dim,)

    def network_files(self) -> list[Path]:
        if self.source is None:
            return []
        return sorted(p for p in self.source.iterdir() if p.suffix in (".safetensors", ".bin", ".json"))
