"""Resolve a diffusers pipeline directory or hub id and load its components with ``from_pretrained``."""
from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
from pathlib import Path

import torch

from addbench.errors import AddbenchError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(s: str) -> bool:
    return bool(HUB_ID.match(s)) and not Path(s).exists()


def resolve_pipeline_dir(source: str | os.PathLike) -> Path:
    """A local pipeline directory for ``source`` (a directory, or a hub id looked up in the HF cache).

    Hub ids go through ``DiffusionPipeline.download`` (the huggingface_hub cache); with
    ``HF_HUB_OFFLINE=1`` only the cache is used.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise AddbenchError(f"{path} has no model_index.json; pass a diffusers pipeline directory "
                                f"(save_pretrained layout), an addbench checkpoint or a registered base name")
        return path
    if not is_hub_id(str(source)):
        raise AddbenchError(f"model {str(source)!r} not found: no such directory, registered base or hub id")
    from diffusers import DiffusionPipeline

    try:
        local = DiffusionPipeline.download(str(source))
    except Exception as exc:  # noqa: BLE001 - any hub/cache failure is a user-facing "not available"
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        hint = "it is not in the HF cache and HF_HUB_OFFLINE is set" if offline else type(exc).__name__
        raise AddbenchError(f"cannot get hub model {source!r} ({hint}); download it with "
                            f"`huggingface-cli download {source}` or pass a local pipeline directory") from exc
    return Path(local)


def read_model_index(path: Path) -> dict:
    f = path / "model_index.json"
    if not f.is_file():
        raise AddbenchError(f"{f} is missing; pass a diffusers pipeline directory")
    return json.loads(f.read_text())


def read_scheduler_config(path: Path) -> dict:
    f = path / "scheduler" / "scheduler_config.json"
    if not f.is_file():
        raise AddbenchError(f"{f} is missing; the pipeline directory needs its scheduler/ config")
    return json.loads(f.read_text())


def component_class(index: dict, name: str):
    """The class model_index.json names for component ``name`` (None if absent or null)."""
    spec = index.get(name)
    if not spec or spec[0] is None or spec[1] is None:
        return None
    lib, cls_name = spec
    return getattr(importlib.import_module(lib), cls_name)


@contextlib.contextmanager
def quiet_progress():
    """No transformers "Loading weights" bar while a component loads: addbench reports its own progress, and an
    error must stay one line (docs/errors.md)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def load_component(path: Path, index: dict, name: str, required: bool = True, **kwargs):
    """``Class.from_pretrained(path, subfolder=name)`` for the class model_index.json lists."""
    cls = component_class(index, name)
    if cls is None:
        if required:
            raise AddbenchError(f"{path / 'model_index.json'} lists no {name!r} component; this family needs it")
        return None
    if not (path / name).is_dir():
        raise AddbenchError(f"{path / name} is missing; the pipeline directory needs its {name}/ folder")
    try:
        with quiet_progress():
            return cls.from_pretrained(str(path), subfolder=name, **kwargs)
    except (OSError, EnvironmentError) as exc:
        raise AddbenchError(f"cannot load {name} from {path / name}: {str(exc).splitlines()[0]}") from exc


def resolve_device(device) -> torch.device:
    """``None`` or ``"auto"``: cuda when there is a GPU, else cpu; anything else as given."""
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16}


def resolve_dtype(dtype, device: torch.device) -> torch.dtype:
    """fp32 on CPU, bf16 on GPU unless given (a torch.dtype or 'fp32' / 'bf16' / 'fp16')."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise AddbenchError(f"unknown dtype {dtype!r}; use one of fp32, bf16, fp16")
        return DTYPES[dtype]
    return dtype


def build_component(spec: dict):
    """A network from an ``architectures.json`` entry, random weights: ``{"class": "lib.Class", "kwargs": {...}}``
    or ``"lib.Model(Config(**kwargs))"`` for classes built from a config object."""
    lib, _, rest = spec["class"].partition(".")
    cls_name, _, cfg = rest.partition("(")
    cls = getattr(importlib.import_module(lib), cls_name)
    if cfg:  # "Model(Config(**kwargs))"
        config_cls = getattr(importlib.import_module(lib), cfg.split("(")[0])
        return cls(config_cls(**spec["kwargs"]))
    return cls(**spec["kwargs"])
