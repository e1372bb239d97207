"""A finished run is a manifest: re-running checks it, refuses damage in one line, and --repair restores it exactly."""
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import fakes
from addbench.cli import app
from addbench.errors import AddbenchError
from addbench.eval import manifest
from addbench.eval.provenance import KNOWN_SHA256_PREFIX, check_known, weight_entry
from addbench.eval.records import read_record
from addbench.eval.runner import evaluate


def _run(suite, run_dir, gen=None, **kw):
    return evaluate(gen or fakes.FakeGenerator(), suite, run_dir=run_dir, batch_size=4, progress=False, **kw)


def _values(record):
    return {mid: (m["value"], m["ci95"]) for mid, m in record["metrics"].items()}


def _damage(run_dir: Path, how: str) -> str:
    if how == "deleted png":
        (run_dir / "samples" / "000002_s1.png").unlink()
        return "1 missing"
    if how == "truncated png":
        p = run_dir / "samples" / "000003_s0.png"
        p.write_bytes(p.read_bytes()[:100])
        return "truncated or resized"
    if how == "emptied parquet":
        (run_dir / "per_sample.parquet").write_bytes(b"")
        return "per_sample.parquet"
    p = run_dir / "samples" / "000001_s2.png"  # same size, one byte flipped
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    return "1 changed"


def test_record_lists_every_sample_and_the_parquet_with_sha256_and_size(fake_suite, tmp_path):
    res = _run(fake_suite, tmp_path / "r")
    files = res.record["files"]
    assert len(files) == 7 * 3 + 1 and "per_sample.parquet" in files
    for rel, entry in files.items():
        p = tmp_path / "r" / rel
        assert entry == {"sha256": manifest.sha256_file(p), "bytes": p.stat().st_size}
    assert manifest.verify(tmp_path / "r", files, "full").ok


@pytest.mark.parametrize("how", ["deleted png", "truncated png", "emptied parquet", "changed png"])
def test_damaged_finished_run_is_refused_then_repaired_to_the_same_values(fake_suite, tmp_path, how):
    run_dir = tmp_path / "r"
    first = _run(fake_suite, run_dir).record
    said = _damage(run_dir, how)
    with pytest.raises(AddbenchError) as exc:
        _run(fake_suite, run_dir)
    msg = str(exc.value)
    assert "\n" not in msg and said in msg and "--repair" in msg
    gen = fakes.FakeGenerator()
    repaired = _run(fake_suite, run_dir, gen=gen, repair=True).record
    assert gen.calls == (1 if "png" in how else 0)  # only the damaged sample is generated again
    assert _values(repaired) == _values(first) and repaired["files"] == first["files"]
    assert manifest.verify(run_dir, repaired["files"], "full").ok
    assert len(pd.read_parquet(run_dir / "per_sample.parquet")) == 21
    again = fakes.FakeGenerator()
    assert _run(fake_suite, run_dir, gen=again).record == read_record(run_dir) and again.calls == 0


def test_verify_size_skips_hashes_and_full_catches_a_same_size_change(fake_suite, tmp_path):
    run_dir = tmp_path / "r"
    _run(fake_suite, run_dir)
    _damage(run_dir, "changed png")
    _run(fake_suite, run_dir, verify="size")  # sizes only: the flipped byte goes unseen
    with pytest.raises(AddbenchError, match="1 changed"):
        _run(fake_suite, run_dir, verify="full")


def test_cli_refuses_a_damaged_run_with_exit_2_and_repairs_it(fake_suite, tmp_path):
    import addbench.eval.run as runner

    real = runner.load_generator
    runner.load_generator = lambda model, *a: fakes.FakeGenerator() if model == "fake" else real(model, *a)
    try:
        args = ["eval", "--model", "fake", "--suite", str(fake_suite), "--run-dir", str(tmp_path / "r"),
                "--device", "cpu", "--no-progress", "-b", "4"]
        cli = CliRunner()
        assert cli.invoke(app, args).exit_code == 0
        (tmp_path / "r" / "samples" / "000000_s0.png").unlink()
        r = cli.invoke(app, args)
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "1 missing" in r.output
        r = cli.invoke(app, [*args, "--repair"])
        assert r.exit_code == 0 and (tmp_path / "r" / "samples" / "000000_s0.png").is_file()
        assert cli.invoke(app, [*args, "--verify", "full"]).exit_code == 0
    finally:
        runner.load_generator = real


