"""The VBench prompt suite: prompts from ``VBench_full_info.json`` inside the vbench wheel, VBench's file naming.

The file has 946 entries (prompt, dimensions, auxiliary info) over 16 dimensions; 2 prompts appear twice
(for two dimensions each), so the prompt set holds 944 distinct prompts in file order, each with the
dimensions it serves (``category``: comma-separated). VBench finds a video by its name,
``{prompt}-{index}.mp4``: 5 videos per prompt (index 0-4), and 25 for the temporal_flickering prompts,
whose static ones VBench's static filter picks (the first 5 static videos become index 0-4).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from addbench.errors import AddbenchError

INFO_FILE = "VBench_full_info.json"


def full_info_path(path: str | None = None) -> Path:
    """The VBench_full_info.json shipped in the vbench env's wheel (or ``path``)."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise AddbenchError(f"{p} does not exist (VBench_full_info.json)")
        return p
    from addbench.video.env import clean_env, env_python, find_env

    env = find_env()
    code = ("import importlib.util as u, os; s = u.find_spec('vbench'); "
            f"print(os.path.join(s.submodule_search_locations[0], {INFO_FILE!r}) if s else '')")
    proc = subprocess.run([str(env_python(env)), "-c", code], capture_output=True, text=True, env=clean_env())
    out = Path(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None
    if out is None or not out.is_file():
        raise AddbenchError(f"the VBench env {env} has no vbench package ({INFO_FILE} not found); "
                            "rebuild it with `addbench env vbench --force`")
    return out


def load_full_info(path: str | Path | None = None) -> list[dict]:
    p = full_info_path(str(path) if path else None)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AddbenchError(f"{p} is not valid JSON ({exc.msg})") from None
    if not isinstance(data, list) or not all(isinstance(e, dict) and "prompt_en" in e and "dimension" in e for e in data):
        raise AddbenchError(f"{p} is not a VBench full-info file (a list of {{prompt_en, dimension}} entries)")
    return data


def full_info_prompts(path: str | None = None, entries: int | None = None) -> list[dict]:
    """Prompt-set rows for the suite (``format: python``): distinct prompts in file order with their dimensions."""
    data = load_full_info(path)
    if entries is not None and len(data) != entries:
        raise AddbenchError(f"VBench_full_info.json has {len(data)} entries, the suite expects {entries} "
                            "(another vbench version?)")
    rows: dict[str, dict] = {}
    for i, e in enumerate(data):
        row = rows.setdefault(e["prompt_en"], {"prompt": e["prompt_en"], "source_id": i, "dims": []})
        row["dims"] += [d for d in e["dimension"] if d not in row["dims"]]
    return [{"prompt": r["prompt"], "source_id": r["source_id"], "category": ",".join(r["dims"])} for r in rows.values()]


def video_name(prompt: str, index: int) -> str:
    return f"{prompt}-{index}.mp4"


def videos_per_prompt(dimensions: list[str], per_prompt: int, by_dimension: dict[str, int]) -> int:
    return max([per_prompt] + [by_dimension[d] for d in dimensions if d in by_dimension])


def run_full_info(full_info: list[dict], prompts: list[str]) -> list[dict]:
    """The entries of the full-info file whose prompt is in this run (all of them without --limit)."""
    keep = set(prompts)
    return [e for e in full_info if e["prompt_en"] in keep]
