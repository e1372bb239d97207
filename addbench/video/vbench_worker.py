"""Runs *inside* the VBench environment (``addbench env vbench``), never in addbench's own.

It imports only the standard library and vbench, so it is started by path:
``ENV/bin/python vbench_worker.py probe|evaluate REQUEST.json RESULT.json``. The request and result are
JSON files; VBench's own printing goes to stdout/stderr (addbench sends them to a log file).

Downloads are refused: VBench fetches its weights with ``wget``/``git clone``/``urlretrieve`` the first time
a dimension needs them. A guard replaces those calls and stops with the file VBench wanted and its URL,
so a missing weight becomes one line for the user instead of a network error.

probe    -> {"vbench_version", "libraries", "python", "full_info", "cache_dir",
             "dimensions": {dim: {"missing": [{"path", "url"}], "import_error": str|None,
                                  "unavailable": str|None}},
             "static_filter": {"missing": [...]}}
evaluate -> {"results": {dim: [score, per_video]}} or {"error": {"kind": "missing_weights", "dimension",
             "path", "url"} | {"kind": "exception", "dimension", "message"}}
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import traceback
import urllib.request
from pathlib import Path

DIMENSIONS = ("subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
              "dynamic_degree", "aesthetic_quality", "imaging_quality", "object_class", "multiple_objects",
              "human_action", "color", "spatial_relationship", "scene", "appearance_style", "temporal_style",
              "overall_consistency")
DETECTRON2 = ("object_class", "multiple_objects", "color", "spatial_relationship")  # vbench.third_party.grit_model


class MissingWeights(Exception):
    def __init__(self, path: str, url: str | None):
        super().__init__(path)
        self.path, self.url = path, url


def _wget_target(cmd: list[str]) -> tuple[str, str | None]:
    url = next((c for c in cmd if c.startswith(("http://", "https://"))), None)
    folder = cmd[cmd.index("-P") + 1] if "-P" in cmd else "."
    name = url.split("?")[0].rstrip("/").rsplit("/", 1)[-1] if url else "?"
    if name == "models.zip":  # RAFT: VBench unzips it into raft_model/models/
        return os.path.join(folder, "models", "raft-things.pth"), url
    return os.path.join(folder, name), url


_RECORD: list | None = None  # probe: collect every refused download and go on; evaluate: stop at the first


def _refuse_run(cmd, *args, **kwargs):
    cmd = list(cmd) if not isinstance(cmd, str) else cmd.split()
    missing = None
    if cmd and cmd[0] == "wget":
        missing = MissingWeights(*_wget_target(cmd))
    elif cmd[:2] == ["git", "clone"]:
        missing = MissingWeights(cmd[-1], cmd[2] if len(cmd) > 3 else None)
    elif _RECORD is not None and cmd and cmd[0] in ("unzip", "rm"):
        return subprocess.CompletedProcess(cmd, 0)  # the follow-up of a refused download
    if missing is None:
        return _real_run(cmd, *args, **kwargs)
    if _RECORD is None:
        raise missing
    _RECORD.append({"path": missing.path, "url": missing.url})
    return subprocess.CompletedProcess(cmd, 0)


def _refuse_urlretrieve(url, filename=None, *args, **kwargs):
    raise MissingWeights(str(filename or url.rsplit("/", 1)[-1]), url)


_real_run = subprocess.run


def guard() -> None:
    """No downloads from here on: wget / git clone / urlretrieve / torch.hub URLs raise MissingWeights."""
    subprocess.run = _refuse_run
    urllib.request.urlretrieve = _refuse_urlretrieve
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import torch.hub

        def refuse_url(url, *a, **k):
            name = url.split("?")[0].rsplit("/", 1)[-1]
            raise MissingWeights(os.path.join(torch.hub.get_dir(), "checkpoints", name), url)
        torch.hub.load_state_dict_from_url = refuse_url
        torch.hub.download_url_to_file = lambda url, dst, *a, **k: (_ for _ in ()).throw(MissingWeights(dst, url))
    except ImportError:
        pass


def _hf_cached(repo: str, filename: str) -> bool:
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    hub = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    snaps = Path(hub) / f"models--{repo.replace('/', '--')}" / "snapshots"
    return any((s / filename).exists() for s in snaps.glob("*")) if snaps.is_dir() else False


RAFT_URL = "https://dl.dropboxusercontent.com/s/4j4z58wuv8o0mfz/models.zip"


def static_filter_weights(cache: str) -> list[dict]:
    """RAFT, for the static filter that picks temporal_flickering's videos."""
    path = os.path.join(cache, "raft_model", "models", "raft-things.pth")
    return [] if os.path.isfile(path) else [{"path": path, "url": RAFT_URL}]


def extra_weights(dim: str, cache: str) -> list[dict]:
    """Files a dimension fetches later than ``init_submodules`` (inside its compute function)."""
    out = []
    if dim == "aesthetic_quality":
        p = os.path.join(cache, "aesthetic_model", "emb_reader", "sa_0_4_vit_l_14_linear.pth")
        out.append({"path": p, "url": "https://github.com/LAION-AI/aesthetic-predictor/blob/main/sa_0_4_vit_l_14_linear.pth?raw=true"})
    if dim in ("temporal_style", "overall_consistency"):
        p = os.path.join(cache, "ViCLIP", "bpe_simple_vocab_16e6.txt.gz")
        out.append({"path": p, "url": "https://raw.githubusercontent.com/openai/CLIP/main/clip/bpe_simple_vocab_16e6.txt.gz"})
    if dim == "scene" and not (_hf_cached("bert-base-uncased", "vocab.txt") and _hf_cached("bert-base-uncased", "config.json")):
        return [{"path": "huggingface cache: bert-base-uncased (vocab.txt, config.json)",
                 "url": "https://huggingface.co/bert-base-uncased"}]
    return [w for w in out if not os.path.exists(w["path"])]


