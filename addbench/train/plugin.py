"""The distiller plug-in contract: what a method (ADD, DMD, DMD2, DMDX) gives the training engine.

A plug-in wires shared parts (losses, discriminators, the base adapter) and nothing else: the engine
(:mod:`addbench.train.loop`) owns optimisers, precision, clipping, EMA, data, logging, checkpoints and
parallelism. A minimal plug-in::

    @dataclass(frozen=True, kw_only=True)
    class MyConfig(EngineConfig):       # the plug-in's own keys and their types (addbench/train/engine_config.py)
        lr_g: float
        lr_d: float

    class MyMethod(Distiller):
        name = "mine"
        presets = {"toy": {"batch": 32, "budget_images": 12800, "lr_g": 1e-4, "lr_d": 2e-4}}
        config_class = MyConfig         # optional; then self.conf.lr_g is the typed value
        turns = [Turn("d", networks=("d",)), Turn("g", networks=("g",), every=2)]
        data_needs = frozenset({"prompts"})
        student_network = "g"

        def setup(self, base, cfg):
            self.base, self.teacher = base, base.network.requires_grad_(False)
            return {"g": base.copy_network(), "d": MyHead()}

        def loss(self, turn, batch, step):
            g, d = self.nets["g"], self.nets["d"]   # use self.nets: the engine puts the wrapped modules there
            ...
            return loss, {"loss_g": loss.item()}

Every random draw of a loss should come from ``batch["random"]`` (:class:`addbench.rng.BatchRandom`: per sample, or
one value shared by the batch), so that one batch, k accumulated micro-batches (``micro_batch``) and any number of
GPUs draw the same numbers and give the same update (docs/batching.md); the shared losses take it as ``generator=``.
``batch["generator"]`` is a cheaper per-rank stream that does depend on how the batch is cut.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from addbench.errors import AddbenchError
from addbench.train.config import per_network

DATA_KINDS = frozenset({"prompts", "images", "ode_pairs"})


@dataclass(frozen=True)
class Turn:
    """One optimisation turn: the networks it updates and how often it runs.

    At step ``s`` the turn runs ``repeats`` times when ``s % every == 0``; each run draws a fresh batch.
    DMD2 (5 fake-score updates per generator update): ``[Turn("fake", ("fake", "disc")),
    Turn("g", ("g",), every=5)]``; DMDX (TTUR 1): both with every=1.
    """

    name: str
    networks: tuple[str, ...]
    every: int = 1
    repeats: int = 1

    def __post_init__(self):
        object.__setattr__(self, "networks", tuple(self.networks))
        if self.every < 1 or self.repeats < 1:
            raise ValueError(f"turn {self.name!r}: every and repeats must be >= 1")


class Distiller:
    """Base class of distiller plug-ins. Override the class attributes, ``setup`` and ``loss``."""

    name: ClassVar[str] = ""
    presets: ClassVar[dict[str, dict]] = {}   # base name (or "default") -> config dict (paper values)
    turns: ClassVar[list[Turn]] = []
    data_needs: ClassVar[frozenset[str]] = frozenset({"prompts"})  # subset of DATA_KINDS
    student_network: ClassVar[str] = "g"       # which trainable network is the exported student
    # the frozen dataclass declaring this plug-in's keys and their types, a subclass of EngineConfig (e.g.
    # distillers/dmd2/config.py); resolve_config refuses a preset key it does not declare and a value of another
    # type. None: an untyped plug-in (its keys are checked by value only; ``conf`` holds the engine's keys)
    config_class: ClassVar[type | None] = None

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.nets: dict[str, nn.Module] = {}  # set by the engine after setup + parallelize

    @property
    def conf(self):
        """``self.cfg`` typed: the ``config_class`` instance (``self.conf.lambda_dm`` is a float), rebuilt when
        ``self.cfg`` is replaced. Keys added with ``+key=value`` are in ``self.cfg`` only."""
        from addbench.train.engine_config import EngineConfig
        from addbench.train.schema import typed

        cache = self.__dict__.get("_conf")
        if cache is None or cache[0] is not self.cfg:
            cache = self.__dict__["_conf"] = (self.cfg, typed(self.cfg, self.config_class or EngineConfig))
        return cache[1]

    # ---- presets -----------------------------------------------------------------------------------
    @classmethod
    def preset(cls, base: str) -> dict:
        """Preset of a registered base name, or of the family of a pipeline directory (e.g. a tiny toy)."""
        if base not in cls.presets and Path(str(base)).expanduser().is_dir():
            from addbench.bases.loading import detect_family

            base = detect_family(Path(str(base)).expanduser())
        if base in cls.presets:
            return dict(cls.presets[base])
        if "default" in cls.presets:
            return dict(cls.presets["default"])
        known = ", ".join(cls.presets) or "none"
        raise AddbenchError(f"distiller {cls.name!r} has no preset for base {base!r} (known: {known}); "
                            "add one to the plug-in's presets")

    # ---- to implement ------------------------------------------------------------------------------
    def setup(self, base, cfg: dict) -> dict[str, nn.Module]:
        """Build the trainable networks (name -> module, on ``base.device``); keep frozen ones on self."""
        raise NotImplementedError

    def loss(self, turn: str, batch: dict[str, Any], step: int) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        """Scalar loss of ``turn`` on this rank's batch (mean over its samples) and values to log: floats or
        detached 0-dim tensors (the loop reads them all once per step, so a turn never waits for the GPU).

        A log key ending in ``image_std`` (e.g. ``"g/image_std"``) feeds the collapse detector.
        """
        raise NotImplementedError

    # ---- optional ----------------------------------------------------------------------------------
    def optimizer_settings(self, name: str, cfg: dict) -> dict:
        """AdamW kwargs for trainable network ``name``: ``lr_<name>`` / ``betas_<name>`` /
        ``weight_decay_<name>`` when the config has them, else ``lr`` / ``betas`` / ``weight_decay``."""
        return {"lr": float(per_network(cfg, "lr", name)),
                "betas": tuple(float(b) for b in per_network(cfg, "betas", name)),
                "weight_decay": float(per_network(cfg, "weight_decay", name)), "eps": float(cfg.get("eps", 1e-8))}

    def student(self, network: nn.Module):
        """(network, Sampler) to export; ``network`` is the student with final (or EMA) weights."""
        from addbench.bases.interface import Sampler

        s = self.cfg.get("sampler") or {}
        return network, Sampler.from_dict(s) if s else Sampler(steps=1)

    def preview(self, prompts: list[str], seed: int) -> torch.Tensor:
        """Student images in [-1, 1], (N, 3, H, W), for the sample-grid callback (optional)."""
        raise NotImplementedError


def check_plugin(d: Distiller, nets: dict[str, nn.Module]) -> None:
    """Fail early with one line when a plug-in's turns, data needs or networks do not fit together."""
    if not d.turns:
        raise AddbenchError(f"distiller {d.name!r} declares no turns")
    for t in d.turns:
        missing = [n for n in t.networks if n not in nets]
        if missing:
            raise AddbenchError(f"distiller {d.name!r}: turn {t.name!r} updates {missing}, which setup() did not return")
    if d.student_network not in nets:
        raise AddbenchError(f"distiller {d.name!r}: student_network {d.student_network!r} is not a trainable network")
    bad = set(d.data_needs) - DATA_KINDS
    if bad:
        raise AddbenchError(f"distiller {d.name!r}: unknown data_needs {sorted(bad)}; known: {sorted(DATA_KINDS)}")


# ---- per-sample randomness (identical whatever the number of ranks) ---------------------------------

def per_sample_randn(seeds: list[int], shape: tuple[int, ...], device=None, dtype=torch.float32) -> torch.Tensor:
    """(len(seeds), *shape) standard normal noise, sample i drawn from ``seeds[i]`` on the CPU."""
    out = [torch.randn(shape, generator=torch.Generator().manual_seed(int(s)), dtype=dtype) for s in seeds]
    return torch.stack(out).to(device)


def per_sample_rand(seeds: list[int], device=None, dtype=torch.float64, salt: int = 1) -> torch.Tensor:
    """(len(seeds),) uniform [0, 1) numbers, one per sample (``salt`` gives independent streams)."""
    from addbench.train.data import mix

    out = [torch.rand((), generator=torch.Generator().manual_seed(mix(s, salt)), dtype=dtype) for s in seeds]
    return torch.stack(out).to(device)
