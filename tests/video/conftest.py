"""Fixtures of the video tests.

- The VBench env: $ADDBENCH_VBENCH_ENV (CI builds the minimal one), else a minimal env made here (about 20 s
  with a warm pip cache); skipped only when neither is possible.
- Tiny random-weight CogVideoX pipelines (2B-like: sinusoidal positions, SNR shift 3; 5B-like: 3D RoPE), saved
  in the diffusers layout once per session and loaded back through ``from_pretrained``.
"""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))



@pytest.fixture(scope="session")
def vbench_env() -> Path:
    from addbench.errors import AddbenchError
    from addbench.video.env import ENV_VAR, create_env, default_env_dir

    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    try:
        env = create_env("minimal", default_env_dir("minimal"), log=lambda *_: None)
    except (AddbenchError, OSError) as exc:
        pytest.skip(f"{ENV_VAR} is unset and a minimal VBench env cannot be made here: {exc}")
    os.environ[ENV_VAR] = str(env)
    return env


@pytest.fixture(scope="session")
def no_weights(tmp_path_factory) -> str:
    """An empty VBench weights folder: every dimension but temporal_flickering misses its files."""
    return str(tmp_path_factory.mktemp("vbench-weights"))


@pytest.fixture(scope="session")
def cog_dir(tmp_path_factory):
    from addbench.bases.tiny import save_tiny_pipeline

    built = {}

    def get(kind: str = "2b"):
        if kind not in built:
            built[kind] = save_tiny_pipeline("cogvideox", tmp_path_factory.mktemp(f"cog{kind}") / "pipe",
                                             rotary=(kind == "5b"))
        return built[kind]

    return get


@pytest.fixture(scope="session")
def cog_base(cog_dir):
    """Loaded CPU bases, shared: tests must not modify them (use copy_network)."""
    from addbench.bases.loading import load_base

    loaded = {}

    def get(kind: str = "2b"):
        if kind not in loaded:
            loaded[kind] = load_base(str(cog_dir(kind)), device="cpu")
        return loaded[kind]

    return get
