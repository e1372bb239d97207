"""Reference statistics for FID/KID: computed once from the user's reference images, then cached.

``reference`` is a folder (searched recursively for clean-fid's image extensions), a list of image
files, or a precomputed ``.npz`` with ``mu`` and ``sigma`` (and optionally ``feats`` for KID).

Cache: ``<cache>/refstats/<key>.npz`` (mu, sigma float64; feats float32) + ``<key>.json`` (what went into
the key, the source path, image count, date). ``<cache>`` = the ``cache_dir`` kwarg, else ``$ADDBENCH_CACHE``,
else ``~/.cache/addbench``. The key is the sha256 of: the sorted list of each image file's **content
sha256** (so copies, moves and touched mtimes of the same images still hit, and any changed byte misses;
the cost is one read of the reference images per run), the extractor id, the resize mode, and the versions
of clean-fid, torch and open_clip. A cache hit is loaded; a different key is a different file (never mixed
or overwritten). When the images are gone, a cached entry made from the same source path with the same
extractor / resize / versions is used; with neither images nor cache we stop with an AddbenchError.

:func:`provenance` says, for a run's record, which stats were used: the sha256 of the stats file, the file, and
where the stats came from (the reference images' folder and count, or a user-supplied npz).
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from glob import glob
from importlib import metadata
from pathlib import Path

import numpy as np

from addbench.bases.hashing import read_sha256 as _sha256_file
from addbench.errors import AddbenchError

log = logging.getLogger(__name__)
FORMAT = "addbench-refstats/1"


@dataclass
class RefStats:
    mu: np.ndarray
    sigma: np.ndarray
    feats: np.ndarray | None  # per-image features (needed by KID), None for mu/sigma-only npz
    source: str  # cache file or user npz the stats came from


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    from addbench.cache import addbench_cache

    return (Path(cache_dir).expanduser() if cache_dir else addbench_cache()) / "refstats"


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "absent"


def library_versions() -> dict[str, str]:
    return {"clean-fid": _version("clean-fid"), "torch": _version("torch"), "open_clip_torch": _version("open_clip_torch")}


def list_images(reference: str | os.PathLike | list) -> list[str]:
    """Image files of a folder (clean-fid's extensions, recursive, sorted) or an explicit list."""
    from cleanfid.utils import EXTENSIONS

    if isinstance(reference, (list, tuple)):
        missing = [str(f) for f in reference if not os.path.isfile(f)]
        if missing:
            raise AddbenchError(f"reference image {missing[0]} not found ({len(missing)} of {len(reference)} missing)")
        return [str(f) for f in reference]
    folder = str(reference)
    return sorted({f for ext in EXTENSIONS for f in glob(os.path.join(folder, f"**/*.{ext}"), recursive=True)})


def cache_key(files: list[str], extractor_id: str, resize: str) -> tuple[str, dict]:
    material = {"format": FORMAT, "images": sorted(_sha256_file(f) for f in files), "extractor": extractor_id,
                "resize": resize, "versions": library_versions()}
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
    return digest, material


def load_npz(path: str | os.PathLike) -> RefStats:
    path = Path(path).expanduser()
    if not path.is_file():
        raise AddbenchError(f"reference stats file {path} not found")
    with np.load(path) as z:
        if "mu" not in z or "sigma" not in z:
            raise AddbenchError(f"reference stats {path} must hold arrays 'mu' and 'sigma' (has {', '.join(z.files)})")
        feats = z["feats"] if "feats" in z else None
        return RefStats(z["mu"].astype(np.float64), z["sigma"].astype(np.float64), feats, str(path))


def _find_by_source(root: Path, source: str, extractor_id: str, resize: str) -> Path | None:
    versions = library_versions()
    for meta_path in sorted(root.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        k = meta.get("key", {})
        if (meta.get("source") == source and k.get("extractor") == extractor_id and k.get("resize") == resize
                and k.get("versions") == versions and meta_path.with_suffix(".npz").is_file()):
            return meta_path.with_suffix(".npz")
    return None


def compute_feats(files: list[str], extractor, resize: str, batch_size: int = 64, num_workers: int = 0) -> np.ndarray:
    """Reference features through clean-fid's own file loader + resizer (same numbers as clean-fid)."""
    from cleanfid.fid import get_files_features

    from addbench.metrics.features import make_resizer

    fn_resize = make_resizer(resize, extractor.input_size) if extractor.input_size else None
    return get_files_features(files, model=extractor, num_workers=num_workers, batch_size=batch_size,
                              device=getattr(extractor, "device", "cpu"), mode=resize,
                              custom_fn_resize=fn_resize, verbose=False).astype(np.float32)


def get_reference_stats(reference, extractor, resize: str = "clean", cache_dir=None, batch_size: int = 64,
                        num_workers: int = 0) -> RefStats:
    """Load (or compute once and cache) reference stats for ``extractor`` + ``resize``; see module docstring."""
    if reference is None:
        raise AddbenchError("FID/KID need reference=<folder of reference images | list of files | stats .npz>")
    if isinstance(reference, (str, os.PathLike)) and str(reference).endswith(".npz"):
        return load_npz(reference)
    root = cache_root(cache_dir)
    source = [os.path.abspath(f) for f in reference] if isinstance(reference, (list, tuple)) else os.path.abspath(
        os.path.expanduser(str(reference)))
    have_images = isinstance(reference, (list, tuple)) or os.path.isdir(source)
    files = list_images(source) if have_images else []
    if not files:
        cached = _find_by_source(root, json.dumps(source), extractor.id, resize)
        if cached is not None:
            log.info("reference images %s not found; using cached stats %s made from them", source, cached)
            return load_npz(cached)
        raise AddbenchError(f"no reference images at {source} and no cached stats for them under {root}; point "
                            "reference= at a folder of reference images (stats are computed once and cached) "
                            "or at a stats .npz with mu and sigma")
    key, material = cache_key(files, extractor.id, resize)
    path = root / f"{key}.npz"
    if path.is_file():
        return load_npz(path)
    log.warning("computing reference stats for %d images (%s, resize=%s) -> %s", len(files), extractor.id, resize, path)
    feats = compute_feats(files, extractor, resize, batch_size, num_workers)
    feats64 = feats.astype(np.float64)
    mu, sigma = feats64.mean(0), np.cov(feats64, rowvar=False)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{key}.{os.getpid()}.tmp.npz"
    np.savez(tmp, mu=mu, sigma=sigma, feats=feats)
    os.replace(tmp, path)
    meta = {"key": material, "sha256": key, "source": json.dumps(source), "n_images": len(files),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (root / f"{key}.json").write_text(json.dumps(meta, indent=1))
    return RefStats(mu, sigma, feats, str(path))


def provenance(stats: RefStats) -> dict:
    """What a record says about reference stats: ``{"source": stats file, "sha256": of that file, "origin": the
    images they were computed from (or "user npz"), "n_images", "cache_key"}``."""
    path = Path(stats.source)
    meta_path = path.with_suffix(".json")
    meta = {}
    if path.parent.name == "refstats" and meta_path.is_file():  # one of our cache entries
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            meta = {}
    origin = meta.get("source")
    if isinstance(origin, str):
        try:
            origin = json.loads(origin)  # stored JSON-encoded (a folder path or a list of files)
        except ValueError:
            pass
    if isinstance(origin, list):
        origin = f"{len(origin)} listed files, first {origin[0]}" if origin else None
    return {"source": str(path), "sha256": _sha256_cached(str(path), *_stat_key(path)),
            "origin": origin if meta else "user npz", "n_images": meta.get("n_images"),
            "cache_key": meta.get("sha256")}


def _stat_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, once per process per (path, size, mtime)."""
    return _sha256_file(path)
