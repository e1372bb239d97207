"""Prompt sets: deterministic builders from the official file formats, cached as JSONL with a sha256.

``addbench prompts build SUITE --from FILE`` reads the official file, checks its structure and counts
(and its sha256 when the suite pins ``source_sha256``), applies the suite's selection rule and writes
``$ADDBENCH_CACHE/prompts/<prompt-set>.jsonl`` (default cache ``~/.cache/addbench``) plus a
``.meta.json`` with the hashes. Each JSONL line is ``{"index", "prompt", "source_id", "category"}``
serialised with sorted keys; the prompt-set sha256 is the sha256 of those bytes.

Selection rules (``selection.rule`` in the suite):

* ``first_images`` (COCO): image ids sorted ascending, the first ``n`` (all when n is null).
* ``random_images`` (COCO): ``numpy.random.default_rng(seed).permutation`` over the sorted image ids,
  keep the first ``n``, then sort those by image id.
  For both COCO rules the caption is the image's caption with the smallest annotation id
  (``caption: first``) or one drawn with the same generator (``caption: random``).
* ``all`` (PartiPrompts: file order, each line split on tabs with no quote handling, so quotes stay;
  HPDv2: styles in alphabetical order, each in file order).
* ``first`` with ``n``: the first n prompts of ``all``.

Captions are normalised by collapsing whitespace (newlines included) and stripping.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from addbench.errors import AddbenchError
from addbench.suites import PromptSpec, Suite, load_suite, list_suites
from addbench.validate import inside, safe_name

HPDV2_STYLES = ("anime", "concept-art", "paintings", "photo")
PARTI_COLUMNS = ("Prompt", "Category", "Challenge", "Note")


@dataclass(frozen=True)
class PromptSet:
    name: str
    records: tuple[dict, ...]  # {"index", "prompt", "source_id", "category"}
    sha256: str

    @property
    def prompts(self) -> list[str]:
        return [r["prompt"] for r in self.records]

    def __len__(self) -> int:
        return len(self.records)


def cache_dir() -> Path:
    from addbench.cache import addbench_cache

    return addbench_cache() / "prompts"


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()


def _jsonl_bytes(records: list[dict]) -> bytes:
    return b"".join(json.dumps(r, sort_keys=True, ensure_ascii=False).encode() + b"\n" for r in records)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _make(name: str, rows: list[tuple[str, object, str | None]]) -> PromptSet:
    records = [{"index": i, "prompt": _clean(p), "source_id": sid, "category": cat}
               for i, (p, sid, cat) in enumerate(rows)]
    return PromptSet(name, tuple(records), hashlib.sha256(_jsonl_bytes(records)).hexdigest())


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _where(spec: PromptSpec) -> str:
    return f"download {spec.source or 'the official file'} from {spec.source_url}" if spec.source_url else \
        f"use the official {spec.source or 'file'}"


def _refuse(spec: PromptSpec, path: Path, what: str) -> AddbenchError:
    return AddbenchError(f"{path} is not a valid source for prompt set {spec.name!r}: {what}; {_where(spec)}")


# ---- official formats -> rows (prompt, source_id, category) -----------------------------------------
def _read_coco(spec: PromptSpec, path: Path) -> list[tuple[str, object, str | None]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _refuse(spec, path, f"not readable COCO captions JSON ({type(exc).__name__}), maybe truncated") from None
    anns = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(anns, list) or not anns or not all(
            isinstance(a, dict) and "image_id" in a and isinstance(a.get("caption"), str) for a in anns):
        raise _refuse(spec, path, "expected a JSON object whose 'annotations' list holds {image_id, id, caption}")
    by_image: dict[int, list[tuple[int, str]]] = {}
    seen_ids: set[int] = set()
    for j, a in enumerate(anns):
        image_id, ann_id = a["image_id"], a.get("id", j)
        for key, v in (("image_id", image_id), ("id", ann_id)):
            if not _is_int(v):
                raise _refuse(spec, path, f"annotation {j} has {key} {v!r}, expected an integer")
        if ann_id in seen_ids:
            raise _refuse(spec, path, f"annotation id {ann_id} appears twice (annotation {j}); ids must be unique")
        seen_ids.add(ann_id)
        if not a["caption"].strip():
            raise _refuse(spec, path, f"annotation {ann_id} has an empty caption")
        by_image.setdefault(image_id, []).append((ann_id, a["caption"]))
    exp = spec.expected
    if "annotations" in exp and len(anns) != exp["annotations"]:
        raise _refuse(spec, path, f"{len(anns)} annotations, expected {exp['annotations']}")
    if "images" in exp and len(by_image) != exp["images"]:
        raise _refuse(spec, path, f"captions for {len(by_image)} images, expected {exp['images']}")
    sel = spec.selection
    rule, n = sel.get("rule", "first_images"), sel.get("n")
    ids = sorted(by_image)
    rng = np.random.default_rng(sel.get("seed", 0))
    if rule == "first_images":
        chosen = ids[:n] if n else ids
    elif rule == "random_images":
        if n is None or n > len(ids):
            raise _refuse(spec, path, f"random_images needs n <= {len(ids)} images, suite asks for {n}")
        chosen = sorted(ids[i] for i in rng.permutation(len(ids))[:n])
    else:
        raise AddbenchError(f"prompt set {spec.name!r}: unknown COCO selection rule {rule!r} (first_images | random_images)")
    if n and len(chosen) < n:
        raise _refuse(spec, path, f"only {len(chosen)} images, the suite selects {n}")
    how = sel.get("caption", "first")
    rows = []
    for image_id in chosen:
        caps = sorted(by_image[image_id])
        cap = caps[0][1] if how == "first" else caps[int(rng.integers(len(caps)))][1]
        rows.append((cap, image_id, None))
    return rows


def _read_parti(spec: PromptSpec, path: Path) -> list[tuple[str, object, str | None]]:
    """PartiPrompts.tsv: tab-separated, one prompt per line, no quoting or escaping of any kind. Its prompts
    contain double quotes (row 1560 starts with one: ``"G I G G L E" painted in ...``), which a csv reader
    would take for field quoting and drop, so lines are split on tabs and every character is kept."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise _refuse(spec, path, f"not a readable TSV ({type(exc).__name__})") from None
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
    header = tuple(lines[0].split("\t")) if lines and lines[0] else ()
    if header[:4] != PARTI_COLUMNS:
        raise _refuse(spec, path, f"expected TSV columns {', '.join(PARTI_COLUMNS)}, got {', '.join(header) or 'none'}")
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line:  # blank lines (the final newline) are no rows
            continue
        fields = line.split("\t")
        if len(fields) > len(header):
            raise _refuse(spec, path, f"line {lineno} has {len(fields)} tab-separated fields, the header {len(header)}")
        if len(fields) < len(header):
            raise _refuse(spec, path, f"line {lineno} has {len(fields)} tab-separated fields, the header "
                                      f"{len(header)} (a row cut short: truncated file?)")
        rows.append(dict(zip(header, fields)))
    if any(not (r.get("Prompt") or "").strip() for r in rows):
        raise _refuse(spec, path, "a row has an empty Prompt (truncated file?)")
    if "rows" in spec.expected and len(rows) != spec.expected["rows"]:
        raise _refuse(spec, path, f"{len(rows)} prompts, expected {spec.expected['rows']}")
    return [(r["Prompt"], i, r.get("Category")) for i, r in enumerate(rows)]