def test_truncated_png_in_an_unfinished_run_is_regenerated(fake_suite, tmp_path, monkeypatch):
    ref = _run(fake_suite, tmp_path / "ref").record
    monkeypatch.setenv("ADDBENCH_TEST_CRASH_AFTER", "8")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(fake_suite, tmp_path / "r")
    monkeypatch.delenv("ADDBENCH_TEST_CRASH_AFTER")
    p = tmp_path / "r" / "samples" / "000001_s0.png"
    p.write_bytes(p.read_bytes()[:57])  # as a disk cut short would leave it
    gen = fakes.FakeGenerator()
    res = _run(fake_suite, tmp_path / "r", gen=gen)
    assert gen.calls == 21 - 8 + 1 and _values(res.record) == _values(ref)


def test_manifest_verification_cost_on_2000_pngs(tmp_path):
    """2,000 toy-sized PNGs: sizes and sha256 in well under a few seconds (measured: docs/records.md)."""
    import time

    from addbench.eval.samples import write_png

    g = torch.Generator().manual_seed(0)
    (tmp_path / "samples").mkdir()
    rels = []
    for i in range(2000):
        rel = f"samples/{i:06d}_s0.png"
        write_png(tmp_path / rel, torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=g), {"i": i}, 1)
        rels.append(rel)
    files = manifest.build(tmp_path, rels)
    manifest._cache.clear()  # as a fresh process: every file read and hashed
    t = time.perf_counter()
    assert manifest.verify(tmp_path, files, "full").ok
    full = time.perf_counter() - t
    t = time.perf_counter()
    assert manifest.verify(tmp_path, files, "size").ok
    sizes = time.perf_counter() - t
    print(f"2000 PNGs ({sum(e['bytes'] for e in files.values()) / 1e6:.1f} MB): full {full:.3f} s, sizes {sizes:.3f} s")
    assert full < 5 and sizes < 2


# ---- provenance -------------------------------------------------------------------------------------------
TOY_SUITE = """
name: toy-prov
version: 1
description: toy metrics on a few captions (provenance test)
prompts:
  name: toy-4
  format: python
  target: addbench.toy.data:prompts
  kwargs: {n: 4, seed: 0}
seeds: [0, 1]
generation_dtype: fp32
resolution: 32
metrics:
  - name: toy_fid
    kwargs: {n_ref: 40, ref_seed: 7}
  - name: toy_clip_score
    kwargs: {convention: x100}
  - caption_accuracy
"""


def test_record_provenance_has_reference_and_weight_hashes_micro_batch_device_dtype(tmp_path):
    suite = tmp_path / "toy-prov.yaml"
    suite.write_text(TOY_SUITE)
    res = _run(suite, tmp_path / "r", n_boot=50)
    rec = read_record(tmp_path / "r")
    assert rec == json.loads(json.dumps(res.record)) and rec["format"] == "addbench-record/2"
    prov = rec["provenance"]
    assert prov["micro_batch"] == 4 and prov["score_batch"] == 64 and prov["requested_device"] == "cpu"
    assert prov["device"].startswith("cpu") and prov["dtype"] == rec["model"].get("dtype", prov["dtype"])
    fid = next(m for mid, m in rec["metrics"].items() if mid.startswith("toy_fid"))
    ref = fid["provenance"]["reference"]
    assert ref["sha256"] == manifest.sha256_file(ref["source"]) and ref["n_images"] == 40
    assert "toy-reference" in ref["origin"]
    for mid, m in rec["metrics"].items():
        weights = m["provenance"]["weights"]
        assert weights, mid
        for w in weights:
            assert w["sha256"] == manifest.sha256_file(w["path"]) and w["known"] is None
    roles = {w["role"] for m in rec["metrics"].values() for w in m["provenance"]["weights"]}
    assert roles == {"open_clip", "classifier"}


def test_official_name_with_wrong_hash_is_flagged_and_refused(fake_suite, tmp_path, monkeypatch):
    fake = tmp_path / "hub" / "alexnet-owt-7be5be79.pth"  # torchvision's name; a tiny tensor, not the weights
    fake.parent.mkdir()
    torch.save({"features.0.weight": torch.zeros(2, 3)}, fake)
    entry = weight_entry("trunk", fake)
    assert entry["known"] is False and entry["file"] in KNOWN_SHA256_PREFIX
    other = tmp_path / "my_alexnet.pth"
    other.write_bytes(fake.read_bytes())
    assert weight_entry("trunk", other)["known"] is None  # a user's own file: recorded by hash, not judged
    with pytest.raises(AddbenchError) as exc:
        check_known("lpips_diversity[lpips-alex-v0.1,pairwise-mean]", {"weights": [entry]})
    assert "\n" not in str(exc.value) and "7be5be79" in str(exc.value)
    monkeypatch.setattr(fakes.FakeBrightness, "weight_files", lambda self: [("trunk", fake)], raising=False)
    with pytest.raises(AddbenchError, match="named like the official trunk file"):
        _run(fake_suite, tmp_path / "r")
