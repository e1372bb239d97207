"""LPIPS diversity: for each prompt, the mean LPIPS distance over all pairs of its seeds.

DMD2 / DMDX Table 6 protocol: PartiPrompts, 4 seeds per prompt, mean pairwise LPIPS (higher = more
diverse; DMDX reports 0.7156, SDXL teacher 0.6936). The metric is grouped: every seed of a prompt arrives
in one ``update``; each prompt gets one score, recorded with key ``(prompt_index, -1)``; ``compute`` is the
mean over prompts and ``bootstrap`` (the base class's) resamples prompts.

Network: ``lpips.LPIPS(net=..., version="0.1")`` at the images' own resolution, inputs scaled to [-1, 1].
lpips' linear calibration weights ship in its wheel; the trunk (AlexNet by default) is torchvision's
ImageNet checkpoint, read from torch hub's cache (``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth``)
or the ``backbone_weights`` kwarg and never downloaded.
"""
from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import torch

from addbench.errors import AddbenchError
from addbench.metrics.base import Key, Metric

TORCHVISION_FILES = {  # lpips net -> torchvision checkpoint file (what `pretrained=True` would download)
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}


def backbone_path(net: str, backbone_weights: str | None = None) -> Path:
    if net not in TORCHVISION_FILES:
        raise AddbenchError(f"lpips net={net!r} unknown; use one of {', '.join(TORCHVISION_FILES)}")
    if backbone_weights:
        path = Path(backbone_weights).expanduser()
    else:
        path = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILES[net]
    if not path.is_file():
        raise AddbenchError(f"LPIPS {net} backbone weights {path} not found; copy torchvision's {TORCHVISION_FILES[net]} "
                            "there (torch hub cache, $TORCH_HOME) or pass backbone_weights=<file>")
    return path


def load_lpips(net: str = "alex", device="cpu", backbone_weights: str | None = None, random_backbone: bool = False):
    """lpips.LPIPS with its shipped linear weights and the trunk loaded from a local torchvision checkpoint.

    ``random_backbone=True`` keeps lpips' random trunk (``pnet_rand=True``): for tests only.
    """
    import lpips

    if net not in TORCHVISION_FILES:
        raise AddbenchError(f"lpips net={net!r} unknown; use one of {', '.join(TORCHVISION_FILES)}")
    with warnings.catch_warnings():  # torchvision's "pretrained is deprecated" (lpips passes pretrained=False)
        warnings.simplefilter("ignore", UserWarning)
        with torch.random.fork_rng(devices=[]):  # the random trunk is seeded: every rank/run scores alike
            torch.manual_seed(0)
            model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    if not random_backbone:
        state = torch.load(backbone_path(net, backbone_weights), map_location="cpu", weights_only=True)
        # lpips splits torchvision's `features` Sequential into slices whose children keep their index
        mapped = {}
        for name in model.net.state_dict():
            _, idx, param = name.split(".", 2)  # "slice2.3.weight" -> idx "3"
            mapped[name] = state[f"features.{idx}.{param}"]
        model.net.load_state_dict(mapped)
    return model.to(device).eval().requires_grad_(False)


def lpips_weight_files(net: str, backbone_weights: str | None = None,
                       random_backbone: bool = False) -> list[tuple[str, Path]]:
    """The files ``load_lpips`` reads: lpips' linear layers ``weights/v0.1/<net>.pth`` and the trunk checkpoint."""
    import lpips

    files = [("lpips_linear", Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth")]
    if not random_backbone:
        files.append(("trunk", backbone_path(net, backbone_weights)))
    return files


class LPIPSDiversity(Metric):
    name = "lpips_diversity"
    higher_is_better = True
    grouped = True

    def __init__(self, device="cpu", net: str = "alex", backbone_weights: str | None = None,
                 random_backbone: bool = False, batch_size: int = 16):
        super().__init__(device)
        self.net, self.random_backbone, self.batch_size = net, random_backbone, batch_size
        self.model = load_lpips(net, self.device, backbone_weights, random_backbone)
        self.backbone_weights = backbone_weights

    def weight_files(self) -> list[tuple[str, Path]]:
        """(role, file): lpips' linear layers (shipped in the lpips package) and the torchvision trunk."""
        return lpips_weight_files(self.net, self.backbone_weights, self.random_backbone)

    def convention(self) -> str:
        return f"lpips-{self.net}-v0.1{',random-backbone' if self.random_backbone else ''},pairwise-mean"

    @torch.no_grad()
    def prompt_score(self, images: torch.Tensor) -> float:
        """Mean LPIPS over all unordered pairs of the given images (all seeds of one prompt)."""
        if images.shape[0] < 2:
            raise AddbenchError("lpips_diversity needs at least 2 seeds per prompt")
        x = images.to(self.device, torch.float32) / 127.5 - 1.0
        pairs = list(itertools.combinations(range(images.shape[0]), 2))
        dists = []
        for i in range(0, len(pairs), self.batch_size):
            a, b = zip(*pairs[i:i + self.batch_size])
            dists.append(self.model(x[list(a)], x[list(b)]).flatten().double().cpu())
        return float(torch.cat(dists).mean())

    def update(self, images: torch.Tensor, prompts: list[str], keys: list[Key]) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or len(keys) != images.shape[0]:
            raise AddbenchError(f"lpips_diversity: need uint8 (N,3,H,W) images and N keys; got "
                                f"{tuple(images.shape)} {images.dtype} and {len(keys)} keys")
        seen = {p for p, _ in self.keys}
        by_prompt: dict[int, list[int]] = {}
        for row, (p, _) in enumerate(keys):
            by_prompt.setdefault(int(p), []).append(row)
        for p, rows in by_prompt.items():
            if p in seen:
                raise AddbenchError(f"lpips_diversity: prompt {p} arrived in two updates; it is grouped, "
                                    "send all seeds of a prompt together")
            self._record([(p, -1)], [self.prompt_score(images[rows])])

    def compute(self) -> float:
        if not self.scores:
            raise AddbenchError("lpips_diversity: no prompts were scored")
        return float(sum(self.scores) / len(self.scores))
