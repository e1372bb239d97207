"""What a result depends on besides the model and the suite: library versions, device, git commit, time, command."""
from __future__ import annotations

import datetime as _dt
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

LIBRARIES = ("addbench", "torch", "diffusers", "transformers", "open_clip_torch", "clean-fid", "lpips", "numpy")


def library_versions() -> dict[str, str | None]:
    out = {}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = None
    return out


def device_name(device: str | torch.device) -> str:
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(dev)
    return f"cpu ({platform.processor() or platform.machine()})"


def git_commit(path: Path | None = None) -> str | None:
    """HEAD of the repository holding addbench (with '+dirty' for uncommitted changes), or None."""
    where = path or Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: str | torch.device, world_size: int = 1) -> dict:
    return {
        "libraries": library_versions(),
        "python": platform.python_version(),
        "device": device_name(device),
        "world_size": world_size,
        "git_commit": git_commit(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "host": platform.node(),
    }


# ---- metric weights and reference statistics --------------------------------------------------------
# Official files with a known hash. torchvision (torch.hub) names its checkpoints ``<name>-<first hex digits of
# the file's sha256>.pth`` and checks that prefix on download: a file with one of these names whose sha256 does
# not start with the prefix is not the official file (``known: false``) and the run is refused.
KNOWN_SHA256_PREFIX = {
    "alexnet-owt-7be5be79.pth": "7be5be79",  # LPIPS alex trunk
    "vgg16-397923af.pth": "397923af",  # LPIPS vgg trunk
    "squeezenet1_1-b8a52dc0.pth": "b8a52dc0",  # LPIPS squeeze trunk
}
KNOWN_SHA256: dict[str, str] = {}  # file name -> full sha256, for official files published with one


def known_file(name: str, sha256: str) -> bool | None:
    """True: the official file of that name; False: named like an official file, other bytes; None: no table
    entry (a user's own file: recorded by hash, not judged)."""
    if name in KNOWN_SHA256:
        return sha256 == KNOWN_SHA256[name]
    if name in KNOWN_SHA256_PREFIX:
        return sha256.startswith(KNOWN_SHA256_PREFIX[name])
    return None


def weight_entry(role: str, path: str | Path) -> dict:
    """``{"role", "file", "path", "sha256", "bytes", "known"}`` of one weights file (sha256 cached per process)."""
    from addbench.eval.manifest import sha256_file

    path = Path(path).resolve()
    digest = sha256_file(path)
    return {"role": role, "file": path.name, "path": str(path), "sha256": digest, "bytes": path.stat().st_size,
            "known": known_file(path.name, digest)}


def weight_files(metric) -> list[tuple[str, Path]]:
    """(role, file) of every weights file ``metric`` loaded: its ``weight_files()`` (none when it has no such
    method)."""
    if callable(getattr(metric, "weight_files", None)):
        return list(metric.weight_files())
    return []


def metric_provenance(metric, weights: list[dict] | None = None) -> dict:
    """``{"weights": [weight_entry...], "reference": refstats.provenance | None}`` for a record's metric entry
    (``weights``: the entries already made when the metric loaded)."""
    reference = None
    if hasattr(metric, "reference_stats") and getattr(metric, "reference", None) is not None:
        from addbench.metrics.refstats import provenance as ref_provenance

        reference = ref_provenance(metric.reference_stats())
    if weights is None:
        weights = [weight_entry(role, p) for role, p in weight_files(metric)]
    return {"weights": weights, "reference": reference}


def check_known(metric_id: str, prov: dict) -> None:
    """Refuse a metric whose weights carry an official file name with other bytes (``known: false``)."""
    from addbench.errors import AddbenchError

    for w in prov["weights"]:
        if w["known"] is False:
            expected = KNOWN_SHA256.get(w["file"]) or KNOWN_SHA256_PREFIX[w["file"]] + "..."
            raise AddbenchError(f"{metric_id}: {w['path']} is named like the official {w['role']} file but its sha256 "
                                f"{w['sha256'][:12]}... is not {expected}; put the official file there, or give your "
                                "own file another name (it is then recorded by hash as known: null)")
