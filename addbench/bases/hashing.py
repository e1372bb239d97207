"""model_hash = sha256 over the network weight files + the sampler dict; file digests cached by size+mtime."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

_CACHE: dict[tuple[str, int, int], str] = {}


def _cache_file() -> Path:
    from addbench.cache import addbench_cache

    return addbench_cache() / "file_sha256.json"


def _load_disk_cache() -> dict:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def read_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read now (no cache): integrity checks use it as is, caches wrap it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, cached (memory + ~/.cache/addbench) by (resolved path, size, mtime_ns)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key in _CACHE:
        return _CACHE[key]
    disk = _load_disk_cache()
    k = f"{key[0]}|{key[1]}|{key[2]}"
    if k in disk:
        _CACHE[key] = disk[k]
        return disk[k]
    _CACHE[key] = digest = read_sha256(p)
    disk[k] = digest
    try:
        cf = _cache_file()
        cf.parent.mkdir(parents=True, exist_ok=True)
        tmp = cf.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(disk))
        os.replace(tmp, cf)
    except OSError:
        pass  # a read-only home only costs speed
    return digest


def model_hash(weight_files: list[str | os.PathLike], sampler: dict, extra: dict | None = None) -> str:
    """sha256 over (file name, file digest) of each weight file, the sampler dict and ``extra``."""
    h = hashlib.sha256()
    for f in sorted(Path(f) for f in weight_files):
        h.update(f"{f.name}:{file_sha256(f)}\n".encode())
    h.update(json.dumps({"sampler": sampler, "extra": extra or {}}, sort_keys=True).encode())
    return h.hexdigest()


def module_hash(module, sampler: dict, extra: dict | None = None) -> str:
    """Same idea for an in-memory network (random weights, tests): hashes the state dict bytes."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    h.update(json.dumps({"sampler": sampler, "extra": extra or {}}, sort_keys=True).encode())
    return h.hexdigest()
