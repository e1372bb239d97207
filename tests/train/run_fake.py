"""Subprocess / torchrun entry for the engine tests: python run_fake.py OUT [key=value ...]."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

from addbench.train.entry import train  # noqa: E402
from train_fakes import FakeBase, FakeDistiller  # noqa: E402

if __name__ == "__main__":
    torch.set_num_threads(1)
    base = FakeBase()
    if "base_dtype=bf16" in sys.argv[2:]:  # the fake base is built here, so the engine's base_dtype is applied here
        base.network.to(torch.bfloat16)
    print(train(FakeDistiller, base, Path(sys.argv[1]), sys.argv[2:], device="cpu"))
