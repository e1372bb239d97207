"""The VBench env for these tests: $ADDBENCH_VBENCH_ENV (CI builds the minimal one), else a minimal env made
here (about 20 s with a warm pip cache); skipped only when neither is possible."""
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
