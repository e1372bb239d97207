"""record.json's metric entries: ``ci`` (how ``ci95`` was made) and the estimate always inside its interval."""
import numpy as np
import pytest
import torch

from addbench.eval.records import metric_entry
from addbench.metrics import intervals
from addbench.metrics.base import Metric


class _Scores(Metric):
    name = "scores"

    def compute(self):
        return float(np.mean(self.scores))


def _scores(values, seeds=2):
    m = _Scores()
    m._record([(i // seeds, i % seeds) for i in range(len(values))], values)
    return m


def test_entry_records_the_interval_rule_and_draws():
    m = _scores(np.random.default_rng(0).gamma(1.0, 1.0, 60))
    e = metric_entry(m, {}, n_boot=500)
    assert e["ci"] == {"method": "percentile", "draws": 500, "level": 0.95, "unit": "prompt"}
    lo, hi = e["ci95"]
    assert lo <= e["value"] <= hi
    assert metric_entry(m, {})["ci"]["draws"] == intervals.DRAWS == 1000


def test_fid_entry_says_basic_plus_bias(tmp_path):
    from addbench.metrics.fid import FID
    from addbench.metrics.refstats import RefStats

    class Identity:
        id, input_size = "identity", (8, 8)

        def __call__(self, x):
            return x

    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.standard_normal((40, 6)) * 1.1, dtype=torch.float64)
    m = FID(features=Identity())
    m._feats, m._feat_keys = [x.float()], [torch.tensor([[i // 2, i % 2] for i in range(40)])]
    m._sum, m._outer, m._count, m._n = x.sum(0), x.T @ x, torch.tensor(40.0, dtype=torch.float64), torch.tensor(40.0)
    m._ref = RefStats(np.zeros(6), np.eye(6), None, "exact")
    e = metric_entry(m, {})
    assert e["ci"] == {"method": "basic+bias", "draws": 1000, "level": 0.95, "unit": "prompt"} and e["per"] == "set"
    assert e["ci95"][0] <= e["value"] <= e["ci95"][1]


def test_an_interval_that_excludes_its_estimate_is_refused():
    class Broken(_Scores):
        def bootstrap(self, n_boot=1000, seed=0, alpha=0.05):
            return (10.0, 11.0)

    m = Broken()
    m._record([(0, 0), (0, 1), (1, 0), (1, 1)], [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(AssertionError, match="outside its interval"):
        metric_entry(m, {})


def test_interval_rules_hold_the_estimate():
    draws = np.array([5.0, 6.0, 7.0, 8.0, 100.0])  # mean far above the upper quantile's reach of the estimate
    lo, hi = intervals.basic_bias_interval(draws, 5.5, alpha=0.5)
    assert lo <= 5.5 <= hi
    assert intervals.basic_bias_interval(np.array([0.0, 1.0, 2.0, 50.0]), 0.1, lower=0.0)[0] == 0.0
    assert intervals.percentile_interval(np.array([2.0, 3.0, 4.0]), 1.0) == (1.0, pytest.approx(3.95))
    with pytest.raises(AssertionError):
        intervals.check_contains(1.0, (1.5, 2.0))
    intervals.check_contains(1.0, None)
    with pytest.raises(ValueError):
        intervals.basic_bias_interval(np.array([1.0, np.nan]), 1.0)
