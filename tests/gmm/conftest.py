"""The unit world's tests (tiny tensors: tests/conftest.py runs them on one CPU thread)."""
import pytest


@pytest.fixture(scope="module")
def base():
    from addbench.bases.loading import load_base

    return load_base("gmm", device="cpu")
