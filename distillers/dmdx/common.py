"""Parts both DMDX stages wire: preset lookup, the student's parameterisation, the latent discriminator
(frozen teacher + DMDX heads on its block outputs) and the pixel-space discriminator backbone."""
from __future__ import annotations


import torch
from torch import nn

from addbench.discriminators import Dinov2Backbone, NetworkTaps, SamBackbone, head_for
from addbench.errors import AddbenchError
from addbench.readout import Readout, student_x0
from addbench.train.config import checkpointed
from addbench.train.plugin import Distiller


class DMDXStage(Distiller):
    """Shared plumbing of ADP and ADM (never a method on its own)."""

    student_network = "g"

    # ---- student parameterisation --------------------------------------------------------------------
    def set_readout(self, spec: str) -> None:
        """``readout`` (addbench/readout.py): "flow" = the rectified-flow velocity on [0, T] (ADP, Sec. 4.2);
        "base" = the teacher's own parameterisation (ADM started from the teacher, Table 4 B1)."""
        self.readout = Readout.parse(spec)
        self.student_schedule = self.readout.schedule_for(self.schedule)

    def student_x0(self, x_t, t, cond, guidance: float = 1.0) -> torch.Tensor:
        """The student's x̂0 in its own parameterisation; with ``guidance != 1`` classifier-free guidance on its
        raw output (``base.predict_cfg``, as the real score's CFG)."""
        return student_x0(self.base, self.student_schedule, self.nets["g"], x_t, t, cond, guidance)

    # ---- latent discriminator D_τ(x_t, t): frozen teacher + one DMDX head per block output ----------------
    def build_latent_disc(self, base, cfg) -> nn.ModuleList:
        """Heads on the frozen teacher's taps, laid out by ``base.feature_map`` (video: (N, C, F', h, w) maps
        and 3D heads). With ``grad_checkpointing`` the teacher is checkpointed too, unless ``checkpoint_skip`` names
        it: the generator's gradient goes back through it to its input (the paper trains with gradient
        checkpointing, appendix B)."""
        taps = self.conf.latent_taps
        names = [taps] if isinstance(taps, str) else list(taps)
        names = list(base.feature_taps) if names == ["base"] else names  # --set latent_taps=base
        if checkpointed(cfg, "teacher"):
            from addbench.train.parallel import enable_activation_checkpointing

            enable_activation_checkpointing(self.teacher)
        self.latent_taps = NetworkTaps(self.teacher, names, stop_early=True, to_map=base.feature_map,
                                       forward_fn=lambda net, x, t, c: self.base.predict(x, t, c, network=net))
        with torch.no_grad():
            probe = self.latent_taps(torch.zeros((1, *self.shape), device=base.device), 0.0, base.encode_prompts([""]))
        return heads_for(probe, self.conf.head_width)

    def latent_logits(self, heads: nn.ModuleList, x_t, t, cond) -> list[torch.Tensor]:
        t = torch.as_tensor(t, dtype=torch.float32, device=x_t.device)
        feats = self.latent_taps(x_t, t, cond)
        return [h(f.float()) for h, f in zip(heads, feats)]


def train_shape(base, conf) -> tuple[int, ...]:
    """Per-sample latent shape of the training samples: ``conf.resolution`` (pixels, or [height, width]) and, for
    video bases, ``conf.frames`` (``conf``: the stage's typed config)."""
    res = conf.resolution
    h, w = (res, res) if isinstance(res, int) else (res[0], res[1])
    return tuple(base.latent_shape(h, w, conf.frames))


def heads_for(features: list[torch.Tensor], width: int) -> nn.ModuleList:
    """DMDX appendix B heads: per (N, C, h, w) map 4 × [4×4 conv stride 2, GroupNorm(32), SiLU]; per (N, C, F, h, w)
    video map the 3D head (3 × [3×3×3 conv] + 3 × [4×4 conv stride 2], GroupNorm(32), SiLU); then a 1×1 conv
    to a logit map."""
    return nn.ModuleList(head_for(f, width=width, n_blocks=4) for f in features)


def pixel_backbone(spec: str, base, teacher: nn.Module) -> nn.Module:
    """The frozen feature network of ADP's pixel-space discriminator D_τ2, ``backbone(images) -> features``.

    ``sam:<dir>`` SAM ViT image encoder, blocks 3/6/9/12 (paper); ``dinov2:<dir>`` DINOv2, blocks 3/6/9/12
    (Table 4 A2); ``teacher`` the frozen teacher's ``feature_taps`` on clean images at t = 0 (pixel-space
    bases only: our toy-world choice, see presets.py).
    """
    kind, _, path = spec.partition(":")
    if kind == "sam" and path:
        return SamBackbone(path, layers=(3, 6, 9, 12)).requires_grad_(False).eval()
    if kind == "dinov2" and path:
        return Dinov2Backbone(path, layers=(3, 6, 9, 12), layout="map").requires_grad_(False).eval()
    if kind == "teacher":
        if getattr(base, "vae", None) is not None:
            raise AddbenchError("pixel_backbone=teacher needs a pixel-space base (images = latents); "
                                "use pixel_backbone=sam:<SAM vision encoder dir> on latent bases")
        taps = NetworkTaps(teacher, base.feature_taps, stop_early=True,
                           forward_fn=lambda net, x, t, c: base.predict(x, 0.0, base.null_cond(len(x)), network=net))
        return taps
    raise AddbenchError(f"pixel_backbone={spec!r}; use sam:<dir> (paper), dinov2:<dir> or teacher (pixel bases)")
