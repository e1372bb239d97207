"""The engine's optimisers: AdamW, fused where it can be, over fp32 master weights for bf16 / fp16 networks.

A bf16 weight cannot take a small step: at |w| = 0.03 its spacing is 1.2e-4, so an AdamW update of lr = 1e-5
(DMDX's SDXL generator uses 1e-6) rounds back to the same weight. Trained networks loaded in bf16
(``base_dtype=bf16``, e.g. for ``precision=bf16-pure``) therefore get fp32 master copies here: the optimiser and
its states live on the copies, the network keeps computing in bf16 and receives the rounded result after each step
(the same scheme as mixed-precision training with FSDP2's ``MixedPrecisionPolicy``).
"""
from __future__ import annotations

import torch


def adamw(params: list[torch.Tensor], settings: dict) -> torch.optim.AdamW:
    """AdamW with PyTorch's fused kernel where every parameter allows it (floating point, on the CPU or a CUDA
    GPU; FSDP2's DTensors too): the same update as the per-tensor loop up to rounding, in a few kernels instead of
    one per tensor and step (benchmarks/optimizer_step.py). Elsewhere PyTorch's default implementation."""
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(params, **settings, **({"fused": True} if fused else {}))


LOW_PRECISION = (torch.bfloat16, torch.float16)


def needs_master_weights(params: list[torch.Tensor]) -> bool:
    return any(p.dtype in LOW_PRECISION for p in params)


class MasterAdamW:
    """:func:`adamw` over fp32 master copies of the bf16 / fp16 ones among ``params`` (the others are their own
    master). Used like an optimiser by the loop: ``zero_grad``, ``step``, ``param_groups``, ``state_dict``.

    ``step()`` moves each low-precision gradient into its master as fp32, steps AdamW on the masters (fp32
    moments) and copies the masters, rounded, back into the network. ``state_dict`` carries the masters, so a
    resumed run continues from the unrounded weights. Memory: 4 bytes per low-precision parameter more, and the
    AdamW moments are fp32 (as with fp32 weights)."""

    def __init__(self, params: list[torch.Tensor], settings: dict):
        self.params = list(params)
        self.masters = [p.detach().float().requires_grad_() if p.dtype in LOW_PRECISION else p for p in self.params]
        self.low = [i for i, (p, m) in enumerate(zip(self.params, self.masters)) if m is not p]
        self.opt = adamw(self.masters, settings)

    @property
    def param_groups(self) -> list[dict]:
        return self.opt.param_groups

    @property
    def defaults(self) -> dict:
        return self.opt.defaults

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.opt.zero_grad(set_to_none=set_to_none)
        for i in self.low:
            self.params[i].grad = None

    @torch.no_grad()
    def step(self) -> None:
        for i in self.low:
            p, m = self.params[i], self.masters[i]
            m.grad = None if p.grad is None else p.grad.float()
            p.grad = None
        self.opt.step()
        if self.low:
            torch._foreach_copy_([self.params[i] for i in self.low], [self.masters[i] for i in self.low])

    def state_dict(self) -> dict:
        return {"adamw": self.opt.state_dict(), "masters": {i: self.masters[i].detach().clone() for i in self.low}}

    @torch.no_grad()
    def load_state_dict(self, sd: dict) -> None:
        if "adamw" not in sd:  # a state saved before master weights: start the masters from the saved weights
            self.opt.load_state_dict(sd)
            for i in self.low:
                self.masters[i].copy_(self.params[i])
            return
        self.opt.load_state_dict(sd["adamw"])
        for i in self.low:
            self.masters[i].copy_(sd["masters"][i])
            self.params[i].copy_(self.masters[i])


def optimizer(params: list[torch.Tensor], settings: dict, master_weights: bool = True):
    """What the engine trains a network with: :class:`MasterAdamW` when some parameter is bf16 / fp16 (unless
    ``master_weights`` is off: then AdamW updates them in place), else :func:`adamw`."""
    if master_weights and needs_master_weights(params):
        return MasterAdamW(params, settings)
    return adamw(params, settings)
