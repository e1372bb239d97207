"""Training state on disk: resume = run the same command again.

``<run>/state/step_000001200/`` holds, in either layout (``save_state(layout=...)``):

- ``rng_rank<r>.safetensors`` (torch CPU and CUDA generator states, uint8) and ``rng_rank<r>.json`` (python
  ``random`` and numpy states as numbers);
- ``meta.json``: step, images seen, world size, config hash, layout;
- ``manifest.json``: every other file with its sha256 and size, written last.

Layout ``files`` (one file per kind, gathered to rank 0):

- ``networks.safetensors``: every trainable network, keys ``<net>/<param>``; ``ema.safetensors``: the EMA shadows;
- ``optim.pt``: the full optimiser state dicts (tensors, numbers, lists), read back with
  ``torch.load(weights_only=True)``, which rebuilds tensors and plain containers and refuses anything else.

Layout ``dcp`` (sharded, every rank writes its own part; :mod:`addbench.train.dcp_state`):

- ``dcp/shard-*.safetensors``: networks, EMA and optimiser tensors through ``torch.distributed.checkpoint``,
  loadable at another world size;
- ``state.json``: the optimisers' param groups and the nesting of their state, tensors replaced by their keys.

A state is written to ``.tmp_step_*``; its files are fsynced, then the manifest is written, then the directory is
renamed. The manifest names the layout, so a run resumes from either (a ``dcp`` state at any world size). A state
whose manifest is missing or does not verify is incomplete or damaged: :func:`restore` tries the kept states newest
first and resumes from the first that verifies and loads, with one line on stderr per state it skips. States of the
previous format (pickled ``rng_rank<r>.pt``, no manifest) are refused, never unpickled. The
last ``keep`` states are kept. Layout ``files`` under FSDP2 gathers the full state dicts to rank 0, which writes them.
At the end :func:`export_student` writes the addbench checkpoint directory of DESIGN.md.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from addbench.bases.hashing import read_sha256
from addbench.errors import AddbenchError
from addbench.train.parallel import DistContext, barrier

_WRAP_PREFIXES = ("_checkpoint_wrapped_module.", "_orig_mod.", "_fsdp_wrapped_module.", "module.")
STATE_FORMAT = "addbench-train-state/2"  # layout files
DCP_FORMAT = "addbench-train-state/dcp-1"  # layout dcp
LAYOUTS = {"files": STATE_FORMAT, "dcp": DCP_FORMAT}
REQUIRED = {STATE_FORMAT: ("meta.json", "networks.safetensors", "optim.pt"), DCP_FORMAT: ("meta.json", "state.json")}
MANIFEST = "manifest.json"
OLD_FORMAT = "old state format: pickled .pt files, no manifest.json"


def clean_key(k: str) -> str:
    for p in _WRAP_PREFIXES:
        k = k.replace(p, "")
    return k


# ---- EMA ------------------------------------------------------------------------------------------

class EMA:
    """Exponential moving average of a network's parameters (works on FSDP2-sharded parameters). The shadows are
    fp32 whatever the network's dtype: a bf16 shadow would not move by (1 - decay) x a small difference."""

    def __init__(self, net: nn.Module, decay: float):
        self.decay = decay
        self.params = [(clean_key(n), p) for n, p in net.named_parameters()]
        self.shadow = {n: p.detach().float().clone() for n, p in self.params}

    @torch.no_grad()
    def update(self) -> None:
        pairs = [(self.shadow[n], p.detach()) for n, p in self.params]
        for i in range(0, len(pairs), 64):  # a bf16 network's fp32 copies 64 tensors at a time, not all at once
            chunk = pairs[i:i + 64]
            torch._foreach_lerp_([s for s, _ in chunk], [p.float() for _, p in chunk], 1 - self.decay)

    def full_state(self) -> dict[str, torch.Tensor]:
        return {n: (t.full_tensor() if hasattr(t, "full_tensor") else t).detach().cpu().clone()
                for n, t in self.shadow.items()}

    @torch.no_grad()
    def load_full_state(self, sd: dict[str, torch.Tensor]) -> None:
        for n, t in self.shadow.items():
            src = sd[n]
            if hasattr(t, "device_mesh"):
                from torch.distributed.tensor import distribute_tensor

                src = distribute_tensor(src.to(t.device), t.device_mesh, t.placements)
            t.copy_(src)


# ---- full state dicts (collective under FSDP2) -----------------------------------------------------

def _opts(ctx: DistContext, cpu_offload: bool = True):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=cpu_offload and ctx.distributed)


