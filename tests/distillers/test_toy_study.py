"""distillers/toy_study.py: stage dependencies ("@NAME"), budget fractions, and the final phase's overrides."""
import threading
import time

from distillers import toy_study as ts


def test_merge_and_frac():
    assert ts.merge(["init=@reg", "frac=0.75", "lambda_gan_g=5e-3"], ["gen_steps=4", "init=teacher", "frac=1"]) == [
        "lambda_gan_g=5e-3", "gen_steps=4", "init=teacher", "frac=1"]
    assert ts.split_frac(["a=1", "frac=0.25"]) == (["a=1"], 0.25) and ts.split_frac(["a=1"]) == (["a=1"], 1.0)
    assert ts.deps(["init=@adp", "lr_g=1"]) == {"adp"} and ts.deps(["init=teacher"]) == set()


def test_stages_run_first_and_are_added(tmp_path, monkeypatch):
    """A job naming @reg waits for the reg stage, which is added when missing; the others do not wait;
    a failed stage skips the jobs that start from it."""
    log, lock = [], threading.Lock()

    def fake_job(self, name, distiller, overrides, scale, steps=(1,), after=()):
        if any(not f.result().startswith("done") for f in after):
            return f"SKIPPED {name}"
        with lock:
            log.append(("start", name, tuple(overrides), scale))
        time.sleep(0.05 if name == "reg" else 0.0)
        with lock:
            log.append(("end", name))
        return "FAILED train reg" if name == "reg" and "fail" in str(tmp_path) else f"done {name}"

    monkeypatch.setattr(ts.Study, "job", fake_job)
    study = ts.Study(tmp_path, "cpu", "toy-val", jobs=2)
    out = study.run([("dmd2-reg", "dmd2", ["init=@reg", "frac=0.75"], 0.25, (1,)), ("dmd", "dmd", [], 0.25, (1,))])
    assert sorted(out) == ["done dmd", "done dmd2-reg", "done reg"]
    starts = [e for e in log if e[0] == "start"]
    assert starts[0][1] == "reg" and starts[0][2] == tuple(ts.REG[2]) and starts[0][3] == 0.25
    assert log.index(("end", "reg")) < log.index(next(e for e in log if e[:2] == ("start", "dmd2-reg")))


def test_failed_stage_skips_its_dependents(tmp_path, monkeypatch):
    def fake_job(self, name, distiller, overrides, scale, steps=(1,), after=()):
        if any(not f.result().startswith("done") for f in after):
            return f"SKIPPED {name}"
        return "FAILED train reg" if name == "reg" else f"done {name}"

    monkeypatch.setattr(ts.Study, "job", fake_job)
    out = ts.Study(tmp_path, "cpu", "toy-val", jobs=1).run([("dmd2-reg", "dmd2", ["init=@reg"], 1.0, (1,))])
    assert out == ["FAILED train reg", "SKIPPED dmd2-reg"]


def test_real_job_skips_after_a_failed_stage(tmp_path):
    class Failed:
        def result(self):
            return "FAILED train reg"

    out = ts.Study(tmp_path, "cpu", "toy-val", jobs=1).job("x", "dmd2", [], 1.0, (1,), after=[Failed()])
    assert out.startswith("SKIPPED x")


def test_every_dmd2_trial_that_starts_from_a_stage_names_a_known_one():
    for trials in ts.TRIALS.values():
        for name, _, overrides in trials:
            assert ts.deps(overrides) <= set(ts.STAGES) | {"adp"}, name


def test_a_dependency_trained_earlier_is_used_and_a_missing_one_is_an_error(tmp_path, monkeypatch):
    import pytest

    monkeypatch.setattr(ts.Study, "job", lambda self, name, *a, after=(): f"done {name} after {len(after)}")
    study = ts.Study(tmp_path, "cpu", "toy-2k", jobs=1)
    with pytest.raises(SystemExit, match="run adp in this phase first"):
        study.run([("adm", "dmdx.adm", ["init=@adp"], 1.0, (1,))])
    (tmp_path / "train" / "adp" / "checkpoint").mkdir(parents=True)
    assert study.run([("adm", "dmdx.adm", ["init=@adp"], 1.0, (1,))]) == ["done adm after 0"]
