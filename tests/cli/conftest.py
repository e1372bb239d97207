import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "eval"))

import fakes  # noqa: E402
# the eval tests' fixtures (fake suite, per-test cache), shared rather than copied
from fakes import _cache, fake_suite  # noqa: E402,F401


@pytest.fixture
def fake_model(monkeypatch):
    """Make load_generator('fake') return the fake generator (the real loader is the bases engineer's)."""
    import addbench.eval.run as runner
    real = runner.load_generator

    def load(model, device, dtype, overrides):
        return fakes.FakeGenerator() if model == "fake" else real(model, device, dtype, overrides)
    monkeypatch.setattr(runner, "load_generator", load)
