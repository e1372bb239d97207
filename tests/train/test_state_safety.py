"""Training state that nothing can abuse or break: no pickle runs code, a damaged newest state falls back to the one
before it (bitwise the same run), a torn metrics line is dropped, SIGTERM / SIGINT stop with a resume command."""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from addbench.errors import AddbenchError
from addbench.train.callbacks import TrainingInterrupted, loss_curves
from addbench.train.checkpoint import write_manifest
from addbench.train.entry import train
from train_fakes import FakeBase, FakeDistiller

# 4 images a step; states every 5 steps (keep 2). The short run ends at step 10 with step_5 and step_10 kept; the
# full run ends at step 16 (states 15 and 16), as does a short run resumed with the full budget.
ARGS = ["budget_images=64", "ckpt_every_images=20", "ema=0.8"]
SHORT = ["budget_images=40", "ckpt_every_images=20", "ema=0.8"]


class Payload:
    """Unpickling this creates ``marker``: the test fails if it ever exists."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.fixture()
def args(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_GLOBAL_RNG", "1")  # the fake's loss draws from the global RNG: restored on resume
    p = tmp_path / "p.txt"
    p.write_text("".join(f"prompt {i}\n" for i in range(9)))
    return [f"prompts={p}"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    p = tmp_path_factory.mktemp("ref") / "p.txt"
    p.write_text("".join(f"prompt {i}\n" for i in range(9)))
    run = p.parent / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAKE_GLOBAL_RNG", "1")
        train(FakeDistiller, FakeBase(), run, [f"prompts={p}", *ARGS], device="cpu")
    return run


def _log(run):
    return [{k: v for k, v in json.loads(ln).items() if k != "time"}
            for ln in (run / "metrics.jsonl").read_text().splitlines()]


def _assert_same_run(run, ref):
    for name in ("networks", "ema"):
        a = load_file(str(ref / "state" / "step_000000016" / f"{name}.safetensors"))
        b = load_file(str(run / "state" / "step_000000016" / f"{name}.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    a = load_file(str(ref / "checkpoint" / "network" / "model.safetensors"))
    b = load_file(str(run / "checkpoint" / "network" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _log(run) == _log(ref) and len(_log(run)) == 16
    assert sorted(p.name for p in (run / "state").iterdir()) == ["step_000000015", "step_000000016"]


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _plant_payload(path, marker, rehash):
    torch.save({"g": Payload(marker)}, path)
    if rehash:  # the manifest matches too: only weights_only=True stands between the file and the payload
        write_manifest(path.parent)


DAMAGE = {
    "truncated networks": (lambda d, m: _truncate(d / "networks.safetensors"),
                           r"networks.safetensors: \d+ bytes, manifest says \d+"),
    "garbage meta.json": (lambda d, m: (d / "meta.json").write_text("{" * (d / "meta.json").stat().st_size),
                          "meta.json: sha256 mismatch"),  # same size: found by its hash
    "garbage optimizer state": (lambda d, m: (d / "optim.pt").write_bytes(b"\x00garbage" * 100),
                                r"optim.pt: \d+ bytes, manifest says"),
    "payload in optim.pt": (lambda d, m: _plant_payload(d / "optim.pt", m, rehash=False), "optim.pt: "),
    "payload in optim.pt, manifest rehashed": (lambda d, m: _plant_payload(d / "optim.pt", m, rehash=True),
                                               "optim.pt: refused to unpickle"),
    "garbage rng state, manifest rehashed": (lambda d, m: (_truncate(d / "rng_rank0.safetensors"),
                                                           write_manifest(d)), "rng_rank0.safetensors: "),
    "no manifest": (lambda d, m: (d / "manifest.json").unlink(), "no manifest.json: incomplete"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_newest_state_falls_back_to_the_one_before_and_resumes_bitwise(tmp_path, args, reference,
                                                                                 capsys, damage):
    run, marker = tmp_path / "run", tmp_path / "pwned"
    train(FakeDistiller, FakeBase(), run, args + SHORT, device="cpu")
    spoil, reason = DAMAGE[damage]
    spoil(run / "state" / "step_000000010", marker)
    capsys.readouterr()
    train(FakeDistiller, FakeBase(), run, args + ARGS, device="cpu")
    assert not marker.exists()
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("state ")]
    assert len(lines) == 1 and lines[0].startswith("state step_000000010 damaged (")
    assert lines[0].endswith("); resuming from step_000000005")
    assert re.search(reason, lines[0]), lines[0]
    _assert_same_run(run, reference)


def test_no_intact_state_is_one_line_error_and_old_pickled_states_are_refused_unread(tmp_path, args):
    run, marker = tmp_path / "run", tmp_path / "pwned"
    train(FakeDistiller, FakeBase(), run, args + SHORT, device="cpu")
    for d in (run / "state").iterdir():
        _truncate(d / "networks.safetensors")
    with pytest.raises(AddbenchError, match=r"^no intact training state in .*state \(step_000000010: networks"
                                            r".*; step_000000005: .*\); delete .* or train into a new --out$"):
        train(FakeDistiller, FakeBase(), run, args + ARGS, device="cpu")
    # the previous format: pickled rng_rank0.pt (here a payload) and optim.pt, no manifest
    for d in (run / "state").iterdir():
        for f in [*d.glob("rng_rank0.*"), d / "manifest.json"]:
            f.unlink()
        torch.save({"torch": Payload(marker)}, d / "rng_rank0.pt")
        torch.save({"g": Payload(marker)}, d / "optim.pt")
    with pytest.raises(AddbenchError) as err:
        train(FakeDistiller, FakeBase(), run, args + ARGS, device="cpu")
    msg = str(err.value)
    assert "\n" not in msg and "old format (pickled .pt files, no manifest.json)" in msg and "new --out" in msg
    assert not marker.exists()
    torch.load(run / "state" / "step_000000010" / "optim.pt", weights_only=False)  # the payload is live:
    assert marker.exists()  # unpickled the old way, it runs


def test_a_torn_last_metrics_line_is_dropped_on_resume_and_skipped_when_read(tmp_path, args, reference, capsys):
    run = tmp_path / "run"
    train(FakeDistiller, FakeBase(), run, args + SHORT, device="cpu")
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 11, "images_seen": 44, "ti')  # a run killed mid-write
    with pytest.warns(UserWarning, match="skipped 1 unreadable line"):
        curves = loss_curves(run)
    assert len(curves["g/loss"]) == 10
    train(FakeDistiller, FakeBase(), run, args + ARGS, device="cpu")
    assert "dropped 1 unreadable line(s) (11)" in capsys.readouterr().err
    _assert_same_run(run, reference)


class SignalledDistiller(FakeDistiller):
    """Sends its own process ``STOP_SIGNAL`` during step 7's first turn call (state step_5 is on disk)."""

    def loss(self, turn, batch, step):
        if step == 7 and batch["call"] == 0:
            os.kill(os.getpid(), int(os.environ["STOP_SIGNAL"]))
        return super().loss(turn, batch, step)


