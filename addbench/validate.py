"""Small typed checks for the boundary (CLI flags, config keys, Python API arguments).

Each check returns the value (converted where it says so) or raises :class:`AddbenchError` with one line that
names the flag or key, the value and the fix, e.g. ``--steps 0: must be an integer >= 1 (the number of sampling
steps)``. ``what`` is a flag (``--steps``: printed ``--steps 0``) or a config key (``lr``: printed ``lr=-1``).
Checks run before anything is created on disk, so a refused command leaves no run directory behind.
"""
from __future__ import annotations

import math
import os
import re
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Iterable

from addbench.errors import AddbenchError

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]*")
SAFE_NAME_RULE = "letters, digits and . _ @ + - only, starting with a letter or digit, no '..'"


def _show(what: str, value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{what} {text}" if what.startswith("-") else f"{what}={text}"


def fail(what: str, value: Any, rule: str, hint: str = "") -> AddbenchError:
    """The one-line error: ``<what> <value>: must be <rule> (<hint>)``."""
    msg = f"{_show(what, value)}: must be {rule}" + (f" ({hint})" if hint else "")
    return AddbenchError(" ".join(msg.split()))


def _number(value: Any, what: str, rule: str, hint: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise fail(what, value, rule, hint)
    return float(value)


def finite(value: Any, what: str, hint: str = "") -> float:
    """A real number, not nan or +-inf (bools are refused)."""
    v = _number(value, what, "a finite number", hint)
    if not math.isfinite(v):
        raise fail(what, value, "a finite number", hint)
    return value if isinstance(value, Real) and not isinstance(value, bool) else v


def positive(value: Any, what: str, hint: str = "") -> float:
    v = _number(value, what, "a finite number > 0", hint)
    if not (math.isfinite(v) and v > 0):
        raise fail(what, value, "a finite number > 0", hint)
    return value if isinstance(value, Real) else v


def non_negative(value: Any, what: str, hint: str = "") -> float:
    v = _number(value, what, "a finite number >= 0", hint)
    if not (math.isfinite(v) and v >= 0):
        raise fail(what, value, "a finite number >= 0", hint)
    return value if isinstance(value, Real) else v


def in_range(value: Any, lo: float, hi: float, what: str, hint: str = "", hi_open: bool = False) -> float:
    """lo <= value <= hi (value < hi with ``hi_open``)."""
    rule = f"a number in [{lo:g}, {hi:g}{')' if hi_open else ']'}"
    v = _number(value, what, rule, hint)
    if not (math.isfinite(v) and lo <= v and (v < hi if hi_open else v <= hi)):
        raise fail(what, value, rule, hint)
    return value if isinstance(value, Real) else v


def int_at_least(value: Any, minimum: int, what: str, hint: str = "", maximum: int | None = None) -> int:
    """An integer >= minimum (and <= maximum); ``4.0`` and ``"4"`` pass as 4, ``2.5``, ``nan``, ``True`` do not."""
    rule = f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
    if isinstance(value, bool):
        raise fail(what, value, rule, hint)
    if isinstance(value, Integral):
        v = int(value)
    else:
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise fail(what, value, rule, hint) from None
        if not math.isfinite(f) or f != int(f):
            raise fail(what, value, rule, hint)
        v = int(f)
    if v < minimum or (maximum is not None and v > maximum):
        raise fail(what, value, rule, hint)
    return v


def boolean(value: Any, what: str, hint: str = "") -> bool:
    if not isinstance(value, bool):
        raise fail(what, value, "true or false", hint)
    return value


def one_of(value: Any, choices: Iterable, what: str, hint: str = "") -> Any:
    choices = tuple(choices)
    if value not in choices:
        raise fail(what, value, "one of " + ", ".join(str(c) for c in choices), hint)
    return value


def safe_name(name: Any, what: str) -> str:
    """A name that becomes a file or folder name: ``[A-Za-z0-9][A-Za-z0-9._@+-]*``, no ``..``, no separators."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name or len(name) > 200:
        raise fail(what, name, f"a safe name ({SAFE_NAME_RULE}, at most 200 characters)",
                   "it becomes a file name")
    return name


def inside(root: str | os.PathLike, path: str | os.PathLike, what: str = "path") -> Path:
    """``path`` resolved, refused unless it lies inside ``root`` (resolved): no ``..`` or symlink escapes."""
    r, p = Path(root).expanduser().resolve(), Path(path).expanduser().resolve()
    if not p.is_relative_to(r):
        raise AddbenchError(f"{what} {path} resolves to {p}, outside {r}; use a safe name (no '..' or '/')")
    return p


def writable_dir(path: str | os.PathLike, flag: str) -> Path:
    """A folder that exists and is writable, or one that can be created (its nearest existing parent is a
    writable folder). Creates nothing."""
    p = Path(path).expanduser()
    if "\x00" in str(p):
        raise fail(flag, str(p), "a folder path", "it holds a NUL character")
    probe = p
    while not probe.exists():
        if probe.is_symlink():  # a dangling link
            raise AddbenchError(f"{flag} {path}: {probe} is a broken symlink; pass a folder")
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise AddbenchError(f"{flag} {path}: not a folder ({probe} is a file); pass a folder path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise AddbenchError(f"{flag} {path}: {probe} is not writable; pass a folder you can write to")
    return p


def writable_file(path: str | os.PathLike, flag: str, suffixes: Iterable[str] = ()) -> Path:
    """An output file path: not a folder, its folder writable (or creatable), with one of ``suffixes``."""
    p = Path(path).expanduser()
    suffixes = tuple(suffixes)
    if p.is_dir() or str(path).endswith(os.sep):
        raise AddbenchError(f"{flag} {path}: is a folder; pass a file path")
    if suffixes and p.suffix.lower() not in suffixes:
        raise fail(flag, str(path), f"a file name ending in {' or '.join(suffixes)}")
    writable_dir(p.parent, flag)
    if p.exists() and not os.access(p, os.W_OK):
        raise AddbenchError(f"{flag} {path}: not writable; pass a file you can write to")
    return p


def existing(path: str | os.PathLike, flag: str, kind: str = "any") -> Path:
    """An existing file (``kind='file'``), folder (``'dir'``) or either."""
    p = Path(path).expanduser()
    if not p.exists():
        raise AddbenchError(f"{flag} {path}: does not exist")
    if kind == "file" and not p.is_file():
        raise AddbenchError(f"{flag} {path}: is not a file")
    if kind == "dir" and not p.is_dir():
        raise AddbenchError(f"{flag} {path}: is not a folder")
    return p


DEVICE = re.compile(r"(cpu|auto|cuda|mps)(:\d+)?")


def device_available(device: str | None, flag: str = "--device") -> str | None:
    """``auto``, ``cpu``, ``cuda[:N]`` (a GPU must be there) or ``mps``; None passes (the default)."""
    if device is None:
        return None
    m = DEVICE.fullmatch(str(device).strip())
    if not m:
        raise fail(flag, device, "cpu, cuda, cuda:N or auto")
    kind, index = m.group(1), m.group(2)
    if kind in ("cpu", "auto"):
        if index:
            raise fail(flag, device, "cpu, cuda, cuda:N or auto")
        return device
    import torch

    if kind == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise AddbenchError(f"{flag} {device}: no CUDA GPU is available here; use --device cpu (or auto)")
        if index and int(index[1:]) >= n:
            raise AddbenchError(f"{flag} {device}: only {n} CUDA GPU(s) here (cuda:0..cuda:{n - 1})")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise AddbenchError(f"{flag} {device}: MPS is not available here; use --device cpu (or auto)")
    return device


DTYPES = ("fp32", "fp16", "bf16")


def dtype_name(dtype: str | None, flag: str = "--dtype") -> str | None:
    """fp32 | fp16 | bf16 (or the torch spellings float32, float16, bfloat16); None passes."""
    if dtype is None:
        return None
    from addbench.suites import canonical_dtype

    try:
        return canonical_dtype(dtype)
    except (AddbenchError, ValueError, KeyError):
        raise fail(flag, dtype, "one of " + ", ".join(DTYPES)) from None


SEED_MAX = 2**63 - 1


def seeds(values: Iterable, flag: str = "--seeds") -> list[int]:
    out = [int_at_least(s, 0, flag, "seeds are integers in [0, 2^63)", maximum=SEED_MAX) for s in values]
    if not out:
        raise fail(flag, "", "at least one integer seed, e.g. 0,1")
    return out
