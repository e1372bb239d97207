"""Each rater's list of pairs: deterministic from (study seed, rater id), balanced over model pairs.

Real pairs cycle through the model pairs, each cycle in a fresh random order, so after any number of votes every
model pair has been shown the same number of times, give or take one. Each model pair walks through its own random
permutation of the shared keys (no key twice before all were shown) and puts model A on the left in half of its
pairs (random within each two). One attention check sits at a random place in every block of ``controls_every``
items: a real sample of one run against a known-bad version of it (addbench.arena.controls).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from addbench.arena.controls import KINDS
from addbench.arena.runs import Key
from addbench.errors import AddbenchError

SIDES = ("left", "right")


@dataclass(frozen=True)
class Side:
    run: int  # run index
    key: Key  # the sample shown: the item's key, or another prompt's for an "other_prompt" control
    control: str | None = None  # None: the sample as generated; else the control kind (known bad)


@dataclass(frozen=True)
class Item:
    position: int
    pair_id: str
    key: Key  # the (prompt_index, seed) whose prompt the rater reads
    left: Side
    right: Side

    @property
    def control(self) -> str | None:
        return self.left.control or self.right.control

    @property
    def control_side(self) -> str | None:
        """The side of the known-bad image ("left" / "right"), None for a real pair."""
        return "left" if self.left.control else "right" if self.right.control else None

    def side(self, name: str) -> Side:
        return self.left if name == "left" else self.right


def rater_rng(seed: int, rater: str) -> np.random.Generator:
    digest = hashlib.sha256(f"addbench-arena\0{seed}\0{rater}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def check_settings(n_runs: int, n_keys: int, pairs: int | None, controls_every: int) -> None:
    if n_runs < 2 or n_keys < 1:
        raise AddbenchError("a schedule needs two runs and one shared sample")
    if pairs is not None and pairs < 1:
        raise AddbenchError(f"--pairs must be >= 1; got {pairs}")
    if controls_every == 1 or controls_every < 0:
        raise AddbenchError(f"--controls must be 0 (none) or >= 2 (one check in every N items); got {controls_every}")


def default_pairs(n_runs: int, n_keys: int) -> int:
    """Every model pair on every shared key once."""
    return n_runs * (n_runs - 1) // 2 * n_keys


def build_schedule(n_runs: int, keys: list[Key], rater: str, seed: int = 0, pairs: int | None = None,
                   controls_every: int = 10) -> list[Item]:
    """The rater's items in order: ``pairs`` real pairs (default: :func:`default_pairs`) plus the controls."""
    check_settings(n_runs, len(keys), pairs, controls_every)
    rng = rater_rng(seed, rater)
    real = _real_pairs(n_runs, keys, pairs or default_pairs(n_runs, len(keys)), rng)
    items = _with_controls(real, n_runs, keys, controls_every, rng)
    return [Item(i, pid, key, left, right) for i, (pid, key, left, right) in enumerate(items)]


def _real_pairs(n_runs: int, keys: list[Key], n: int, rng: np.random.Generator) -> list[tuple]:
    model_pairs = list(combinations(range(n_runs), 2))
    key_order = {p: rng.permutation(len(keys)) for p in model_pairs}
    shown = {p: 0 for p in model_pairs}
    swapped = {p: False for p in model_pairs}
    out, cycle = [], []
    for t in range(n):
        if t % len(model_pairs) == 0:
            cycle = rng.permutation(len(model_pairs))
        p = model_pairs[cycle[t % len(model_pairs)]]
        key = keys[key_order[p][shown[p] % len(keys)]]
        swapped[p] = bool(rng.random() < 0.5) if shown[p] % 2 == 0 else not swapped[p]  # A left in half of them
        shown[p] += 1
        a, b = Side(p[0], key), Side(p[1], key)
        out.append((f"{p[0]}v{p[1]}:{key[0]}:{key[1]}", key, *((b, a) if swapped[p] else (a, b))))
    return out


def _with_controls(real: list[tuple], n_runs: int, keys: list[Key], every: int,
                   rng: np.random.Generator) -> list[tuple]:
    if every == 0:
        return real
    out, i = [], 0
    while i < len(real):
        block = real[i:i + every - 1]
        i += len(block)
        slot = int(rng.integers(len(block) + 1))
        out += block[:slot] + [_control(n_runs, keys, rng)] + block[slot:]
    return out


def _control(n_runs: int, keys: list[Key], rng: np.random.Generator) -> tuple:
    key = keys[int(rng.integers(len(keys)))]
    run = int(rng.integers(n_runs))
    others = [k for k in keys if k[0] != key[0]]
    kind = KINDS[int(rng.integers(len(KINDS) if others else len(KINDS) - 1))]  # other_prompt is last
    shown = others[int(rng.integers(len(others)))] if kind == "other_prompt" else key
    good, bad = Side(run, key), Side(run, shown, kind)
    return (f"control-{kind}:{run}:{key[0]}:{key[1]}", key, *((bad, good) if rng.random() < 0.5 else (good, bad)))
