"""The VBench environment: a separate venv that addbench creates (``addbench env vbench``) and calls.

vbench pins transformers 4.33, numpy<2 and timm<=1.0.12, which clash with addbench's own stack, so VBench
runs in its own venv as a subprocess (``vbench_worker.py``), never in addbench's.

Torch is never installed twice: the venv sees this interpreter's torch and torchvision (with their CUDA
libraries and other dependencies) through ``ENV/addbench-shared``, a folder of symlinks named in a ``.pth``
file, and every pip call runs with constraints that pin torch and torchvision to exactly those versions,
so no vbench dependency can pull another torch. The venv is made ``--without-pip``; this interpreter's
pip installs into it (``pip --python ENV/bin/python``).

Profiles:

* ``minimal`` -- vbench without its dependencies, plus what ``temporal_flickering`` (no weights) and the
  weight checks of every dimension need (numpy<2, opencv, decord). What CI builds.
* ``full`` -- vbench with every dependency it declares. The 4 dimensions built on GRiT
  (object_class, multiple_objects, color, spatial_relationship) also need detectron2, which is not on PyPI.

Where: ``$ADDBENCH_VBENCH_ENV`` if set, else ``~/.cache/addbench/envs/vbench-<profile>`` (``$ADDBENCH_CACHE``
moves ``~/.cache/addbench``); an existing full env is preferred over a minimal one.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from addbench.errors import AddbenchError

ENV_VAR = "ADDBENCH_VBENCH_ENV"
VBENCH = "vbench==0.1.5"
PROFILES = ("minimal", "full")
# vbench's own pins, plus what keeps its dependencies importable together
PINS = ("numpy<2", "transformers==4.33.2", "timm>=0.9,<=1.0.12", "opencv-python<4.12",
        "setuptools<81",  # openai-clip imports pkg_resources, gone from setuptools 81
        "pyiqa==0.1.10")  # later pyiqa releases need transformers>=5
MINIMAL = ("numpy<2", "opencv-python", "decord", "tqdm", "pillow", "pyyaml")
SHARED = ("torch", "torchvision")
NOT_SHARED = {"numpy", "pillow", "setuptools"}  # the env gets its own (vbench needs numpy<2)
WORKER = Path(__file__).with_name("vbench_worker.py")
STAMP = "addbench-env.json"


def cache_root() -> Path:
    from addbench.cache import addbench_cache

    return addbench_cache()


def default_env_dir(profile: str) -> Path:
    return cache_root() / "envs" / f"vbench-{profile}"


def env_python(env: Path) -> Path:
    return Path(env) / "bin" / "python"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def shared_distributions(names=SHARED, skip=NOT_SHARED) -> dict[str, metadata.Distribution]:
    """torch, torchvision and everything they need (extras followed), as installed here."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    marker_env = default_environment()
    found: dict[str, metadata.Distribution] = {}
    stack, seen = [(n, frozenset()) for n in names], set()
    while stack:
        name, extras = stack.pop()
        key = (_norm(name), extras)
        if key in seen or key[0] in skip:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[key[0]] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker and not any(req.marker.evaluate({**marker_env, "extra": e}) for e in (extras or {""})):
                continue
            stack.append((req.name, frozenset(req.extras)))
    return found


