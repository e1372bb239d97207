"""Networks, optimisers and EMA as one sharded ``torch.distributed.checkpoint`` (DCP), loadable at any world size.

``<state>/dcp/`` holds what each rank owns (under FSDP2 its shards, with one process everything) in safetensors
files written by DCP's HuggingFace storage: ``shard-0000<r+1>-model-00001-of-00001.safetensors``, whose JSON
headers hold each tensor's offsets in the whole tensor. DCP reads them back at any world size and reshards by those
offsets. Keys: ``net/<net>/<param>``, ``ema/<param>``, ``optim/<net>/...`` (each optimiser's state dict keyed by
parameter name, :func:`torch.distributed.checkpoint.state_dict.get_optimizer_state_dict`).

Only tensors go to DCP. The rest of each optimiser's state dict (param groups: lr, betas, ...; the nesting of its
state) goes to ``state.json``, with every tensor replaced by its key (:func:`split`, :func:`join`).

No file here is a pickle. DCP's default storage (``FileSystemWriter``) is not used: its ``.metadata`` file is read
with ``pickle.load`` and its non-tensor values with ``torch.load(weights_only=False)``, both of which run code.
"""
from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from addbench.errors import AddbenchError
from addbench.train.parallel import DistContext

DIR = "dcp"
SKELETON = "state.json"


def _options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=False)  # DTensor shards under FSDP2, the tensors themselves otherwise


# ---- state dicts <-> (tensors, JSON) ------------------------------------------------------------------------