def _read_hpdv2(spec: PromptSpec, path: Path) -> list[tuple[str, object, str | None]]:
    styles: dict[str, list] = {}
    try:
        if path.is_dir():
            for style in HPDV2_STYLES:
                f = path / f"{style}.json"
                if not f.exists():
                    raise _refuse(spec, path, f"missing {f.name} (expected {', '.join(s + '.json' for s in HPDV2_STYLES)})")
                styles[style] = json.loads(f.read_text())
        else:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise _refuse(spec, path, "expected a JSON object {style: [prompts]} or the benchmark folder")
            styles = data
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _refuse(spec, path, f"not readable HPDv2 benchmark JSON ({type(exc).__name__}), maybe truncated") from None
    if sorted(styles) != sorted(HPDV2_STYLES):
        raise _refuse(spec, path, f"styles {', '.join(sorted(styles))}, expected {', '.join(HPDV2_STYLES)}")
    want = spec.expected.get("styles", {})
    rows = []
    for style in sorted(styles):
        prompts = styles[style]
        if not isinstance(prompts, list) or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise _refuse(spec, path, f"style {style!r} must be a list of non-empty strings")
        if style in want and len(prompts) != want[style]:
            raise _refuse(spec, path, f"style {style!r} has {len(prompts)} prompts, expected {want[style]}")
        rows += [(p, f"{style}/{i}", style) for i, p in enumerate(prompts)]
    return rows


