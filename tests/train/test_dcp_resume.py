"""Sharded training state (layout ``dcp``): bitwise resume at the same world size, resume at another world size
(2 gloo processes -> 1 and 1 -> 2), no pickle in the state, unlisted or damaged shards refused.

Run as a script (``python test_dcp_resume.py OUT key=value ...``, also under torchrun) it trains the fake distiller
with ``layout=dcp`` states; ``RELOAD_OUT=DIR`` instead loads the run's newest state and saves it unchanged into
``DIR`` (no training step)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from addbench.train import checkpoint, loop  # noqa: E402
from addbench.train.entry import train  # noqa: E402
from train_fakes import FakeBase, FakeDistiller  # noqa: E402

SCRIPT = Path(__file__)
SHORT = ["budget_images=40", "ckpt_every_images=20", "ema=0.8"]  # states at steps 5 and 10
FULL = ["budget_images=80", "ckpt_every_images=20", "ema=0.8"]  # ... 15 and 20


def _use_dcp(mp):
    mp.setattr(loop, "save_state", lambda *a, **k: checkpoint.save_state(*a, **{**k, "layout": "dcp"}))


def _reload_only(state, data, callbacks=None):
    """``loop.run`` that saves the state it resumed from into ``RELOAD_OUT`` and trains nothing."""
    checkpoint.save_state(Path(os.environ["RELOAD_OUT"]), step=state.step, images_seen=state.images_seen,
                          nets=state.nets, opts=state.opts, ema=state.ema, config_hash="reload", ctx=state.ctx,
                          layout="dcp")
    return state


def _prompts(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("".join(f"prompt {i}\n" for i in range(9)))
    return [f"prompts={p}"]


def _base(args):
    base = FakeBase()
    if "base_dtype=bf16" in args:
        base.network.to(torch.bfloat16)
    return base


def read_dcp(state_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a ``dcp`` state, whole, read in this one process."""
    import torch.distributed.checkpoint as dcp

    from addbench.train.dcp_state import DIR, _quiet, saved_tensors

    out = {k: torch.empty(shape, dtype=dtype) for k, (shape, dtype) in saved_tensors(state_dir).items()}
    with _quiet():
        dcp.load(out, storage_reader=dcp.HuggingFaceStorageReader(str(state_dir / DIR)), no_dist=True)
    return out


def _log(run):
    return [{k: v for k, v in json.loads(ln).items() if k != "time"}
            for ln in (run / "metrics.jsonl").read_text().splitlines()]


def _student(run):
    from safetensors.torch import load_file

    return load_file(str(run / "checkpoint" / "network" / "model.safetensors"))


