"""addbench.bases.compile_cache: a second process compiling the same graph loads it from the cache folder."""
import json
import subprocess
import sys
import textwrap

from addbench.bases.compile_cache import default_compile_cache

SCRIPT = textwrap.dedent("""
    import json, sys, time
    import torch
    from addbench.bases.compile_cache import use_compile_cache, cache_counters
    root = use_compile_cache(sys.argv[1])
    f = torch.compile(lambda x: (x.sin() * 2 + x.cos()).relu().sum(-1))
    x = torch.randn(8, 16)
    t0 = time.perf_counter()
    y = f(x)
    ok = torch.allclose(y, (x.sin() * 2 + x.cos()).relu().sum(-1), atol=1e-5)
    print(json.dumps({"root": str(root), "s": time.perf_counter() - t0, "ok": ok, **cache_counters()}))
""")


def _compile_in_new_process(folder) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(folder)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_hits_the_cache(tmp_path):
    import shutil

    # inductor's CPU backend compiles C++: .ci/run installs g++ where it is missing
    assert shutil.which("g++") or shutil.which("c++"), "install a C++ compiler (apt-get install g++) for torch.compile on CPU"
    first = _compile_in_new_process(tmp_path / "cache")
    assert first["ok"] and first["root"] == str((tmp_path / "cache").resolve())
    assert first["fx_graph_misses"] >= 1 and first["fx_graph_hits"] == 0
    assert any((tmp_path / "cache").rglob("*.py"))  # inductor's generated code landed in our folder
    second = _compile_in_new_process(tmp_path / "cache")
    assert second["ok"] and second["fx_graph_hits"] >= 1 and second["fx_graph_misses"] == 0
    assert second["aot_autograd_hits"] >= 1


def test_default_folder_follows_addbench_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ADDBENCH_CACHE", str(tmp_path))
    assert default_compile_cache() == tmp_path / "compile"


def test_freezing_note():
    from addbench.bases.compile_cache import freezing_note

    assert "AOTAutograd" in freezing_note((("coordinate_descent_tuning", True), ("freezing", True)))
    assert freezing_note((("freezing", False),)) is None and freezing_note(()) is None
