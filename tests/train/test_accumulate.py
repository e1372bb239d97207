"""Gradient accumulation: k micro-batches give the update of one batch of k times the size, for every distiller's
turns (issue 19), because every draw of a turn call is per sample or shared by the batch (addbench.rng)."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

# eps 1e-3: AdamW's first steps are lr·g/(|g| + eps); at the default 1e-8 a gradient entry near 0 turns float
# rounding (summation order) into a sign, so the comparison would test AdamW, not the gradients
QUIET = ["tensorboard=false", "+progress=false", "batch=16", "budget_images=32", "warmup_images=0", "ema=0", "eps=1e-3"]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    from addbench.bases.loading import load_base
    from addbench.gmm import prompts
    from addbench.train.odepairs import collect_ode_pairs

    root = tmp_path_factory.mktemp("pairs")
    return collect_ode_pairs(load_base("gmm", device="cpu"), prompts(64), root / "pairs", n_pairs=64, steps=4,
                             guidance=1.0, resolution=1, batch_size=64)


def _state(run) -> dict[str, torch.Tensor]:
    """Every trained network of the run's final training state (not only the student)."""
    return load_file(sorted((run / "state").glob("step_*"))[-1] / "networks.safetensors")


CASES = {  # name -> (distiller, overrides): each distiller's turns, 1- and multi-step generators
    "add": ("add", []),
    "dmd": ("dmd", ["@pairs"]),
    "dmd2": ("dmd2", []),
    "dmd2-4step": ("dmd2", ["gen_steps=4"]),
    "adp": ("dmdx.adp", ["@pairs"]),
    "adm": ("dmdx.adm", []),
    "adm-4step": ("dmdx.adm", ["gen_steps=4"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_four_micro_batches_update_like_one_batch(case, pairs, tmp_path, monkeypatch):
    from addbench.train import loop
    from addbench.train.entry import train

    name, extra = CASES[case]
    extra = [f"ode_pairs={pairs}" if e == "@pairs" else e for e in extra]
    sizes = []
    real = loop.micro_batches
    monkeypatch.setattr(loop, "micro_batches", lambda b, r: [sizes.append(len(p["sample_seeds"])) or p for p in real(b, r)])
    runs = {}
    for micro in (0, 4):  # 16 at once, then 4 rounds of 4
        runs[micro] = tmp_path / f"m{micro}"
        sizes.clear()
        train(name, "gmm", runs[micro], QUIET + extra + [f"micro_batch={micro}"], device="cpu")
        assert set(sizes) == {micro or 16}, sizes  # the loss really ran on micro-batches of that size
    whole, accumulated = _state(runs[0]), _state(runs[4])
    assert whole.keys() == accumulated.keys() and len(whole) > 0
    for k in whole:
        torch.testing.assert_close(accumulated[k], whole[k], rtol=1e-4, atol=1e-5, msg=lambda m: f"{case} {k}: {m}")
    # and the second step really updated: its networks differ from the first step's
    step1 = load_file(sorted((runs[0] / "state").glob("step_*"))[-2] / "networks.safetensors")
    assert any(not torch.equal(step1[k], whole[k]) for k in whole)


def test_rounds_and_errors():
    from addbench.errors import AddbenchError
    from addbench.train.accumulate import accumulation_rounds, micro_batches
    from addbench.rng import BatchRandom

    assert accumulation_rounds({"batch": 128, "micro_batch": 0}, 1) == 1
    assert accumulation_rounds({"batch": 128, "micro_batch": 4}, 8) == 4  # 16 per process, 4 rounds
    assert accumulation_rounds({"batch": 128, "micro_batch": 64}, 4) == 1  # more than a process holds: no rounds
    with pytest.raises(AddbenchError, match="micro_batch=3 does not divide"):
        accumulation_rounds({"batch": 16, "micro_batch": 3}, 1)
    batch = {"sample_seeds": list(range(8)), "prompts": [str(i) for i in range(8)], "x": torch.arange(8.0),
             "step": 3, "random": BatchRandom(list(range(8)), 5)}
    parts = micro_batches(batch, 4)
    assert [p["prompts"] for p in parts][1] == ["2", "3"] and parts[3]["x"].tolist() == [6.0, 7.0]
    assert all(p["step"] == 3 for p in parts) and [p["micro"] for p in parts] == [(j, 4) for j in range(4)]


def test_batch_random_is_the_same_whatever_the_cut():
    from addbench.rng import BatchRandom

    seeds = [11, 12, 13, 14, 15, 16]
    whole = BatchRandom(seeds, 7)
    full = [whole.rand(6), whole.randn((6, 3, 2)), whole.randint(10, 6), whole.shared_rand(), whole.shared_randint(5)]
    for lo, hi in ((0, 2), (2, 4), (4, 6)):  # three micro-batches (or three ranks) draw the same rows
        part = BatchRandom(seeds, 7).rows(lo, hi)
        got = [part.rand(2), part.randn((2, 3, 2)), part.randint(10, 2), part.shared_rand(), part.shared_randint(5)]
        assert torch.equal(got[0], full[0][lo:hi]) and torch.equal(got[1], full[1][lo:hi])
        assert torch.equal(got[2], full[2][lo:hi]) and got[3] == full[3] and got[4] == full[4]
    assert BatchRandom(seeds, 8).shared_rand() != full[3]  # another call: another shared draw
    assert not torch.equal(BatchRandom(seeds, 7).rand(6), BatchRandom([s + 1 for s in seeds], 7).rand(6))
    with pytest.raises(ValueError, match="per-sample draw of 4 rows from a batch of 6"):
        BatchRandom(seeds, 7).rand(4)
