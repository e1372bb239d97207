"""record.json has a versioned JSON Schema (addbench-record/2; /1 still read), checked on write and on read."""
import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import fakes
from addbench.cli import app
from addbench.errors import AddbenchError
from addbench.eval import records
from addbench.eval.runner import evaluate

REPO = Path(__file__).resolve().parents[2]
COMMITTED = sorted((REPO / "leaderboards" / "runs").glob("**/record.json"))


def _record(fake_suite, tmp_path) -> tuple[Path, dict]:
    res = evaluate(fakes.FakeGenerator(), fake_suite, run_dir=tmp_path / "r", batch_size=4, progress=False)
    return res.run_dir, res.record


def test_every_committed_record_is_valid_against_its_format():
    assert COMMITTED
    for path in COMMITTED:
        rec = json.loads(path.read_text())
        assert rec["format"] in records.READ_FORMATS
        assert records.schema_errors(rec, path) is None
        assert records.read_record(path.parent) == rec


def test_committed_v1_records_still_print_in_the_leaderboard():
    r = CliRunner().invoke(app, ["leaderboard", str(REPO / "leaderboards" / "runs" / "toy-2k"), "--format", "csv"])
    assert r.exit_code == 0, r.output
    assert len(r.output.strip().splitlines()) == 1 + len(list((REPO / "leaderboards/runs/toy-2k").glob("*/record.json")))


def test_new_record_round_trips_through_the_v2_schema(fake_suite, tmp_path):
    run_dir, rec = _record(fake_suite, tmp_path)
    assert rec["format"] == records.FORMAT == "addbench-record/2"
    on_disk = records.read_record(run_dir)
    assert on_disk == json.loads(json.dumps(rec)) and records.schema_errors(on_disk) is None
    records.write_record(tmp_path / "copy.json", on_disk)  # write -> read -> write: the same bytes
    assert (tmp_path / "copy.json").read_text() == (run_dir / "record.json").read_text()
    for m in on_disk["metrics"].values():
        assert m["provenance"] == {"weights": [], "reference": None} and "ci" in m


@pytest.mark.parametrize("break_it, where", [
    (lambda r: r["files"]["per_sample.parquet"].pop("sha256"), "$.files['per_sample.parquet']"),
    (lambda r: r["metrics"]["fake_brightness[x100]"].update(ci95=[1.0]), "$.metrics['fake_brightness[x100]'].ci95"),
    (lambda r: r["provenance"].pop("micro_batch"), "$.provenance"),
    (lambda r: r["model"].update(nfe="four"), "$.model.nfe"),
    (lambda r: r["metrics"]["fake_gap"]["provenance"]["weights"].append({"role": "x"}),
     "$.metrics.fake_gap.provenance.weights[0]"),
])
def test_invalid_record_is_one_line_with_file_json_path_and_fix(fake_suite, tmp_path, break_it, where):
    run_dir, rec = _record(fake_suite, tmp_path)
    bad = copy.deepcopy(json.loads(json.dumps(rec)))
    break_it(bad)
    (run_dir / "record.json").write_text(json.dumps(bad))
    with pytest.raises(AddbenchError) as exc:
        records.read_record(run_dir)
    msg = str(exc.value)
    assert "\n" not in msg and str(run_dir / "record.json") in msg and f" at {where}:" in msg
    assert "delete the run dir or re-run with --repair" in msg
    with pytest.raises(AddbenchError, match="bug in addbench"):  # never written
        records.write_record(tmp_path / "x.json", bad)
    assert not (tmp_path / "x.json").exists()


def test_garbage_record_is_one_line_exit_2_and_repair_rewrites_it(fake_suite, tmp_path, monkeypatch):
    import addbench.eval.run as runner

    real = runner.load_generator
    monkeypatch.setattr(runner, "load_generator",
                        lambda model, *a: fakes.FakeGenerator() if model == "fake" else real(model, *a))
    run_dir, rec = _record(fake_suite, tmp_path)
    (run_dir / "record.json").write_bytes(b"\x00\xffnot json {")
    cli = CliRunner()
    args = ["eval", "--model", "fake", "--suite", str(fake_suite), "--run-dir", str(run_dir), "--device", "cpu",
            "--no-progress", "-b", "4"]
    for cmd in (args, ["leaderboard", str(run_dir)]):
        r = cli.invoke(app, cmd)
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
        assert "record.json is not valid JSON" in r.output and "Traceback" not in r.output
    (run_dir / "record.json").write_text("[1, 2]")
    r = cli.invoke(app, args)
    assert r.exit_code == 2 and "not a record" in r.output
    r = cli.invoke(app, [*args, "--repair"])
    assert r.exit_code == 0, r.output
    again = records.read_record(run_dir)
    assert {k: v["value"] for k, v in again["metrics"].items()} == {k: v["value"] for k, v in rec["metrics"].items()}


def test_unknown_format_is_refused_in_one_line(tmp_path):
    (tmp_path / "record.json").write_text(json.dumps({"format": "addbench-record/9", "complete": True}))
    with pytest.raises(AddbenchError, match=r"\$.format is 'addbench-record/9'"):
        records.read_record(tmp_path)


def test_unfinished_placeholder_and_v1_shapes_validate():
    assert records.schema_errors({"format": records.FORMAT, "complete": False, "run_key": "0" * 64}) is None
    v1 = json.loads(COMMITTED[0].read_text())
    assert records.schema_errors(v1) is None
    assert "'files' is a required property" in records.schema_errors({**v1, "format": records.FORMAT})
    video = {**v1, "format": records.FORMAT, "kind": "video"}  # the video runner's records: no manifest yet
    assert records.schema_errors(video) is None