def test_sigint_finishes_the_step_says_what_was_kept_and_resumes_bitwise(tmp_path, args, reference, capsys,
                                                                         monkeypatch):
    run, before = tmp_path / "run", signal.getsignal(signal.SIGINT)
    monkeypatch.setenv("STOP_SIGNAL", str(int(signal.SIGINT)))
    with pytest.raises(TrainingInterrupted) as stop:
        train(SignalledDistiller, FakeBase(), run, args + ARGS, device="cpu")
    assert stop.value.code == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("stopped at step 8 (SIGINT); kept state step_000000005 (20 images); resume with: ")
    assert signal.getsignal(signal.SIGINT) is before  # the handlers are restored
    assert len(_log(run)) == 8 and not (run / "checkpoint").exists()
    monkeypatch.delenv("STOP_SIGNAL")
    train(FakeDistiller, FakeBase(), run, args + ARGS, device="cpu")
    _assert_same_run(run, reference)


def test_sigterm_to_addbench_train_exits_143_with_a_resume_command_that_completes_the_run(tmp_path):
    """The real CLI on the gmm base: SIGTERM after the first state, then the printed command."""
    addbench = shutil.which("addbench") or str(Path(sys.executable).parent / "addbench")
    out = tmp_path / "run"
    cmd = [addbench, "train", "add", "--base", "gmm", "--out", str(out), "--device", "cpu",
           "--set", "budget_images=6400", "--set", "ckpt_every_images=256", "--set", "tensorboard=false",
           "--set", "progress=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while not list(out.glob("state/step_*/manifest.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr[-2000:]
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("stopped at step ") and " (SIGTERM); kept state step_" in line, stderr[-2000:]
    resume = line.split("resume with: ", 1)[1]
    assert resume.startswith("addbench train add --base gmm --out ") and "--set budget_images=6400" in resume
    again = subprocess.run([addbench, *shlex.split(resume)[1:]], env=env, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (out / "checkpoint").is_dir() and (out / "state" / "step_000000050").is_dir()
    assert [r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())] == \
        list(range(1, 51))


def test_the_toy_teacher_trainer_does_not_run_a_planted_train_state(tmp_path, monkeypatch):
    import pickle
    from types import SimpleNamespace

    from addbench.toy import train_base

    tiny = lambda: torch.nn.Linear(1, 1)  # noqa: E731  (the real networks take seconds to build)
    monkeypatch.setattr(train_base.nets, "build_unet", tiny)
    monkeypatch.setattr(train_base.nets, "build_text_encoder", tiny)
    monkeypatch.setattr(train_base.nets, "build_scheduler", lambda: SimpleNamespace(alphas_cumprod=torch.ones(1000)))
    monkeypatch.setattr(train_base.pipeline, "load_tokenizer", lambda path: None)
    marker = tmp_path / "pwned"
    torch.save({"unet": Payload(marker), "step": 0}, tmp_path / "train_state.pt")
    with pytest.raises(pickle.UnpicklingError):
        train_base.main(["--out", str(tmp_path), "--steps", "1", "--batch", "2", "--device", "cpu"])
    assert not marker.exists()
