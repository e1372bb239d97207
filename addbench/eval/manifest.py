"""A finished run is a manifest: ``record["files"]`` maps each sample file and ``per_sample.parquet`` (paths relative
to the run dir) to ``{"sha256", "bytes"}``. :func:`verify` checks a run dir against it: sizes always, and the
sha256 of every file with ``mode="full"`` (``"auto"``: full when the files total at most ``AUTO_FULL_BYTES``).

Hashes are cached per process by (path, size, mtime_ns), so a file is read once however often it is asked for.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from addbench.bases.hashing import read_sha256
from addbench.errors import AddbenchError

VERIFY_MODES = ("auto", "size", "full")
AUTO_FULL_BYTES = 2 << 30  # "auto" hashes runs up to 2 GiB of files (~1-2 s of sha256); larger ones: sizes only
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the last 12 bytes of every complete PNG

_cache: dict[tuple[str, int, int], str] = {}
_lock = threading.Lock()


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a file, cached per process by (absolute path, size, mtime_ns)."""
    path = os.path.abspath(path)
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    with _lock:
        if key in _cache:
            return _cache[key]
    digest = read_sha256(path)
    with _lock:
        _cache[key] = digest
    return digest


def png_complete(path: Path) -> bool:
    """True when ``path`` ends like a whole PNG (its IEND chunk): a truncated file is not a sample yet."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() < 8 + len(PNG_END):
                return False
            f.seek(-len(PNG_END), os.SEEK_END)
            return f.read() == PNG_END
    except OSError:
        return False


def build(run_dir: Path, relpaths: list[str]) -> dict[str, dict]:
    """The manifest of ``relpaths`` under ``run_dir``: {relative path: {"sha256", "bytes"}}."""
    out = {}
    for rel in relpaths:
        p = Path(run_dir) / rel
        if not p.is_file():
            raise AddbenchError(f"{p} is missing while the record is written; re-run the same command to regenerate it")
        out[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    return out


@dataclass
class Report:
    checked: int = 0
    hashed: bool = False
    missing: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)  # truncated, emptied or grown
    changed: list[str] = field(default_factory=list)  # same size, other bytes

    @property
    def damaged(self) -> list[str]:
        return self.missing + self.resized + self.changed

    @property
    def ok(self) -> bool:
        return not self.damaged

    def summary(self) -> str:
        parts = [f"{len(v)} {k} ({', '.join(v[:3])}{', ...' if len(v) > 3 else ''})"
                 for k, v in (("missing", self.missing), ("truncated or resized", self.resized),
                              ("changed", self.changed)) if v]
        return "; ".join(parts)


def resolve_mode(files: dict, mode: str) -> str:
    if mode not in VERIFY_MODES:
        raise AddbenchError(f"--verify {mode!r}; use one of {', '.join(VERIFY_MODES)}")
    if mode == "auto":
        return "full" if sum(int(e["bytes"]) for e in files.values()) <= AUTO_FULL_BYTES else "size"
    return mode


def verify(run_dir: Path, files: dict, mode: str = "auto") -> Report:
    """Check ``run_dir`` against ``files`` (a record's manifest); see the module docstring for ``mode``."""
    full = resolve_mode(files, mode) == "full"
    rep = Report(hashed=full)
    for rel, entry in files.items():
        p = Path(run_dir) / rel
        rep.checked += 1
        try:
            size = p.stat().st_size
        except FileNotFoundError:
            rep.missing.append(rel)
            continue
        if size != entry["bytes"]:
            rep.resized.append(rel)
        elif full and sha256_file(p) != entry["sha256"]:
            rep.changed.append(rel)
    return rep