def _link_shared(env: Path) -> dict[str, str]:
    """ENV/addbench-shared: symlinks to the top-level files of the shared distributions; a .pth names it."""
    link = env / "addbench-shared"
    link.mkdir(exist_ok=True)
    versions = {}
    for name, dist in shared_distributions().items():
        versions[name] = dist.version
        root = Path(dist.locate_file(""))
        for top in {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            if top != "__pycache__" and (root / top).exists() and not (link / top).exists():
                (link / top).symlink_to(root / top)
    site = next((env / "lib").glob("python*/site-packages"))
    (site / "addbench-shared.pth").write_text(f"{link}\n")  # after site-packages: the env's own copies win
    return versions


def constraints(versions: dict[str, str]) -> str:
    lines = [f"{n}=={versions[n]}" for n in SHARED if n in versions]
    return "\n".join(lines + list(PINS)) + "\n"


def _pip(env: Path, args: list[str], log) -> None:
    cmd = [sys.executable, "-m", "pip", "--python", str(env_python(env)), "install",
           "--disable-pip-version-check", "-q", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip() and "WARNING" not in ln][-1:]
        raise AddbenchError(f"pip install into {env} failed ({' '.join(args[-3:])}): {tail[0] if tail else proc.returncode}")
    log(f"pip install {' '.join(a for a in args if a not in ('-c', '--no-deps') and not a.endswith('.txt'))}")


def create_env(profile: str = "minimal", path: Path | None = None, force: bool = False, log=print) -> Path:
    """Create (or reuse, if it works) the VBench env; returns its folder. Writes ENV/addbench-env.json."""
    if profile not in PROFILES:
        raise AddbenchError(f"unknown vbench env profile {profile!r}; use one of {', '.join(PROFILES)}")
    env = Path(path or default_env_dir(profile)).expanduser().absolute()
    stamp = env / STAMP
    if not force and stamp.exists() and json.loads(stamp.read_text()).get("profile") in (profile, "full") and works(env):
        log(f"{env}: already there ({json.loads(stamp.read_text())['profile']} profile)")
        return env
    t0 = time.time()
    if env.exists() and any(env.iterdir()):
        if not stamp.exists():
            raise AddbenchError(f"{env} exists and was not made by addbench; give another --path (nothing was deleted)")
        import shutil
        shutil.rmtree(env)
    env.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    versions = _link_shared(env)
    if "torch" not in versions:
        raise AddbenchError("this interpreter has no torch to share with the vbench env; install addbench first")
    cfile = env / "constraints.txt"
    cfile.write_text(constraints(versions))
    if profile == "minimal":
        _pip(env, ["-c", str(cfile), "--no-deps", VBENCH], log)
        _pip(env, ["-c", str(cfile), *MINIMAL], log)
    else:
        _pip(env, ["-c", str(cfile), VBENCH], log)
    if not works(env):
        raise AddbenchError(f"{env} was built but `import vbench, torch` fails there; rebuild with --force")
    info = {"profile": profile, "vbench": VBENCH, "torch": versions["torch"], "shared_from": sys.prefix,
            "seconds": round(time.time() - t0, 1), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    stamp.write_text(json.dumps(info, indent=2) + "\n")
    log(f"{env}: {profile} profile built in {info['seconds']} s (torch {versions['torch']} shared from {sys.prefix})")
    return env


def works(env: Path) -> bool:
    py = env_python(env)
    if not py.exists():
        return False
    proc = subprocess.run([str(py), "-c", "import importlib.util as u, torch; assert u.find_spec('vbench')"],
                          capture_output=True, env=clean_env())
    return proc.returncode == 0


def clean_env(extra: dict | None = None) -> dict:
    """Environment for subprocesses in the vbench env: no PYTHONPATH/PYTHONHOME from addbench's side."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(extra or {})
    return env


def find_env() -> Path:
    """The env to use: $ADDBENCH_VBENCH_ENV, else the default full env, else the default minimal one."""
    if os.environ.get(ENV_VAR):
        env = Path(os.environ[ENV_VAR]).expanduser()
        if not env_python(env).exists():
            raise AddbenchError(f"{ENV_VAR}={env} is not a Python environment; create it with "
                                f"`addbench env vbench --path {env}`")
        return env
    for profile in ("full", "minimal"):
        env = default_env_dir(profile)
        if env_python(env).exists():
            return env
    raise AddbenchError("no VBench environment; create one with `addbench env vbench --profile full` "
                        f"(or point {ENV_VAR} at one)")


@dataclass
class Probe:
    env: Path
    info: dict

    @property
    def dimensions(self) -> dict[str, dict]:
        return self.info["dimensions"]


def run_worker(env: Path, command: str, request: dict, work: Path, log_path: Path | None = None,
               extra_env: dict | None = None) -> dict:
    """Run vbench_worker.py COMMAND in the env; returns its JSON result. Output goes to ``log_path``."""
    work.mkdir(parents=True, exist_ok=True)
    req, res = work / f"{command}_request.json", work / f"{command}_result.json"
    req.write_text(json.dumps(request, indent=2))
    res.unlink(missing_ok=True)
    log_path = log_path or work / f"{command}.log"
    with open(log_path, "a") as log:
        proc = subprocess.run([str(env_python(env)), "-I", str(WORKER), command, str(req), str(res)], stdout=log,
                              stderr=subprocess.STDOUT, env=clean_env(extra_env), cwd=work)
    if proc.returncode != 0 or not res.exists():
        lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
        raise AddbenchError(f"VBench worker ({command}) failed in {env}: {lines[-1] if lines else proc.returncode} "
                            f"(full log: {log_path})")
    return json.loads(res.read_text())


def probe(env: Path | None = None, dimensions: list[str] | None = None, cache_dir: str | None = None,
          work: Path | None = None) -> Probe:
    """What the env can run: per dimension, missing weights, import errors and permanent unavailability;
    and whether VBench's static filter (temporal_flickering's protocol; RAFT weights) can run."""
    import tempfile

    env = Path(env) if env else find_env()
    request = {"dimensions": dimensions, "cache_dir": cache_dir}
    if work is None:
        with tempfile.TemporaryDirectory(prefix="addbench-vbench-") as tmp:
            return Probe(env, run_worker(env, "probe", request, Path(tmp)))
    return Probe(env, run_worker(env, "probe", request, work))


def availability_lines(p: Probe) -> list[str]:
    """One line per dimension: runs / needs weights / needs packages / unavailable."""
    out = []
    for dim, d in p.dimensions.items():
        if d["unavailable"]:
            state = f"unavailable: {d['unavailable']}"
        elif d["import_error"]:
            state = f"needs packages ({d['import_error']}): `addbench env vbench --profile full`"
        elif d["missing"]:
            state = f"needs weights: {d['missing'][0]['path']}" + (f" (+{len(d['missing']) - 1} more)" if len(d["missing"]) > 1 else "")
        else:
            state = "runs"
        out.append(f"{dim:24s} {state}")
    sf = p.info.get("static_filter", {}).get("missing")
    out.append(f"{'(static filter)':24s} " + (f"needs weights: {sf[0]['path']} (temporal_flickering then runs only "
                                              "with --metric vbench.static_filter=false)" if sf else "runs"))
    return out
