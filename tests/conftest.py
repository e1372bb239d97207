"""Test-wide settings: nothing may reach a hub; caches live in a per-session temp dir."""
import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
if "ADDBENCH_CACHE" not in os.environ:  # ours: removed when the session ends (each run left ~300 MB behind)
    os.environ["ADDBENCH_CACHE"] = tempfile.mkdtemp(prefix="addbench-test-cache-")
    atexit.register(shutil.rmtree, os.environ["ADDBENCH_CACHE"], ignore_errors=True)


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(Path(__file__).parent) not in sys.path:  # shared test helpers (tests/cli_errors.py) import from every folder
    sys.path.insert(0, str(Path(__file__).parent))
ONE_THREAD_DIRS = ("gmm", "train", "video")  # tiny networks: one intra-op thread is faster on a busy 2-core machine


@pytest.fixture(autouse=True)
def _one_thread(request):
    """torch on one thread for the tests under ``ONE_THREAD_DIRS`` (restored after each test)."""
    if Path(str(request.node.path)).parent.name not in ONE_THREAD_DIRS:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark("train_sdxl")``: the script ``benchmarks/<name>.py`` as a module (imported once)."""

    def load(name: str):
        key = f"_addbench_bench_{name}"
        if key not in sys.modules:  # registered before it runs: its dataclasses look their module up
            spec = importlib.util.spec_from_file_location(key, BENCHMARKS / f"{name}.py")
            mod = importlib.util.module_from_spec(spec)
            sys.modules[key] = mod
            spec.loader.exec_module(mod)
        return sys.modules[key]

    return load


@pytest.fixture
def headless_chromium():
    """``headless_chromium(width, height)``: a Selenium driver of Debian's chromium (quit after the test). Fails,
    never skips, when chromium or chromedriver is missing (.ci/run installs both)."""
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers = []

    def start(width: int = 1280, height: int = 900):
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        driver_path = shutil.which("chromedriver")
        if not binary or not driver_path:
            pytest.fail("this test needs headless Chromium and its driver: apt-get install -y "
                        "--no-install-recommends chromium chromium-driver (as root; .ci/run does it)")
        opts = webdriver.ChromeOptions()
        opts.binary_location = binary
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    f"--window-size={width},{height}", "--disable-extensions", "--no-first-run", "--hide-scrollbars"):
            opts.add_argument(arg)
        drivers.append(webdriver.Chrome(service=Service(driver_path), options=opts))
        return drivers[-1]

    yield start
    for d in drivers:
        d.quit()
