"""The engine's optimisers: AdamW, fused where it can be, over fp32 master weights for bf16 / fp16 networks.

A bf16 weight cannot take a small step: at |w| = 0.03 its spacing is 1.2e-4, so an AdamW update of lr = 1e-5
(DMDX's SDXL generator uses 1e-6) rounds back to the same weight. Trained networks loaded in bf16
(``base_dtype=bf16``, e.g. for ``precision=bf16-pure``) therefore get fp32 master copies here: the optimiser and
its states live on the copies, the network keeps computing in bf16 and receives the rounded result after each step
(the same scheme as mixed-precision training with FSDP2's ``MixedPrecisionPolicy``).
"""
from __future__ import annotations

import torch

from addbench.train.config import master_mode


def adamw(params: list[torch.Tensor], settings: dict) -> torch.optim.AdamW:
    """AdamW with PyTorch's fused kernel where every parameter allows it (floating point, on the CPU or a CUDA
    GPU; FSDP2's DTensors too): the same update as the per-tensor loop up to rounding, in a few kernels instead of
    one per tensor and step (benchmarks/optimizer_step.py). Elsewhere PyTorch's default implementation."""
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(params, **settings, **({"fused": True} if fused else {}))


LOW_PRECISION = (torch.bfloat16, torch.float16)


def needs_master_weights(params: list[torch.Tensor]) -> bool:
    return any(p.dtype in LOW_PRECISION for p in params)


CHUNK_BYTES = 1 << 30  # fp32 gradients made at once by MasterAdamW.step (a whole SDXL UNet's would be 9.6 GiB)


def _chunks(indices: list[int], sizes: list[int], limit: int) -> list[list[int]]:
    """``indices`` in order, cut into runs whose ``sizes`` add up to at most ``limit`` (a larger one alone)."""
    out, run, total = [], [], 0
    for i, size in zip(indices, sizes):
        if run and total + size > limit:
            out.append(run)
            run, total = [], 0
        run.append(i)
        total += size
    return out + [run] if run else out


