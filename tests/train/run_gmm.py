"""Subprocess / torchrun entry for the engine tests on the tiny gmm base: python run_gmm.py DISTILLER OUT [key=value ...]."""
import sys
from pathlib import Path

import torch

from addbench.train.entry import train

if __name__ == "__main__":
    torch.set_num_threads(1)
    print(train(sys.argv[1], "gmm", Path(sys.argv[2]), sys.argv[3:], device="cpu"))