def model_state(net: nn.Module, ctx: DistContext) -> dict[str, torch.Tensor]:
    if not ctx.distributed:
        return {k: v.detach().cpu() for k, v in net.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(net, options=_opts(ctx))


# ---- random number generators: tensors + numbers, no pickle ------------------------------------------

def _rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """This process's generators: torch's (CPU, each CUDA device) as uint8 tensors, numpy's and python's as
    JSON numbers (python's floats round-trip exactly through ``repr``)."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda:{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    numbers = {"numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
               "python": [version, list(internal), py_gauss]}
    return tensors, numbers


def _set_rng_state(tensors: dict[str, torch.Tensor], numbers: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    kind, keys, pos, has_gauss, gauss = numbers["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(gauss)))
    version, internal, py_gauss = numbers["python"]
    random.setstate((version, tuple(internal), py_gauss))
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda:")), key=lambda k: int(k[5:]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


# ---- manifest ---------------------------------------------------------------------------------------

def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _state_files(state_dir: Path) -> list[str]:
    """The files of a state: its own, and those in its ``dcp/`` folder as ``dcp/<name>``."""
    from addbench.train.dcp_state import DIR

    own = [q.name for q in state_dir.iterdir() if q.is_file() and q.name != MANIFEST]
    sub = state_dir / DIR
    return sorted(own + ([f"{DIR}/{q.name}" for q in sub.iterdir() if q.is_file()] if sub.is_dir() else []))


def write_manifest(state_dir: Path) -> None:
    """fsync every file of ``state_dir`` (and of its ``dcp/``), then write ``manifest.json`` (sha256 and bytes of
    each; the format of the layout, ``dcp`` when there is a ``dcp/`` folder) and fsync it."""
    state_dir = Path(state_dir)
    fmt = DCP_FORMAT if (state_dir / "dcp").is_dir() else STATE_FORMAT
    files = {}
    for name in _state_files(state_dir):
        p = state_dir / name
        _fsync(p)
        files[name] = {"sha256": read_sha256(p), "bytes": p.stat().st_size}
    if (state_dir / "dcp").is_dir():
        _fsync_dir(state_dir / "dcp")
    (state_dir / MANIFEST).write_text(json.dumps({"format": fmt, "files": files}, indent=1))
    _fsync(state_dir / MANIFEST)
    _fsync_dir(state_dir)


def _fsync_dir(path: Path) -> None:
    """Make a directory's entries (new files, a rename) durable; a no-op where the OS cannot fsync a directory."""
    try:
        _fsync(path)
    except OSError:
        pass


def _manifest_files(state_dir: Path) -> dict:
    return json.loads((state_dir / MANIFEST).read_text())["files"]


def verify_state(state_dir: Path) -> str | None:
    """None when ``state_dir``'s manifest verifies (every listed file there, with its size and sha256), else why
    not, in a few words."""
    state_dir = Path(state_dir)
    if not (state_dir / MANIFEST).is_file():
        return OLD_FORMAT if any(state_dir.glob("rng_rank*.pt")) else "no manifest.json: incomplete"
    try:
        manifest = json.loads((state_dir / MANIFEST).read_text())
        fmt, files = manifest["format"], manifest["files"]
        sizes = {str(name): int(e["bytes"]) for name, e in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return "manifest.json unreadable"
    if fmt not in REQUIRED:
        return f"manifest.json: unknown format {fmt!r}"
    for name in REQUIRED[fmt]:
        if name not in sizes:
            return f"manifest.json lists no {name}"
    if fmt == DCP_FORMAT:
        if not any(name.startswith("dcp/") for name in sizes):
            return "manifest.json lists no dcp/ file"
        extra = sorted(set(_state_files(state_dir)) - set(sizes))
        if any(name.startswith("dcp/") for name in extra):  # DCP reads every file there: none may be unlisted
            return f"{next(n for n in extra if n.startswith('dcp/'))}: not in manifest.json"
    for name, size in sorted(sizes.items()):  # sizes first: a truncated file is found without hashing anything
        path = state_dir / name
        folder, _, base = name.rpartition("/")
        if folder not in ("", "dcp") or "\\" in name or base.startswith(".") or not path.is_file():
            return f"{name}: missing"
        if path.stat().st_size != size:
            return f"{name}: {path.stat().st_size} bytes, manifest says {size}"
    for name in sorted(sizes):
        if read_sha256(state_dir / name) != files[name].get("sha256"):
            return f"{name}: sha256 mismatch"
    return None


def _state_dirs(run_dir: Path) -> list[Path]:
    root = Path(run_dir) / "state"
    return sorted(p for p in root.glob("step_*") if p.is_dir()) if root.is_dir() else []


def latest_state(run_dir: Path) -> Path | None:
    """The newest completed state directory (it has a manifest, or the previous format's ``meta.json``), not
    verified: what a run has kept, e.g. to know that its config may no longer change."""
    done = [p for p in _state_dirs(run_dir) if (p / MANIFEST).is_file() or (p / "meta.json").is_file()]
    return done[-1] if done else None


def state_images(state_dir: Path) -> int | None:
    """Images seen at ``state_dir`` (its ``meta.json``), None where that cannot be read."""
    try:
        return int(json.loads((Path(state_dir) / "meta.json").read_text())["images_seen"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ---- save -------------------------------------------------------------------------------------------

def save_state(run_dir: Path, *, step: int, images_seen: int, nets: dict[str, nn.Module],
               opts: dict[str, torch.optim.Optimizer], ema: EMA | None, config_hash: str,
               ctx: DistContext, keep: int = 2, info: dict | None = None, layout: str = "files",
               background: bool = False):
    """Write the state of ``step`` (collective: every rank calls it). ``layout``: ``files`` (gathered to rank 0)
    or ``dcp`` (sharded, :mod:`addbench.train.dcp_state`). A resume reads either; a ``dcp`` state at any world
    size, a ``files`` state at the one that wrote it. Returns the state's folder, or with ``background`` (``dcp``
    only) a :class:`PendingState` whose ``wait()`` (collective) finishes the write and publishes the folder: until
    then it is a ``.tmp_step_*`` folder that a resume does not see."""
    from safetensors.torch import save_file

    if layout not in LAYOUTS:
        raise AddbenchError(f"state layout {layout!r}; use {' or '.join(LAYOUTS)}")
    if background and layout != "dcp":
        raise AddbenchError("async_save=true needs state_layout=dcp (the files layout gathers the state to rank 0)")
    root = Path(run_dir) / "state"
    final = root / f"step_{step:09d}"
    tmp = root / f".tmp_step_{step:09d}"
    if ctx.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier(ctx)
    rng_tensors, rng_numbers = _rng_state()
    save_file(rng_tensors, str(tmp / f"rng_rank{ctx.rank}.safetensors"))
    (tmp / f"rng_rank{ctx.rank}.json").write_text(json.dumps(rng_numbers))
    barrier(ctx)  # every rank's RNG files are there before rank 0 lists them in the manifest
    meta = {"format": LAYOUTS[layout], "layout": layout, "step": step, "images_seen": images_seen,
            "world_size": ctx.world_size, "config_hash": config_hash, **(info or {})}
    if layout == "dcp":
        from addbench.train import dcp_state

        skeleton, future = dcp_state.save(tmp, nets=nets, opts=opts, ema=ema, ctx=ctx, background=background)
        pending = PendingState(future, tmp, final, Path(run_dir), keep, skeleton, meta, ctx)
        return pending if background else pending.wait()

    weights = {f"{name}/{k}": v for name, net in nets.items() for k, v in model_state(net, ctx).items()}
    optim = {}
    for name, opt in opts.items():
        if ctx.distributed:
            from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

            optim[name] = get_optimizer_state_dict(nets[name], opt, options=_opts(ctx))
        else:
            optim[name] = opt.state_dict()
    ema_sd = ema.full_state() if ema is not None else None
    if ctx.is_main:
        save_file({k: v.detach().clone().contiguous() for k, v in weights.items()}, str(tmp / "networks.safetensors"))
        if ema_sd is not None:
            save_file({k: v.contiguous() for k, v in ema_sd.items()}, str(tmp / "ema.safetensors"))
        torch.save(optim, tmp / "optim.pt")
        (tmp / "meta.json").write_text(json.dumps(meta))
        _publish(tmp, final, run_dir, keep)
    barrier(ctx)
    return final


class PendingState:
    """A ``dcp`` state being written: ``wait()`` (collective) waits for this rank's write, then rank 0 writes the
    skeleton and meta, the manifest last, and renames the folder to ``step_*``; returns that folder."""

    def __init__(self, future, tmp: Path, final: Path, run_dir: Path, keep: int, skeleton: dict, meta: dict, ctx):
        self.future, self.tmp, self.final, self.run_dir, self.keep = future, tmp, final, run_dir, keep
        self.skeleton, self.meta, self.ctx = skeleton, meta, ctx

    def wait(self) -> Path:
        from addbench.train import dcp_state

        if self.future is not None:
            self.future.result()  # raises what the background write raised
            self.future = None
        barrier(self.ctx)  # every rank's shards are written
        if self.ctx.is_main:
            (self.tmp / dcp_state.SKELETON).write_text(json.dumps(self.skeleton))
            (self.tmp / "meta.json").write_text(json.dumps(self.meta))
            _publish(self.tmp, self.final, self.run_dir, self.keep)
        barrier(self.ctx)
        return self.final


def _publish(tmp: Path, final: Path, run_dir: Path, keep: int) -> None:
    """Rank 0, every file written: manifest last, rename to ``final``, drop the states past it and the oldest."""
    write_manifest(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    for p in _state_dirs(run_dir):  # states past this one are from a timeline a resume fell back from
        if p.name > final.name:
            shutil.rmtree(p, ignore_errors=True)
    kept = _state_dirs(run_dir)
    for old in kept[: max(0, len(kept) - keep)]:
        shutil.rmtree(old, ignore_errors=True)


# ---- load -------------------------------------------------------------------------------------------

def _parsed(path: Path, load):
    """``load(path)``, or an AddbenchError naming the file and what is wrong with it."""
    import pickle

    try:
        return load(path)
    except pickle.UnpicklingError:
        raise AddbenchError(f"{path.name}: refused to unpickle (holds more than tensors and plain data)") from None
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:100]
        raise AddbenchError(f"{path.name}: {type(exc).__name__}{': ' + first if first else ''}") from None


def _json(path: Path):
    return json.loads(path.read_text())


def read_state(path: Path, *, rank: int = 0, world_size: int = 1) -> dict:
    """Everything one rank needs from the state at ``path``, parsed but not applied (a file that does not parse
    raises here, before any network changed). Only files the manifest lists are read; nothing is unpickled but
    tensors and plain data (``weights_only=True``)."""
    from safetensors.torch import load_file

    path = Path(path)
    manifest = _parsed(path / MANIFEST, _json)
    listed = manifest["files"]
    meta = _parsed(path / "meta.json", _json)
    try:
        meta["step"], meta["images_seen"] = int(meta["step"]), int(meta["images_seen"])
    except (KeyError, TypeError, ValueError):
        raise AddbenchError("meta.json: no integer step / images_seen") from None
    st = lambda p: load_file(str(p))  # noqa: E731
    if manifest.get("format") == DCP_FORMAT:  # the tensors are loaded by apply_state (collective), headers read here
        from addbench.train import dcp_state

        saved = _parsed(path / dcp_state.DIR, lambda p: dcp_state.saved_tensors(p.parent))
        out = {"meta": meta, "layout": "dcp", "path": path, "rng": None, "saved": saved,
               "skeleton": dcp_state.read_skeleton(path, saved)}
    else:
        out = {"meta": meta, "layout": "files", "weights": _parsed(path / "networks.safetensors", st),
               "optim": _parsed(path / "optim.pt", lambda p: torch.load(p, weights_only=True)), "ema": None,
               "rng": None}
        if "ema.safetensors" in listed:
            out["ema"] = _parsed(path / "ema.safetensors", st)
    rng = f"rng_rank{rank}"
    if meta.get("world_size", 1) == world_size and f"{rng}.safetensors" in listed and f"{rng}.json" in listed:
        out["rng"] = (_parsed(path / f"{rng}.safetensors", st), _parsed(path / f"{rng}.json", _json))
    return out


def apply_state(state: dict, *, nets: dict[str, nn.Module], opts: dict[str, torch.optim.Optimizer],
                ema: EMA | None, ctx: DistContext) -> dict:
    """Load what :func:`read_state` read into networks, optimisers, EMA and this rank's RNG; returns meta.
    Collective with several processes."""
    if state.get("layout") == "dcp":
        from addbench.train import dcp_state

        dcp_state.load(state["path"], state["skeleton"], state["saved"], nets=nets, opts=opts, ema=ema, ctx=ctx)
        if state["rng"] is not None:
            _set_rng_state(*state["rng"])
        return state["meta"]
    weights, optim = state["weights"], state["optim"]
    for name, net in nets.items():
        sd = {k.split("/", 1)[1]: v for k, v in weights.items() if k.split("/", 1)[0] == name}
        if ctx.distributed:
            from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

            set_model_state_dict(net, sd, options=_opts(ctx, cpu_offload=False))
            if name in opts:
                set_optimizer_state_dict(net, opts[name], optim[name], options=_opts(ctx, cpu_offload=False))
        else:
            net.load_state_dict(sd)
            if name in opts:
                opts[name].load_state_dict(optim[name])
    if ema is not None and state["ema"] is not None:
        ema.load_full_state(state["ema"])
    if state["rng"] is not None:
        _set_rng_state(*state["rng"])
    return state["meta"]


def load_state(path: Path, *, nets: dict[str, nn.Module], opts: dict[str, torch.optim.Optimizer],
               ema: EMA | None, ctx: DistContext) -> dict:
    """Restore networks, optimisers, EMA and this rank's RNG from one state (verified first); returns meta."""
    why = verify_state(path)
    if why is not None:
        raise AddbenchError(f"state {Path(path).name} cannot be loaded ({why})")
    return apply_state(read_state(path, rank=ctx.rank, world_size=ctx.world_size), nets=nets, opts=opts, ema=ema,
                       ctx=ctx)


def _pick(run_dir: Path, ctx: DistContext) -> tuple[Path | None, dict | None]:
    """Rank 0's walk over the kept states, newest first: the first that verifies and reads, and what it read."""
    root = Path(run_dir) / "state"
    skipped: list[tuple[str, str]] = []
    for path in reversed(_state_dirs(run_dir)):
        why = verify_state(path)
        if why is None:
            try:
                state = read_state(path, rank=ctx.rank, world_size=ctx.world_size)
            except AddbenchError as exc:  # a listed file that verifies but does not parse
                why = str(exc)
        if why is None:
            for name, reason in skipped:
                print(f"state {name} damaged ({reason}); resuming from {path.name}", file=sys.stderr, flush=True)
            return path, state
        skipped.append((path.name, why))
    if not skipped:
        return None, None
    if all(reason == OLD_FORMAT for _, reason in skipped):
        from addbench import __version__

        raise AddbenchError(f"{root} holds training state in the old format (pickled .pt files, no manifest.json), "
                            f"which addbench {__version__} does not unpickle; restart into a new --out, or finish "
                            "the run with the addbench commit that wrote it")
    detail = "; ".join(f"{name}: {reason}" for name, reason in skipped)
    raise AddbenchError(f"no intact training state in {root} ({detail}); delete {root} to start the run over, "
                        "or train into a new --out")


def restore(run_dir: Path, *, nets: dict[str, nn.Module], opts: dict[str, torch.optim.Optimizer],
            ema: EMA | None, ctx: DistContext) -> dict | None:
    """Resume from the newest kept state that verifies (:func:`verify_state`) and loads; meta, or None when the
    run has no state yet. Rank 0 picks the state; the others load the same one."""
    path, state, error = None, None, None
    if ctx.is_main:
        try:
            path, state = _pick(run_dir, ctx)
        except AddbenchError as exc:
            if not ctx.distributed:
                raise
            error = exc
    if ctx.distributed:  # every rank learns rank 0's pick (or its error) before any of them loads or fails
        import torch.distributed as dist

        box = [path.name if path is not None else None, str(error) if error is not None else None]
        dist.broadcast_object_list(box, src=0)
        if box[1] is not None:
            raise error if error is not None else AddbenchError(box[1])
        if box[0] is None:
            return None
        path = Path(run_dir) / "state" / box[0]
        if not ctx.is_main:
            try:
                state = read_state(path, rank=ctx.rank, world_size=ctx.world_size)
            except AddbenchError as exc:
                raise AddbenchError(f"rank {ctx.rank}: state {path.name} does not load ({exc})") from None
    if state is None:
        return None
    return apply_state(state, nets=nets, opts=opts, ema=ema, ctx=ctx)


# ---- export -----------------------------------------------------------------------------------------

def export_student(out: Path, *, network: nn.Module, sampler, base: str, distiller: str, config: dict) -> Path:
    """Write the addbench checkpoint directory (DESIGN.md) atomically (tmp dir + rename). Diffusers networks
    go through ``addbench.bases.checkpoint.save_checkpoint`` (``save_pretrained``, what ``addbench eval
    --model`` loads); other modules (tests, custom students) get ``network/model.safetensors``."""
    from safetensors.torch import save_file

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if hasattr(network, "save_pretrained"):
        from addbench.bases.checkpoint import save_checkpoint

        save_checkpoint(tmp, base, network, sampler, distiller, dict(config))
    else:
        (tmp / "network").mkdir(parents=True)
        sd = {clean_key(k): v.detach().cpu().clone().contiguous() for k, v in network.state_dict().items()}
        save_file(sd, str(tmp / "network" / "model.safetensors"))
        meta = {"format": "addbench-checkpoint/1", "base": base, "sampler": sampler.to_dict(),
                "distiller": distiller, "config": dict(config)}
        (tmp / "addbench_checkpoint.json").write_text(json.dumps(meta, indent=1, default=str))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out