# ---- one process ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_a_dcp_state_resumes_bitwise_and_holds_no_pickle(tmp_path, monkeypatch, dtype):
    """bf16: the trained copy steps through fp32 master weights (MasterAdamW), whose moments a fresh run has not
    made yet when it resumes: they are loaded into tensors of the saved shapes."""
    monkeypatch.setenv("FAKE_GLOBAL_RNG", "1")  # the fake's loss draws from the global RNG: restored on resume
    args = _prompts(tmp_path) + (["base_dtype=bf16", "precision=bf16", "lr_g=1e-5"] if dtype == "bf16" else [])
    train(FakeDistiller, _base(args), tmp_path / "files", args + FULL, device="cpu")  # layout files, uninterrupted
    _use_dcp(monkeypatch)
    run = tmp_path / "run"
    train(FakeDistiller, _base(args), run, args + SHORT, device="cpu")
    state = run / "state" / "step_000000010"
    names = sorted(str(p.relative_to(state)) for p in state.rglob("*") if p.is_file())
    assert names == ["dcp/shard-00001-model-00001-of-00001.safetensors", "manifest.json", "meta.json",
                     "rng_rank0.json", "rng_rank0.safetensors", "state.json"]
    assert json.loads((state / "manifest.json").read_text())["format"] == checkpoint.DCP_FORMAT
    from safetensors import safe_open

    for p in state.rglob("*.safetensors"):  # every tensor file parses as safetensors; the rest is JSON
        with safe_open(str(p), framework="pt"):
            pass
    for p in state.glob("*.json"):
        json.loads(p.read_text())
    tensors = read_dcp(state)
    assert any(k.startswith("ema/") for k in tensors) and any(k.startswith("optim/d/") for k in tensors)
    train(FakeDistiller, _base(args), run, args + FULL, device="cpu")
    assert _log(run) == _log(tmp_path / "files") and len(_log(run)) == 20
    a, b = _student(run), _student(tmp_path / "files")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_async_save_writes_the_same_states_and_resumes_bitwise(tmp_path, monkeypatch):
    """async_save: each dcp state is staged to host memory and written while training goes on; the published states
    equal the synchronous run's tensor for tensor (step 5's was written while steps 6-10 changed the weights), and a
    resume from them continues exactly as the uninterrupted run."""
    monkeypatch.setenv("FAKE_GLOBAL_RNG", "1")
    args = _prompts(tmp_path)
    train(FakeDistiller, FakeBase(), tmp_path / "files", args + FULL, device="cpu")
    dcp_args = args + ["state_layout=dcp"]
    train(FakeDistiller, FakeBase(), tmp_path / "sync", dcp_args + SHORT, device="cpu")
    run = tmp_path / "async"
    train(FakeDistiller, FakeBase(), run, dcp_args + ["async_save=true"] + SHORT, device="cpu")
    assert sorted(p.name for p in (run / "state").iterdir()) == ["step_000000005", "step_000000010"]  # no .tmp left
    for step in ("step_000000005", "step_000000010"):
        a, b = read_dcp(run / "state" / step), read_dcp(tmp_path / "sync" / "state" / step)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert (run / "state" / step / "manifest.json").is_file()
    train(FakeDistiller, FakeBase(), run, dcp_args + ["async_save=true"] + FULL, device="cpu")
    assert _log(run) == _log(tmp_path / "files") and len(_log(run)) == 20
    a, b = _student(run), _student(tmp_path / "files")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_async_save_needs_the_dcp_layout(tmp_path):
    from addbench.errors import AddbenchError

    with pytest.raises(AddbenchError, match="async_save=true needs state_layout=dcp"):
        train(FakeDistiller, FakeBase(), tmp_path / "r", _prompts(tmp_path) + SHORT + ["async_save=true"], device="cpu")


def _spoil_unlisted(d):
    (d / "dcp" / "shard-00002-model-00001-of-00001.safetensors").write_bytes(
        (d / "dcp" / "shard-00001-model-00001-of-00001.safetensors").read_bytes())


def _spoil_truncated(d):
    p = d / "dcp" / "shard-00001-model-00001-of-00001.safetensors"
    p.write_bytes(p.read_bytes()[:100])


def _spoil_skeleton(d):
    (d / "state.json").write_text("[]")
    checkpoint.write_manifest(d)


@pytest.mark.parametrize("spoil, reason", [
    (_spoil_unlisted, "dcp/shard-00002-model-00001-of-00001.safetensors: not in manifest.json"),
    (_spoil_truncated, r"dcp/shard-00001-model-00001-of-00001.safetensors: 100 bytes, manifest says"),
    (_spoil_skeleton, "state.json: not a training state's optimiser skeleton")])
def test_a_damaged_or_padded_dcp_state_falls_back_to_the_one_before(tmp_path, monkeypatch, capsys, spoil, reason):
    _use_dcp(monkeypatch)
    args = _prompts(tmp_path)
    run = tmp_path / "run"
    train(FakeDistiller, FakeBase(), run, args + SHORT, device="cpu")
    spoil(run / "state" / "step_000000010")
    capsys.readouterr()
    train(FakeDistiller, FakeBase(), run, args + FULL, device="cpu")
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("state ")]
    assert len(lines) == 1 and f"({reason}" in lines[0] and lines[0].endswith("resuming from step_000000005")
    assert len(_log(run)) == 20


