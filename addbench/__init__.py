"""addbench: train few-step diffusion distillers and score them under one protocol.

The Python API (``addbench.api``): ``evaluate``, ``train``, ``leaderboard``, ``load_generator`` and the
``EvalConfig`` they share with the command line; imported on first use, so ``import addbench`` stays light.
"""
__version__ = "0.1.0"
__all__ = ["evaluate", "train", "leaderboard", "load_generator", "EvalConfig"]


def __getattr__(name: str):
    if name in ("evaluate", "train", "leaderboard", "load_generator"):
        from addbench import api

        return getattr(api, name)
    if name == "EvalConfig":
        from addbench.config import EvalConfig

        return EvalConfig
    raise AttributeError(f"module 'addbench' has no attribute {name!r}")
