"""The unit world's tests: tiny tensors, so one CPU thread is the fastest (and immune to a busy machine)."""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def base():
    from addbench.bases.loading import load_base

    return load_base("gmm", device="cpu")
