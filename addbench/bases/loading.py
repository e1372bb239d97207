"""``load_generator`` / ``load_base``: a registered base name, a diffusers pipeline dir or hub id, or a checkpoint."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import struct
from pathlib import Path

from addbench.bases.components import is_hub_id, read_model_index, read_scheduler_config, resolve_pipeline_dir
from addbench.bases.interface import Base, Generator, Sampler
from addbench.errors import AddbenchError
from addbench.registry import BASES

PIPELINE_FAMILIES = {"StableDiffusionXLPipeline": "sdxl", "StableDiffusion3Pipeline": "sd3",
                     "CogVideoXPipeline": "cogvideox", "AddbenchToyPipeline": "toy"}  # StableDiffusionPipeline: sd15 / sd21 by prediction type


def _damaged(f: Path, what: str) -> AddbenchError:
    return AddbenchError(f"{f}: {what}; the model folder is damaged: copy or export it again")


def check_safetensors(f: Path) -> None:
    """The safetensors header parses and the file is as long as the header says (a truncated copy is refused)."""
    size = f.stat().st_size
    try:
        with open(f, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise _damaged(f, f"{size} bytes, too short for a safetensors file (truncated?)")
            n = struct.unpack("<Q", head)[0]
            if n > min(size - 8, 100 << 20):
                raise _damaged(f, "the safetensors header is longer than the file (truncated or not safetensors)")
            header = json.loads(fh.read(n).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(f, f"not a safetensors file ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise _damaged(f, "the safetensors header is not a JSON object")
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
            and isinstance(v.get("data_offsets"), list) and len(v["data_offsets"]) == 2]
    if 8 + n + max(ends, default=0) > size:
        raise _damaged(f, f"{size} bytes, the header says {8 + n + max(ends)} (truncated)")


def check_model_files(folder: Path, depth: int = 2) -> None:
    """Every ``*.json`` of a model folder (and its subfolders, ``depth`` deep) holds a JSON object and every
    ``*.safetensors`` is whole: damage is one line naming the file, not a traceback from deep inside a loader."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return
    for f in sorted(folder.iterdir()):
        if f.is_dir() and depth > 0 and not f.name.startswith("."):
            check_model_files(f, depth - 1)
        elif f.suffix == ".json" and f.is_file():
            try:
                data = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise _damaged(f, f"not readable JSON ({type(exc).__name__})") from None
            if not isinstance(data, dict):
                raise _damaged(f, f"must hold a JSON object, got {type(data).__name__}")
        elif f.suffix == ".safetensors" and f.is_file():
            check_safetensors(f)


@contextlib.contextmanager
def loading(path, fix: str):
    """Errors of third-party loaders (diffusers, transformers, safetensors) while reading ``path`` as one line."""
    try:
        yield
    except AddbenchError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError, ImportError) as exc:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            raise
        msg = " ".join(str(exc).split())[:200]
        raise AddbenchError(f"{path}: cannot load ({type(exc).__name__}: {msg}); {fix}") from None


def detect_family(pipeline_dir: Path) -> str:
    """Registered family name of a diffusers pipeline directory (from model_index.json ``_class_name``)."""
    cls = read_model_index(pipeline_dir).get("_class_name", "")
    if cls == "StableDiffusionPipeline":
        pred = read_scheduler_config(pipeline_dir).get("prediction_type", "epsilon")
        return "sd21" if pred == "v_prediction" else "sd15"
    if cls not in PIPELINE_FAMILIES:
        known = ", ".join(["StableDiffusionPipeline", *PIPELINE_FAMILIES])
        raise AddbenchError(f"{pipeline_dir / 'model_index.json'}: unsupported pipeline {cls!r}; supported: {known}")
    return PIPELINE_FAMILIES[cls]


def load_base(model: str | os.PathLike, device=None, dtype=None) -> Base:
    """A ``Base`` for a registered base name (its default weights) or a pipeline directory / hub id."""
    from addbench.bases.checkpoint import is_checkpoint

    s = str(model)
    if s in BASES:
        return BASES.get(s)(device=device, dtype=dtype)
    if is_checkpoint(s):
        raise AddbenchError(f"{s} is an addbench checkpoint, not a base; use load_generator or checkpoint.load_checkpoint")
    path = resolve_pipeline_dir(s)
    check_model_files(path)
    family = detect_family(path)
    with loading(path, "pass a whole diffusers pipeline folder (save_pretrained layout) of a supported family"):
        return BASES.get(family)(path, device=device, dtype=dtype)


def apply_overrides(sampler: Sampler, overrides: dict | None) -> Sampler:
    """``dataclasses.replace`` with validation; a new ``steps`` without ``timesteps`` drops stored timesteps."""
    if not overrides:
        return sampler
    unknown = set(overrides) - set(Sampler.__dataclass_fields__)
    if unknown:
        raise AddbenchError(f"unknown sampler option(s) {sorted(unknown)}; known: {sorted(Sampler.__dataclass_fields__)}")
    from addbench.config import check_sampler_overrides

    check_sampler_overrides(overrides)  # steps >= 1, finite guidance >= 0 (also for Python callers)
    ov = {k: v for k, v in overrides.items() if v is not None}
    if "steps" in ov and "timesteps" not in ov:
        ov["timesteps"] = None
    if ov.get("timesteps") is not None:
        ov["timesteps"] = tuple(float(t) for t in ov["timesteps"])
    return dataclasses.replace(sampler, **ov)


def load_generator(model: str | os.PathLike, device=None, dtype=None, sampler_overrides: dict | None = None,
                   micro_batch: int | None = None) -> Generator:
    """A ``Generator`` for ``model``: registered base name, pipeline dir / hub id, or addbench checkpoint dir.

    Resolution order: checkpoint dir (has addbench_checkpoint.json) > registered name > pipeline dir > hub id.
    """
    from addbench.bases.checkpoint import is_checkpoint, load_checkpoint
    from addbench.bases.hashing import model_hash
    from addbench.bases.sampling import DiffusionGenerator

    s = str(model)
    if is_checkpoint(s):
        base, sampler, meta = load_checkpoint(s, device=device, dtype=dtype)
        sampler = apply_overrides(sampler, sampler_overrides)
        files = sorted(p for p in (Path(s) / "network").iterdir() if p.suffix in (".safetensors", ".bin", ".json"))
        ckpt = Path(s).resolve()  # training exports RUN/checkpoint: name the model after its run
        name = ckpt.parent.name if ckpt.name == "checkpoint" else ckpt.name
        base_name = base.name
        extra = {"base": base_name, "base_source": str(meta.get("base")), "config": meta.get("config")}
    else:
        if not (s in BASES or Path(s).expanduser().is_dir() or is_hub_id(s)):
            raise AddbenchError(f"model {s!r} not found: not a registered base ({', '.join(BASES.names())}), "
                                f"a pipeline or checkpoint directory, or a hub id")
        base = load_base(s, device=device, dtype=dtype)
        sampler = apply_overrides(base.default_sampler, sampler_overrides)
        files = base.network_files()
        name, base_name = None, base.name
        extra = {"base": base_name}
    refusal = getattr(base, "no_generator", None)  # a base whose samples are not images says what to use instead
    if refusal:
        raise AddbenchError(refusal)
    gen = DiffusionGenerator(base, sampler, name=None, base_name=base_name, micro_batch=micro_batch)
    if name:
        gen.name = f"{name}@{gen.sampler.label}"
    gen.model_hash = model_hash(files, gen.sampler.to_dict(), extra)
    return gen
