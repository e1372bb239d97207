"""Training randomness that does not depend on how a batch is cut: per sample, or shared by the whole batch.

The engine hands each turn call a :class:`BatchRandom` (``batch["random"]``). Its draws are

- **per sample** (:meth:`BatchRandom.rand`, :meth:`~BatchRandom.randn`, :meth:`~BatchRandom.randint`): row ``i`` of
  the global batch gets the numbers of its own stream, seeded from the sample's seed and the draw's index within the
  call. A micro-batch (:meth:`~BatchRandom.rows`) or a rank sees exactly the rows it holds, so one batch of 4·m
  samples, four accumulated micro-batches of m, and 4 processes of m draw the same numbers;
- **shared** (:meth:`~BatchRandom.shared_rand`, :meth:`~BatchRandom.shared_randint`): one value for the whole
  batch (DMD2's backward-simulation step, DMDX's real-score CFG), the same on every micro-batch and rank.

Streams are drawn on the CPU and moved to the device (as :func:`addbench.train.plugin.per_sample_randn` does), so a
CPU and a GPU run see the same numbers too. Each call site draws in the same order on every micro-batch (the code is
the same), which is what makes the draw index a stable key.

The shared losses and schedules take ``generator=`` and accept either a :class:`BatchRandom` or a plain
``torch.Generator`` / ``None`` (then they draw as torch does); :func:`rand`, :func:`randn`, :func:`randint`,
:func:`shared_rand` and :func:`shared_randint` are those dispatching functions.
"""
from __future__ import annotations

import torch


_MASK = (1 << 63) - 1


def mix(*xs: int) -> int:
    """Deterministic 63-bit hash of ints (splitmix64 steps): the seeds of samples, calls and draws."""
    h = 0x9E3779B97F4A7C15
    for x in xs:
        h = (h ^ (int(x) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h = (h ^ (h >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 29
    return h & _MASK



class BatchRandom:
    """The random numbers of one turn call: ``sample_seeds`` of the rows held here, ``shared_seed`` of the call."""

    def __init__(self, sample_seeds: list[int], shared_seed: int, device=None):
        self.sample_seeds = [int(s) for s in sample_seeds]
        self.shared_seed = int(shared_seed)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.draws = 0

    def __len__(self) -> int:
        return len(self.sample_seeds)

    def rows(self, lo: int, hi: int) -> "BatchRandom":
        """The same call restricted to rows ``lo:hi`` (a micro-batch), its draw count starting over."""
        return BatchRandom(self.sample_seeds[lo:hi], self.shared_seed, self.device)

    def _next(self) -> int:
        self.draws += 1
        return self.draws

    def _check(self, n: int) -> None:
        if n != len(self.sample_seeds):
            raise ValueError(f"a per-sample draw of {n} rows from a batch of {len(self.sample_seeds)}: draw one value "
                             "per sample of the batch, or use shared_rand / shared_randint for one value per batch")

    def _gens(self) -> list[torch.Generator]:
        k = self._next()
        return [torch.Generator().manual_seed(mix(s, k, 0x5EED)) for s in self.sample_seeds]

    def rand(self, n: int, dtype=torch.float64, device=None) -> torch.Tensor:
        """(n,) uniform [0, 1), one per sample."""
        self._check(n)
        out = torch.stack([torch.rand((), generator=g, dtype=dtype) for g in self._gens()])
        return out.to(device or self.device)

    def randn(self, shape, dtype=torch.float32, device=None) -> torch.Tensor:
        """``shape`` standard normal; ``shape[0]`` is the number of samples, each row from its own stream."""
        shape = tuple(int(s) for s in shape)
        self._check(shape[0])
        out = torch.stack([torch.randn(shape[1:], generator=g, dtype=dtype) for g in self._gens()])
        return out.to(device or self.device)

    def randint(self, high: int, n: int, device=None) -> torch.Tensor:
        """(n,) integers in [0, high), one per sample."""
        self._check(n)
        out = torch.stack([torch.randint(int(high), (), generator=g) for g in self._gens()])
        return out.to(device or self.device)

    def _shared_gen(self) -> torch.Generator:
        return torch.Generator().manual_seed(mix(self.shared_seed, self._next(), 0x5A4ED))

    def shared_rand(self) -> float:
        """One uniform [0, 1) value for the whole batch."""
        return float(torch.rand((), generator=self._shared_gen(), dtype=torch.float64))

    def shared_randint(self, high: int) -> int:
        """One integer in [0, high) for the whole batch."""
        return int(torch.randint(int(high), (), generator=self._shared_gen()))


# ---- dispatch: a BatchRandom, a torch.Generator or None ------------------------------------------------------------

def rand(n: int, generator=None, device=None, dtype=torch.float64) -> torch.Tensor:
    if isinstance(generator, BatchRandom):
        return generator.rand(n, dtype=dtype, device=device)
    return torch.rand(n, generator=generator, device=device, dtype=dtype)


def randn(shape, generator=None, device=None, dtype=torch.float32) -> torch.Tensor:
    if isinstance(generator, BatchRandom):
        return generator.randn(shape, dtype=dtype, device=device)
    return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)


def randint(high: int, n: int, generator=None, device=None) -> torch.Tensor:
    if isinstance(generator, BatchRandom):
        return generator.randint(high, n, device=device)
    return torch.randint(int(high), (n,), generator=generator, device=device)


def shared_rand(generator=None, device=None) -> float:
    if isinstance(generator, BatchRandom):
        return generator.shared_rand()
    return float(torch.rand((), generator=generator, device=device))


def shared_randint(high: int, generator=None, device=None) -> int:
    if isinstance(generator, BatchRandom):
        return generator.shared_randint(high)
    return int(torch.randint(int(high), (1,), generator=generator, device=device))