def split(obj, key: str, tensors: dict[str, torch.Tensor]):
    """``obj`` as JSON data, each tensor moved into ``tensors`` under ``key/...`` and replaced by that key. Dicts
    keep their key types and tuples stay tuples (:func:`join` rebuilds ``obj`` exactly)."""
    if isinstance(obj, torch.Tensor):
        tensors[key] = obj
        return {"@tensor": key}
    if isinstance(obj, dict):
        return {"@dict": [[k, split(v, f"{key}/{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [split(v, f"{key}/{i}", tensors) for i, v in enumerate(obj)]
        return {"@tuple": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise AddbenchError(f"{key}: a {type(obj).__name__} cannot go into a training state (tensors and plain data only)")


def join(skeleton, tensors: dict[str, torch.Tensor]):
    """The object :func:`split` took apart."""
    if isinstance(skeleton, list):
        return [join(v, tensors) for v in skeleton]
    if isinstance(skeleton, dict):
        if "@tensor" in skeleton:
            return tensors[skeleton["@tensor"]]
        if "@tuple" in skeleton:
            return tuple(join(v, tensors) for v in skeleton["@tuple"])
        return {k: join(v, tensors) for k, v in skeleton["@dict"]}
    return skeleton


def tensor_keys(skeleton) -> list[str]:
    """The tensor keys a skeleton of :func:`split` refers to."""
    if isinstance(skeleton, dict) and "@tensor" in skeleton:
        return [skeleton["@tensor"]]
    if isinstance(skeleton, dict):
        skeleton = skeleton["@tuple"] if "@tuple" in skeleton else [v for _, v in skeleton["@dict"]]
    return [k for v in skeleton for k in tensor_keys(v)] if isinstance(skeleton, list) else []


# ---- the live state ------------------------------------------------------------------------------------------

def _optim_state(net: nn.Module, opt) -> dict:
    """A torch optimiser's state dict keyed by parameter name (collective under FSDP2; a fresh optimiser's state is
    made by a step at lr 0); :class:`addbench.train.optim.MasterAdamW` (one process only) its own."""
    if isinstance(opt, torch.optim.Optimizer):
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(net, opt, options=_options())
    return opt.state_dict()


def live_state(nets: dict[str, nn.Module], opts: dict, ema) -> tuple[dict[str, torch.Tensor], dict]:
    """(every tensor of the train state by key, the optimisers' JSON skeletons). The tensors are the networks'
    parameters, the EMA shadows and the optimiser states themselves, not copies."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    tensors: dict[str, torch.Tensor] = {}
    for name, net in nets.items():
        tensors.update({f"net/{name}/{k}": v for k, v in get_model_state_dict(net, options=_options()).items()})
    skeleton = {"optim": {name: split(_optim_state(nets[name], opt), f"optim/{name}", tensors)
                          for name, opt in opts.items()}}
    if ema is not None:
        tensors.update({f"ema/{n}": t for n, t in ema.shadow.items()})
    return tensors, skeleton


@contextlib.contextmanager
def _quiet():
    """DCP warns that it runs in a single process even when asked to (``no_dist=True``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
        yield


# ---- save / load -----------------------------------------------------------------------------------------------

def save(state_dir: Path, *, nets: dict[str, nn.Module], opts: dict, ema, ctx: DistContext,
         background: bool = False):
    """Every rank writes its part of the train state into ``state_dir/dcp`` (collective); returns (the skeleton that
    rank 0 writes to ``state.json``, None), or with ``background`` (the skeleton, a future of the write): the tensors
    are staged (copied to host memory) before this returns, so training may change them while the write goes on."""
    import torch.distributed.checkpoint as dcp

    tensors, skeleton = live_state(nets, opts, ema)
    writer = dcp.HuggingFaceStorageWriter(str(Path(state_dir) / DIR), save_distributed=True)
    with _quiet():
        if not background:
            dcp.save(tensors, storage_writer=writer, no_dist=not ctx.distributed)
            return skeleton, None
        staged = {k: v.detach().to("cpu", copy=True) for k, v in tensors.items()}  # our own copy: no aliasing
        return skeleton, dcp.async_save(staged, storage_writer=writer, no_dist=not ctx.distributed,
                                        process_group=_writer_group() if ctx.distributed else None)


_GROUP: list = []


def _writer_group():
    """A gloo process group of its own for the background writes: their collectives (DCP's save plan) run in another
    thread while training's run on the default group, and two threads on one group interleave their messages
    (measured: gloo aborts). Made on the first background save, which every rank reaches together."""
    import torch.distributed as dist

    if not _GROUP:
        _GROUP.append(dist.new_group(backend="gloo"))
    return _GROUP[0]


def saved_tensors(state_dir: Path) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """key -> (whole shape, dtype) of every tensor in ``state_dir/dcp``, read from the safetensors headers."""
    import torch.distributed.checkpoint as dcp

    md = dcp.HuggingFaceStorageReader(str(Path(state_dir) / DIR)).read_metadata().state_dict_metadata
    return {k: (tuple(m.size), m.properties.dtype) for k, m in md.items()}


def read_skeleton(state_dir: Path, saved: dict) -> dict:
    """``state_dir/state.json``, checked: an ``optim`` entry per network whose tensors are all in ``saved``."""
    try:
        skeleton = json.loads((Path(state_dir) / SKELETON).read_text())
        keys = [k for sk in skeleton["optim"].values() for k in tensor_keys(sk)]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise AddbenchError(f"{SKELETON}: not a training state's optimiser skeleton") from None
    lost = [k for k in keys if k not in saved]
    if lost:
        raise AddbenchError(f"{SKELETON} refers to {lost[0]}, which {DIR}/ does not hold")
    return skeleton


def load(state_dir: Path, skeleton: dict, saved: dict, *, nets: dict[str, nn.Module], opts: dict, ema,
         ctx: DistContext) -> None:
    """Load the train state at ``state_dir`` into ``nets``, ``opts`` and ``ema`` at this world size (collective).
    ``saved``: :func:`saved_tensors`. Every tensor is checked against what was saved before anything changes."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    live, _ = live_state(nets, opts, ema)
    missing = sorted(set(opts) - set(skeleton.get("optim", {})))
    if missing:
        raise AddbenchError(f"{SKELETON} holds no optimiser state for {', '.join(missing)}")
    wanted = [k for k in live if k.startswith("net/")]
    if ema is not None and any(k.startswith("ema/") for k in saved):
        wanted += [k for k in live if k.startswith("ema/")]
    wanted += [k for name in opts for k in tensor_keys(skeleton["optim"][name])]
    targets = {}
    for key in wanted:
        if key not in saved:
            raise AddbenchError(f"{DIR}: no tensor {key}")
        shape, dtype = saved[key]
        if key in live:
            t = live[key]
            if tuple(t.shape) != shape or t.dtype != dtype:
                raise AddbenchError(f"{DIR}: {key} is {list(shape)} {dtype}, this run's is {list(t.shape)} {t.dtype}")
            targets[key] = t
        else:  # state this run has not made yet (MasterAdamW's moments before its first step): one process, whole
            targets[key] = torch.empty(shape, dtype=dtype)
    with _quiet():
        dcp.load(targets, storage_reader=dcp.HuggingFaceStorageReader(str(Path(state_dir) / DIR)),
                 no_dist=not ctx.distributed)
    for name, net in nets.items():
        prefix = f"net/{name}/"
        set_model_state_dict(net, {k[len(prefix):]: v for k, v in targets.items() if k.startswith(prefix)},
                             options=_options())
    for name, opt in opts.items():
        sd = join(skeleton["optim"][name], targets)
        if isinstance(opt, torch.optim.Optimizer):
            set_optimizer_state_dict(nets[name], opt, sd, options=_options())
        else:
            opt.load_state_dict(sd)
    # the EMA shadows were targets themselves: loaded in place