READERS = {"coco_captions": _read_coco, "parti_tsv": _read_parti, "hpdv2_json": _read_hpdv2}


def _apply_first(spec: PromptSpec, rows: list) -> list:
    sel = spec.selection
    if sel.get("rule") == "first":
        return rows[: sel.get("n")]
    return rows


def build_prompt_set(spec: PromptSpec, source: str | Path) -> PromptSet:
    """Read the official file, validate it, apply the selection rule and write the JSONL cache."""
    if not spec.needs_build:
        raise AddbenchError(f"prompt set {spec.name!r} ({spec.format}) is defined in the suite; nothing to build")
    path = Path(source).expanduser()
    if not path.exists():
        raise AddbenchError(f"source file {path} does not exist; {_where(spec)}")
    if path.is_dir() and spec.format != "hpdv2_json":
        raise _refuse(spec, path, "a folder, expected a file")
    src_sha = file_sha256(path)
    if spec.source_sha256 and src_sha != spec.source_sha256:
        raise _refuse(spec, path, f"sha256 {src_sha[:16]}..., expected {spec.source_sha256}")
    pset = _make(spec.name, _apply_first(spec, READERS[spec.format](spec, path)))
    if spec.sha256 and pset.sha256 != spec.sha256:
        raise _refuse(spec, path, f"built prompt-set sha256 {pset.sha256[:16]}..., the suite pins {spec.sha256}")
    _check_records(spec, path, pset)
    out = cache_dir()
    target = out / f"{safe_name(spec.name, 'prompts.name')}.jsonl"
    inside(out, target, f"prompt set {spec.name!r}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AddbenchError(f"cannot create the prompt cache {out} ({exc.strerror}); set ADDBENCH_CACHE to a "
                            "writable folder") from None
    meta = {"name": spec.name, "sha256": pset.sha256, "count": len(pset), "source": str(path.resolve()),
            "source_sha256": src_sha, "format": spec.format, "selection": spec.selection}
    # built into a tmp file and read back; only a set that passes every check replaces the cached one
    data = _jsonl_bytes(list(pset.records))
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        _write_synced(tmp, data)
        back = tmp.read_bytes()
        if back != data or hashlib.sha256(back).hexdigest() != pset.sha256:
            raise AddbenchError(f"{tmp} did not read back as written; the cached prompt set was left unchanged")
        _check_records(spec, path, PromptSet(spec.name, _parse_jsonl(tmp, back), pset.sha256))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _atomic_write(out / f"{spec.name}.meta.json", json.dumps(meta, indent=2).encode())
    return pset


def _check_records(spec: PromptSpec, path: Path, pset: PromptSet) -> None:
    """Every record well-formed (index = position, non-empty prompt, source ids unique) and the count the suite
    expects after selection (when it says one)."""
    ids = set()
    for i, r in enumerate(pset.records):
        if not isinstance(r, dict) or r.get("index") != i or not isinstance(r.get("prompt"), str) \
                or not r["prompt"].strip():
            raise _refuse(spec, path, f"row {i} is malformed or has an empty prompt")
        sid = json.dumps(r.get("source_id"))
        if sid in ids:
            raise _refuse(spec, path, f"source id {r.get('source_id')!r} appears twice; ids must be unique")
        ids.add(sid)
    if not pset.records:
        raise _refuse(spec, path, "no prompts")
    n = spec.selection.get("n")
    if isinstance(n, int) and spec.selection.get("rule") in ("first_images", "random_images") and len(pset) != n:
        raise _refuse(spec, path, f"{len(pset)} prompts after selection, the suite selects {n}")


