"""``load_generator`` / ``load_base``: a registered base name, a diffusers pipeline dir or hub id, or a checkpoint."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from addbench.bases.components import is_hub_id, read_model_index, read_scheduler_config, resolve_pipeline_dir
from addbench.bases.interface import Base, Generator, Sampler
from addbench.errors import AddbenchError
from addbench.registry import BASES

PIPELINE_FAMILIES = {"StableDiffusionXLPipeline": "sdxl", "StableDiffusion3Pipeline": "sd3",
                     "CogVideoXPipeline": "cogvideox", "AddbenchToyPipeline": "toy"}  # StableDiffusionPipeline: sd15 / sd21 by prediction type


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
    return BASES.get(detect_family(path))(path, device=device, dtype=dtype)


def apply_overrides(sampler: Sampler, overrides: dict | None) -> Sampler:
    """``dataclasses.replace`` with validation; a new ``steps`` without ``timesteps`` drops stored timesteps."""
    if not overrides:
        return sampler
    unknown = set(overrides) - set(Sampler.__dataclass_fields__)
    if unknown:
        raise AddbenchError(f"unknown sampler option(s) {sorted(unknown)}; known: {sorted(Sampler.__dataclass_fields__)}")
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
