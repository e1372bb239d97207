"""Addbench checkpoint directories: ``addbench_checkpoint.json`` + ``network/`` (save_pretrained of the student)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from addbench.bases.interface import Base, Sampler
from addbench.errors import AddbenchError

FORMAT = "addbench-checkpoint/1"
META = "addbench_checkpoint.json"


def is_checkpoint(path: str | os.PathLike) -> bool:
    return (Path(path).expanduser() / META).is_file()


def save_checkpoint(out_dir: str | os.PathLike, base_name_or_path: str, network, sampler: Sampler,
                    distiller: str, config: dict) -> Path:
    """Write ``network.save_pretrained(out_dir/network)`` (safetensors) and the metadata JSON (atomically, last).

    ``base_name_or_path``: a registered base name, hub id or pipeline directory (stored absolute).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = str(base_name_or_path)
    if Path(base).expanduser().is_dir():
        base = str(Path(base).expanduser().resolve())
    network.save_pretrained(str(out / "network"), safe_serialization=True)
    meta = {"format": FORMAT, "base": base, "sampler": sampler.to_dict(), "distiller": distiller,
            "config": config}
    tmp = out / (META + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    os.replace(tmp, out / META)
    return out


def read_checkpoint_meta(ckpt_dir: str | os.PathLike) -> dict:
    ckpt = Path(ckpt_dir).expanduser()
    f = ckpt / META
    if not f.is_file():
        raise AddbenchError(f"{f} is missing; {ckpt} is not an addbench checkpoint directory")
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AddbenchError(f"{f} is not readable JSON ({type(exc).__name__}); the checkpoint is damaged: export it "
                            "again (run the training command again) or restore the file") from None
    if not isinstance(meta, dict):
        raise AddbenchError(f"{f} must hold a JSON object, got {type(meta).__name__}; export the checkpoint again")
    if meta.get("format") != FORMAT:
        raise AddbenchError(f"{f}: format {meta.get('format')!r} is not {FORMAT!r}; re-save with this addbench")
    if not (ckpt / "network").is_dir():
        raise AddbenchError(f"{ckpt / 'network'} is missing; the checkpoint has no student network weights")
    if not isinstance(meta.get("base"), str) or not meta["base"]:
        raise AddbenchError(f"{f}: 'base' must name the base model (a registered name or pipeline dir); "
                            "export the checkpoint again")
    if not isinstance(meta.get("sampler"), dict):
        raise AddbenchError(f"{f}: 'sampler' must be a JSON object; export the checkpoint again")
    return meta


def _sampler(meta: dict, f: Path) -> Sampler:
    from addbench import validate as V

    try:
        sampler = Sampler.from_dict(meta["sampler"])
        V.int_at_least(sampler.steps, 1, "sampler.steps")
        V.non_negative(sampler.guidance, "sampler.guidance")
    except (TypeError, ValueError, AddbenchError) as exc:
        raise AddbenchError(f"{f}: bad 'sampler' ({exc}); export the checkpoint again") from None
    return sampler


def load_checkpoint(ckpt_dir: str | os.PathLike, device=None, dtype=None) -> tuple[Base, Sampler, dict]:
    """(base with the student network swapped in, stored sampler, metadata)."""
    from addbench.bases.loading import load_base

    from addbench.bases.loading import check_model_files, loading

    meta = read_checkpoint_meta(ckpt_dir)
    sampler = _sampler(meta, Path(ckpt_dir).expanduser() / META)
    net_dir = Path(ckpt_dir).expanduser() / "network"
    check_model_files(net_dir)
    base = load_base(meta["base"], device=device, dtype=dtype)
    cls = type(base.network)
    with loading(net_dir, "the checkpoint's student network; export it again"):
        student = cls.from_pretrained(str(net_dir), torch_dtype=base.dtype)
    base.network = student.to(base.device).eval().requires_grad_(False)
    # the student samples on the schedule and parameterisation it was trained with (addbench/readout.py)
    from addbench.readout import Readout

    base.schedule = Readout.from_checkpoint(meta).schedule_for(base.schedule)
    return base, sampler, meta


def load(ckpt_dir: str | os.PathLike, device=None, dtype=None, sampler_overrides: dict | None = None):
    """The checkpoint as a ``Generator`` (same as ``load_generator(ckpt_dir)``)."""
    from addbench.bases.loading import load_generator

    return load_generator(ckpt_dir, device=device, dtype=dtype, sampler_overrides=sampler_overrides)