def _parse_jsonl(path: Path, data: bytes) -> tuple[dict, ...]:
    try:
        text = data.decode("utf-8")
        if text and not text.endswith("\n"):
            raise ValueError("the last line is incomplete")
        return tuple(json.loads(line) for line in text.splitlines() if line)
    except (UnicodeDecodeError, ValueError) as exc:
        raise AddbenchError(f"{path} is not a valid prompt-set JSONL ({exc}); rebuild it with "
                            "`addbench prompts build SUITE --from FILE`") from None


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    _write_synced(tmp, data)
    os.replace(tmp, path)


def _from_cache(spec: PromptSpec, suite_name: str) -> PromptSet:
    path = inside(cache_dir(), cache_dir() / f"{safe_name(spec.name, 'prompts.name')}.jsonl",
                  f"prompt set {spec.name!r}")
    if not path.exists():
        raise AddbenchError(f"prompt set {spec.name!r} is not built; {_where(spec)} and run "
                            f"`addbench prompts build {suite_name} --from {spec.source or 'FILE'}`")
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if spec.sha256 and sha != spec.sha256:
        raise AddbenchError(f"cached prompt set {path} has sha256 {sha[:16]}..., the suite pins {spec.sha256}; "
                            f"rebuild it with `addbench prompts build {suite_name} --from FILE`")
    records = _parse_jsonl(path, data)
    if not all(isinstance(r, dict) and isinstance(r.get("prompt"), str) for r in records):
        raise AddbenchError(f"{path} has a row without a prompt; rebuild it with "
                            f"`addbench prompts build {suite_name} --from FILE`")
    return PromptSet(spec.name, records, sha)


def _defined(spec: PromptSpec) -> PromptSet:
    if spec.format == "inline":
        return _make(spec.name, [(p, i, None) for i, p in enumerate(spec.items or ())])
    if spec.format == "text":
        path = Path(spec.base_dir) / spec.path
        if not path.exists():
            raise AddbenchError(f"prompt file {path} does not exist (prompts.path of set {spec.name!r})")
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        return _make(spec.name, _apply_first(spec, [(p, i, None) for i, p in enumerate(lines)]))
    module, _, attr = spec.target.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise AddbenchError(f"prompt set {spec.name!r}: cannot import {spec.target} ({exc})") from None
    rows = []
    for i, item in enumerate(fn(**spec.kwargs)):
        if isinstance(item, dict):
            rows.append((item["prompt"], item.get("source_id", i), item.get("category")))
        else:
            rows.append((str(item), i, None))
    return _make(spec.name, _apply_first(spec, rows))


def load_prompts(suite: Suite) -> PromptSet:
    """The suite's prompt set: built from the cache for official formats, else from the suite itself."""
    spec = suite.prompts
    pset = _from_cache(spec, suite.name) if spec.needs_build else _defined(spec)
    if not spec.needs_build and spec.sha256 and pset.sha256 != spec.sha256:
        raise AddbenchError(f"prompt set {spec.name!r} has sha256 {pset.sha256[:16]}..., the suite pins {spec.sha256}")
    if len(pset) == 0:
        raise AddbenchError(f"prompt set {spec.name!r} is empty")
    return pset


def resolve_prompt_spec(name: str) -> tuple[str, PromptSpec]:
    """NAME of `addbench prompts build`: a suite name/path, or a prompt-set name used by a suite."""
    if name in list_suites() or name.endswith((".yaml", ".yml")):
        s = load_suite(name)
        return s.name, s.prompts
    for sname in list_suites():
        try:
            s = load_suite(sname)
        except AddbenchError:
            continue
        if s.prompts.name == name:
            return s.name, s.prompts
    raise AddbenchError(f"no suite or prompt set named {name!r}; known suites: {', '.join(list_suites())}")