def _import_error(dim: str) -> str | None:
    try:
        importlib.import_module(f"vbench.{dim}")
    except MissingWeights:  # ViCLIP's tokenizer is fetched at import; extra_weights reports it
        return None
    except ImportError as exc:
        return f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a module that breaks on import is as unusable as a missing one
        return f"{type(exc).__name__}: {exc}"
    return None


def probe(req: dict) -> dict:
    import vbench.utils as vu
    from importlib import metadata

    global _RECORD
    guard()
    cache = vu.CACHE_DIR
    dims = {}
    for dim in req.get("dimensions") or DIMENSIONS:
        info: dict = {"missing": [], "import_error": None, "unavailable": None}
        if dim in DETECTRON2 and importlib.util.find_spec("detectron2") is None:
            info["unavailable"] = "needs detectron2 (GRiT), which is not on PyPI: build it from source into this environment"
        _RECORD = info["missing"]
        try:
            vu.init_submodules([dim], local=True)
        finally:
            _RECORD = None
        info["missing"] += extra_weights(dim, cache)
        if req.get("imports", True) and not info["unavailable"]:
            info["import_error"] = _import_error(dim)
        dims[dim] = info
    versions = {}
    for lib in ("vbench", "torch", "numpy", "transformers", "timm"):
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    return {"vbench_version": versions.pop("vbench"), "libraries": versions, "python": sys.version.split()[0],
            "full_info": str(Path(vu.__file__).parent / "VBench_full_info.json"), "cache_dir": cache,
            "dimensions": dims, "static_filter": {"missing": static_filter_weights(cache)}}


def _static_filter(videos: str, out_dir: str, prompts: list[str], device: str, per_prompt: int) -> dict:
    """VBench's static filter (vbench/cli/static_filter.py) on the temporal_flickering prompts: of each
    prompt's videos (in index order) the first ``per_prompt`` static ones are copied to
    ``out_dir/{prompt}-{n}.mp4``. Returns {prompt: [original video index of each kept one]}."""
    import vbench.cli.static_filter as sf
    from easydict import EasyDict
    from vbench.utils import CACHE_DIR

    model = os.path.join(CACHE_DIR, "raft_model", "models", "raft-things.pth")
    if not os.path.isfile(model):
        raise MissingWeights(model, RAFT_URL)
    sf.DEVICE = device
    filt = sf.StaticFilter(EasyDict(model=model, small=False, mixed_precision=False, alternate_corr=False), device)
    os.makedirs(out_dir, exist_ok=True)
    kept: dict[str, list[int]] = {}
    for prompt in prompts:
        kept[prompt], i = [], 0
        while len(kept[prompt]) < per_prompt and os.path.exists(src := os.path.join(videos, f"{prompt}-{i}.mp4")):
            if filt.infer(src):
                shutil.copyfile(src, os.path.join(out_dir, f"{prompt}-{len(kept[prompt])}.mp4"))
                kept[prompt].append(i)
            i += 1
    return kept


def evaluate(req: dict) -> dict:
    from vbench import VBench

    guard()
    out = Path(req["work_dir"])
    out.mkdir(parents=True, exist_ok=True)
    bench = VBench(req["device"], req["full_info"], str(out))
    results, filtered = {}, None
    for dim in req["dimensions"]:
        # temporal_flickering without the static filter scores other videos: cached under its own name
        name = f"{dim}_unfiltered" if dim == "temporal_flickering" and not req.get("static_filter") else dim
        done = out / f"{name}_eval_results.json"
        try:
            if not done.exists():
                videos = req["videos"]
                if dim == "temporal_flickering" and req.get("static_filter"):
                    fdir = out / "static_filtered"
                    shutil.rmtree(fdir, ignore_errors=True)
                    kept = _static_filter(videos, str(fdir), req["static_filter_prompts"], req["device"], 5)
                    (out / "static_filter_kept.json").write_text(json.dumps(kept))
                    videos = str(fdir)
                bench.evaluate(videos_path=videos, name=name, dimension_list=[dim], local=True, mode="vbench_standard")
            results[dim] = json.loads(done.read_text())[dim]
        except MissingWeights as m:
            return {"error": {"kind": "missing_weights", "dimension": dim, "path": m.path, "url": m.url}}
        except Exception as exc:
            traceback.print_exc()
            return {"error": {"kind": "exception", "dimension": dim, "message": f"{type(exc).__name__}: {exc}"}}
    kept_file = out / "static_filter_kept.json"
    if "temporal_flickering" in results and req.get("static_filter") and kept_file.exists():
        filtered = json.loads(kept_file.read_text())
    return {"results": results, "static_filter_kept": filtered}


def main(argv: list[str]) -> int:
    cmd, req_path, res_path = argv
    req = json.loads(Path(req_path).read_text())
    if req.get("cache_dir"):
        os.environ["VBENCH_CACHE_DIR"] = req["cache_dir"]  # read by vbench.utils at import
    res = {"probe": probe, "evaluate": evaluate}[cmd](req)
    tmp = res_path + ".tmp"
    Path(tmp).write_text(json.dumps(res, default=float))
    os.replace(tmp, res_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