class MasterAdamW:
    """:func:`adamw` over fp32 master copies of the bf16 / fp16 ones among ``params`` (the others are their own
    master). Used like an optimiser by the loop: ``zero_grad``, ``step``, ``param_groups``, ``state_dict``.

    ``step()`` moves each low-precision gradient into its master as fp32, steps AdamW on the masters (fp32
    moments) and copies the masters, rounded, back into the network, ``chunk_bytes`` of fp32 gradients at a time
    (so the step's transient is one chunk, not 4 bytes per parameter). ``state_dict`` carries the masters, so a
    resumed run continues from the unrounded weights. Memory: 4 bytes per low-precision parameter more, and the
    AdamW moments are fp32 (as with fp32 weights). ``device="cpu"`` keeps the masters and their moments in host
    memory and steps them there (the GPU then holds only the low-precision weights and gradients); each step
    moves each chunk's gradients to the host and its rounded weights back, one flat low-precision buffer each way."""

    def __init__(self, params: list[torch.Tensor], settings: dict, device: str | torch.device | None = None,
                 chunk_bytes: int = CHUNK_BYTES, staged: bool = False):
        self.params = list(params)
        self.masters = [p.detach().to(device or p.device, torch.float32, copy=True).requires_grad_()
                        if p.dtype in LOW_PRECISION else p for p in self.params]
        self.low = [i for i, (p, m) in enumerate(zip(self.params, self.masters)) if m is not p]
        # masters on another device (the host): move each chunk's gradients and weights as one flat buffer
        # (:meth:`_stage_grads`, :meth:`_stage_back`); ``staged=True`` takes that path on one device too (tests)
        self.staged = staged or any(self.params[i].device != self.masters[i].device for i in self.low)
        self.chunks = _chunks(self.low, [self.params[i].numel() * 4 for i in self.low], chunk_bytes)
        self.opt = adamw(self.masters, settings)
        self._host: dict = {}  # (dtype, "in" | "out") -> flat host buffer (the largest chunk's), pinned for CUDA
        self._h2d_done = None  # CUDA event after the last flat copy to the device (its host buffer is reused)

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
        """One AdamW step over every parameter, made as one step per chunk of the low-precision ones: AdamW skips
        a parameter without a gradient and counts steps per parameter, so each call updates exactly its chunk,
        as one call over all would (tested bitwise). Only one chunk's fp32 gradients exist at a time."""
        own = [(m, m.grad) for p, m in zip(self.params, self.masters) if m is p and m.grad is not None]
        for k, chunk in enumerate(self.chunks):
            if self.staged:
                self._stage_grads(chunk)
            else:
                for i in chunk:
                    p, m = self.params[i], self.masters[i]
                    m.grad = None if p.grad is None else p.grad.to(m.device, torch.float32)
            for i in chunk:
                self.params[i].grad = None
            self.opt.step()  # the first call also steps the parameters that are their own master
            if k == 0:
                for m, _ in own:
                    m.grad = None
            for i in chunk:
                self.masters[i].grad = None
            if self.staged:
                self._stage_back(chunk)
            else:
                self._copy_back(chunk)
        if not self.chunks:
            self.opt.step()
        for m, g in own:
            m.grad = g

    def _by_dtype(self, chunk: list[int]) -> dict:
        out: dict = {}
        for i in chunk:
            out.setdefault(self.params[i].dtype, []).append(i)
        return out

    def _buffer(self, key: tuple, numel: int, dtype: torch.dtype, pin: bool) -> torch.Tensor:
        """A flat host buffer kept across chunks and steps, one per dtype and direction, grown to the largest
        chunk (pinned memory makes the device copies DMA transfers; an SDXL UNet's pair is 2 x 512 MiB)."""
        buf = self._host.get(key)
        if buf is None or buf.numel() < numel:
            buf = self._host[key] = torch.empty(numel, dtype=dtype, pin_memory=pin)
        return buf[:numel]

    def _stage_grads(self, chunk: list[int]) -> None:
        """The chunk's low-precision gradients -> one flat buffer on their device -> one copy to the masters'
        device (half the bytes of copying fp32, one transfer instead of one per tensor) -> cast to fp32 there ->
        a view per master as its ``.grad``."""
        for dtype, idx in self._by_dtype(chunk).items():
            idx = [i for i in idx if self.params[i].grad is not None]
            if not idx:
                continue
            flat = torch.cat([self.params[i].grad.reshape(-1) for i in idx])
            dst = self.masters[idx[0]].device
            if dst.type == "cpu":
                host = self._buffer((dtype, "in"), flat.numel(), dtype, flat.is_cuda)
                host.copy_(flat)  # blocking: the host reads it next
                flat = host
            grads = flat.to(dst, torch.float32).split([self.params[i].numel() for i in idx])
            for i, g in zip(idx, grads):
                self.masters[i].grad = g.view(self.masters[i].shape)

    def _stage_back(self, chunk: list[int]) -> None:
        """The chunk's masters, rounded into one flat low-precision host buffer -> one copy to the network's
        device -> split into the network's parameters."""
        for dtype, idx in self._by_dtype(chunk).items():
            src, dev = self.masters[idx[0]].device, self.params[idx[0]].device
            numels = [self.params[i].numel() for i in idx]
            if src.type == "cpu":
                if self._h2d_done is not None:
                    self._h2d_done.synchronize()  # the last copy out of this buffer has left
                flat = self._buffer((dtype, "out"), sum(numels), dtype, dev.type == "cuda")
            else:
                flat = torch.empty(sum(numels), dtype=dtype, device=src)
            torch._foreach_copy_(list(flat.split(numels)), [self.masters[i].reshape(-1) for i in idx])
            moved = flat.to(dev, non_blocking=True)
            if dev.type == "cuda" and src.type == "cpu":
                self._h2d_done = torch.cuda.Event()
                self._h2d_done.record()
            torch._foreach_copy_([self.params[i].reshape(-1) for i in idx], list(moved.split(numels)))

    def _copy_back(self, chunk: list[int]) -> None:  # masters on the parameters' device
        torch._foreach_copy_([self.params[i] for i in chunk], [self.masters[i] for i in chunk])

    def state_dict(self) -> dict:
        """References, like ``torch.optim.Optimizer.state_dict`` (no copy: 10 GB per SDXL UNet)."""
        return {"adamw": self.opt.state_dict(), "masters": {i: self.masters[i].detach() for i in self.low}}

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


def optimizer(params: list[torch.Tensor], settings: dict, master_weights: str = "on"):
    """What the engine trains a network with: :class:`MasterAdamW` when some parameter is bf16 / fp16, its masters
    on the parameters' device (``master_weights=on``) or in host memory (``cpu``); AdamW on the weights
    themselves when ``master_weights`` is ``off`` or every parameter is fp32 (:func:`adamw`)."""
    mode = master_mode(master_weights)
    if mode != "off" and needs_master_weights(params):
        return MasterAdamW(params, settings, device="cpu" if mode == "cpu" else None)
    return adamw(params, settings)
