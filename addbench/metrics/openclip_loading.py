"""Load open_clip models from local files only (never downloads).

Accepted model specs, all going through ``open_clip.create_model_and_transforms``:

* ``model="local-dir:/path"``: a folder with ``open_clip_config.json`` and a weights file
  (``open_clip_model.safetensors``, ``*.bin``, ``*.pth``); ``pretrained`` is ignored. The toy world's
  tiny CLIP ships like this.
* ``model="hf-hub:org/repo"``: resolved to its snapshot folder in the local Hugging Face cache
  (``HF_HOME`` / ``HF_HUB_CACHE`` respected) and loaded as ``local-dir:``; nothing is fetched.
* ``model="ViT-g-14", pretrained="laion2b_s34b_b88k"``: a built-in architecture with a pretrained tag;
  the tag's weights file must already be in the Hugging Face cache (or open_clip's URL cache). The
  tag's preprocessing (mean/std) is kept.
* ``model="ViT-g-14", pretrained="/path/to/weights.safetensors"``: a built-in architecture with a file.

Anything missing raises :class:`AddbenchError` naming the file, where it was looked for and how to get it.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from addbench.errors import AddbenchError

_WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pth", "*.pt")


@dataclass
class OpenClipBundle:
    model: torch.nn.Module
    preprocess: object  # open_clip's eval transform (PIL image -> normalised tensor)
    tokenizer: object
    image_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    id: str  # "model/pretrained" or the schema spec, for metric ids


def _check_local_dir(path: Path, spec: str) -> None:
    if not (path / "open_clip_config.json").is_file():
        raise AddbenchError(f"open_clip model {spec!r}: {path / 'open_clip_config.json'} not found; "
                            "a local-dir model needs open_clip_config.json and a weights file in that folder")
    if not any(p for g in _WEIGHT_GLOBS for p in path.glob(g)):
        raise AddbenchError(f"open_clip model {spec!r}: no weights file (open_clip_model.safetensors, *.bin, *.pth) "
                            f"in {path}; save the model's state_dict there")


def _hf_cached(repo: str, filename: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id=repo, filename=filename)
    return path if isinstance(path, str) and os.path.isfile(path) else None


def _hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def resolve(model: str, pretrained: str | None) -> tuple[str, str | None, dict]:
    """Map a user spec to (model_name, pretrained_file_or_None, extra create kwargs), all local."""
    if model.startswith("local-dir:"):
        path = Path(model[len("local-dir:"):]).expanduser()
        if not path.is_dir():
            raise AddbenchError(f"open_clip model {model!r}: folder {path} not found")
        _check_local_dir(path, model)
        return f"local-dir:{path}", None, {}
    if model.startswith("hf-hub:"):
        repo = model[len("hf-hub:"):]
        config = _hf_cached(repo, "open_clip_config.json")
        if config is None:
            raise AddbenchError(f"open_clip model {model!r}: open_clip_config.json of {repo} is not in the Hugging Face "
                                f"cache {_hf_cache_dir()}; run `huggingface-cli download {repo}` where there is network")
        snapshot = Path(config).parent
        _check_local_dir(snapshot, model)
        return f"local-dir:{snapshot}", None, {}
    if not pretrained:
        raise AddbenchError(f"open_clip model {model!r}: give pretrained=<tag or weights file> (random weights refused)")
    if os.path.isfile(os.path.expanduser(pretrained)):
        return model, os.path.expanduser(pretrained), {}
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(model, pretrained)
    if not cfg:
        raise AddbenchError(f"open_clip: {pretrained!r} is neither a file nor a known tag of {model!r} "
                            f"(tags: {', '.join(open_clip.list_pretrained_tags_by_model(model)) or 'none'})")
    extra = {}
    if "mean" in cfg:
        extra["image_mean"] = tuple(cfg["mean"])
    if "std" in cfg:
        extra["image_std"] = tuple(cfg["std"])
    if cfg.get("hf_hub"):
        from open_clip.constants import HF_WEIGHTS_NAME
        from open_clip.pretrained import _get_safe_alternatives

        repo, filename = os.path.split(cfg["hf_hub"])
        filename = filename or HF_WEIGHTS_NAME
        for name in [*_get_safe_alternatives(filename), filename]:  # open_clip's own preference order
            found = _hf_cached(repo, name)
            if found:
                return model, found, extra
        raise AddbenchError(f"open_clip {model}/{pretrained}: weights {repo}/{filename} (or its .safetensors) not in the "
                            f"Hugging Face cache {_hf_cache_dir()}; run `huggingface-cli download {repo}` where there is "
                            "network, or pass pretrained=<local weights file>")
    url = cfg.get("url", "")
    local = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
    if url and local.is_file():
        return model, str(local), extra
    raise AddbenchError(f"open_clip {model}/{pretrained}: weights file {local} not found; download {url} there "
                        "or pass pretrained=<local weights file>")


def weight_files(model: str, pretrained: str | None) -> list[Path]:
    """The weights file(s) ``load_open_clip(model, pretrained)`` reads (for provenance hashing; loads nothing)."""
    name, weights, _ = resolve(model, pretrained)
    if name.startswith("local-dir:"):
        folder = Path(name[len("local-dir:"):])
        return sorted(p for g in _WEIGHT_GLOBS for p in folder.glob(g))
    return [Path(weights)] if weights else []


def built_on(device: str | torch.device):
    """Context in which modules are built directly on a CUDA ``device`` (random init there takes a fraction of
    the CPU time; the weights loaded afterwards overwrite it). Thread-local, a no-op for the CPU."""
    dev = torch.device(device)
    return torch.device(dev) if dev.type == "cuda" else contextlib.nullcontext()


def load_open_clip(model: str, pretrained: str | None = None, device: str | torch.device = "cpu",
                   precision: str = "fp32") -> OpenClipBundle:
    """Create an open_clip model + eval transform + tokenizer from local files (see module docstring)."""
    import open_clip

    name, weights, extra = resolve(model, pretrained)
    with built_on(device):
        clip, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=weights, device=device, precision=precision, **extra)
    clip.eval().requires_grad_(False)
    cfg = getattr(clip.visual, "preprocess_cfg", {}) or {}
    size = clip.visual.image_size
    size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    mean = tuple(extra.get("image_mean", cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)))
    std = tuple(extra.get("image_std", cfg.get("std", open_clip.OPENAI_DATASET_STD)))
    ident = _identity(model, pretrained, name)
    return OpenClipBundle(clip, preprocess, open_clip.get_tokenizer(name), size, mean, std, ident)


def _identity(model: str, pretrained: str | None, resolved: str) -> str:
    """Metric-id name of a backbone: no machine paths, so ids compare across machines.

    A ``local-dir:`` model is named by its folder name and the sha256 of its weights (first 8 hex digits).
    """
    if model.startswith("local-dir:"):
        import hashlib

        folder = Path(resolved[len("local-dir:"):])
        weights = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth"))
        h = hashlib.sha256()
        for w in weights:
            h.update(w.read_bytes())
        return f"local-dir:{folder.name}@{h.hexdigest()[:8]}"
    if model.startswith("hf-hub:") or not pretrained:
        return model
    return f"{model}/{os.path.basename(pretrained)}" if os.sep in str(pretrained) else f"{model}/{pretrained}"