# ---- another world size ----------------------------------------------------------------------------------------

def _run(out, args, procs, port, env_extra=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    env.pop("FAKE_GLOBAL_RNG", None)
    head = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs), "--master_port",
             str(port)] if procs > 1 else [sys.executable])
    r = subprocess.run([*head, str(SCRIPT), str(out), *args], env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)])
def test_a_dcp_state_resumes_at_another_world_size(tmp_path, first, then):
    """Saved on ``first`` processes (FSDP2 shards on 2), resumed on ``then``. Mechanism, exact: the state loaded at
    the other size and saved again without a step holds the same tensors bitwise (weights, EMA, optimiser moments
    and step counts). Trajectory, to a tolerance: the resumed run's losses and weights match an uninterrupted run
    on ``then`` processes. Not bitwise: 1 and 2 processes reduce the gradients in another order (FSDP2's
    reduce-scatter averages two half-batch gradients), so the runs differ by float32 rounding, ~1e-6 relative;
    the fake's noise is per sample (``sample_seeds``) and its loss draws nothing from the global RNGs, which are
    not restored at another world size."""
    args, port = _prompts(tmp_path), 29531 + first
    _run(tmp_path / "run", args + SHORT, first, port)
    saved = tmp_path / "run" / "state" / "step_000000010"
    assert json.loads((saved / "meta.json").read_text())["world_size"] == first
    shards = sorted(p.name for p in (saved / "dcp").iterdir())
    assert len(shards) == first  # one file per rank: each wrote its own shards
    _run(tmp_path / "run", args + SHORT, then, port, {"RELOAD_OUT": str(tmp_path / "reload")})
    again = read_dcp(tmp_path / "reload" / "state" / "step_000000010")
    before = read_dcp(saved)
    assert again.keys() == before.keys()
    assert [k for k in before if not torch.equal(again[k], before[k])] == []
    assert any(k.endswith("/step") for k in before) and any(k.endswith("/exp_avg_sq") for k in before)
    _run(tmp_path / "run", args + FULL, then, port)
    _run(tmp_path / "ref", args + FULL, then, port)
    a, b = _log(tmp_path / "run"), _log(tmp_path / "ref")
    assert len(a) == len(b) == 20
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            if k != "g/image_std":  # a std averaged over ranks is not the global std
                assert ra[k] == pytest.approx(rb[k], rel=1e-4, abs=1e-6), (ra["step"], k)
    wa, wb = (read_dcp(tmp_path / run / "state" / "step_000000020") for run in ("run", "ref"))
    assert wa.keys() == wb.keys()
    assert max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa if k.startswith(("net/", "ema/"))) < 1e-4


def test_async_save_on_two_processes_equals_the_synchronous_states(tmp_path):
    """2 gloo processes, FSDP2 shards: the background writes (one per rank) publish the synchronous run's tensors."""
    args = _prompts(tmp_path)
    _run(tmp_path / "sync", args + SHORT, 2, 29541)
    _run(tmp_path / "async", args + SHORT + ["state_layout=dcp", "async_save=true"], 2, 29541)
    for step in ("step_000000005", "step_000000010"):
        a, b = (read_dcp(tmp_path / r / "state" / step) for r in ("async", "sync"))
        assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == []
        assert len(list((tmp_path / "async" / "state" / step / "dcp").iterdir())) == 2


if __name__ == "__main__":
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        _use_dcp(mp)
        if os.environ.get("RELOAD_OUT"):
            mp.setattr(loop, "run", _reload_only)
        print(train(FakeDistiller, _base(sys.argv[2:]), Path(sys.argv[1]), sys.argv[2:], device="cpu"))
