"""addbench's cache folder, one rule for every cache under it: ``$ADDBENCH_CACHE``, else ``~/.cache/addbench``."""
from __future__ import annotations

import os
from pathlib import Path


def addbench_cache() -> Path:
    """The root of addbench's caches (prompt sets, reference statistics, file hashes, compile caches, ...)."""
    return Path(os.environ.get("ADDBENCH_CACHE") or Path.home() / ".cache" / "addbench").expanduser()
