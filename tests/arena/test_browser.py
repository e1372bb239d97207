"""End to end in headless Chromium: a rater votes with the keyboard (attention checks included), the server is
SIGKILLed mid-session and restarted, the rater continues; then the SQLite rows, the export and the results page.

Needs Debian's chromium and chromedriver (``apt-get install -y chromium chromium-driver``): fails, never skips,
without them. ``ARENA_SCREENSHOTS=1`` also writes docs/arena_vote.png and docs/arena_results.png.
"""
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from addbench.arena.runs import load_runs, shared_keys
from addbench.arena.schedule import build_schedule

TOKEN = "e2e-token-1234"
DOCS = Path(__file__).resolve().parents[2] / "docs"
CONTROLS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, data: dict | None = None):
    req = urllib.request.Request(url, data=None if data is None else json.dumps(data).encode(),
                                 headers={"X-Arena-Token": TOKEN, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


class Server:
    def __init__(self, args: list[str], port: int, log: Path):
        self.args, self.port, self.log, self.proc = args, port, log, None

    def start(self) -> None:
        with open(self.log, "a") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "addbench.cli", "arena", *self.args, "--port",
                                          str(self.port), "--token", TOKEN], stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the arena server exited ({self.proc.returncode}):\n{self.log.read_text()}")
            try:
                _get(f"http://127.0.0.1:{self.port}/api/study")
                return
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"the arena server did not answer in 30 s:\n{self.log.read_text()}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def browser(headless_chromium):
    return headless_chromium(1100, 900)


def test_a_rater_votes_in_chromium_across_a_server_kill(browser, tmp_path, new_run):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    runs = [new_run(tmp_path / "runs", "sharp-model", 2, size=128), new_run(tmp_path / "runs", "noisy-model", 0,
                                                                           size=128)]
    db, port = tmp_path / "study.sqlite", _free_port()
    server = Server([*map(str, runs), "--db", str(db), "--controls", str(CONTROLS)], port, tmp_path / "server.log")
    base = f"http://127.0.0.1:{port}"
    schedule = build_schedule(2, shared_keys(load_runs(runs)), "alice", controls_every=CONTROLS)
    assert len(schedule) == 9 and any(it.control for it in schedule[:3])
    wait = WebDriverWait(browser, 20)
    shown = lambda p: wait.until(lambda d: d.find_element(By.ID, "vote").get_attribute("data-position") == str(p))

    def keys_for(it) -> str:
        if it.control:  # an attention check: the real side on both questions
            return "aj" if it.control_side == "right" else "dl"
        return ("a" if it.left.run == 0 else "d") + "k"  # quality: the sharp model; alignment: tie

    def vote(it) -> None:
        shown(it.position)
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys(keys_for(it))
        assert browser.find_element(By.ID, "submit").is_enabled()
        body.send_keys(Keys.ENTER)

    try:
        server.start()
        browser.get(f"{base}/?rater=alice&token={TOKEN}")
        for it in schedule[:4]:
            vote(it)
        shown(4)
        assert browser.find_element(By.ID, "progress").text == "4 / 9"
        if os.environ.get("ARENA_SCREENSHOTS") == "1":
            browser.find_element(By.TAG_NAME, "body").send_keys(keys_for(schedule[4]))
            browser.set_window_size(1100, 960)
            browser.save_screenshot(str(DOCS / "arena_vote.png"))

        server.kill()  # mid-session: the answered votes are on disk, the page still shows item 4
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0] == 4
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys(keys_for(schedule[4]) + Keys.ENTER)
        wait.until(lambda d: "not saved" in d.find_element(By.ID, "status").text)
        server.start()
        body.send_keys(Keys.ENTER)  # the retry after the restart
        shown(5)
        browser.refresh()  # a reload resumes where the server says
        shown(5)
        for it in schedule[5:]:
            vote(it)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done")
        assert browser.find_element(By.ID, "progress").text == "9 / 9"

        for it in build_schedule(2, shared_keys(load_runs(runs)), "sloppy", controls_every=CONTROLS):
            side = it.control_side or "right"  # picks the known-bad side: flagged
            _get(f"{base}/api/vote", {"rater": "sloppy", "position": it.position, "quality": side, "alignment": side})

        with sqlite3.connect(db) as conn:
            conn.row_factory = sqlite3.Row
            rows = [dict(r) for r in conn.execute("SELECT * FROM votes WHERE rater = 'alice' ORDER BY position")]
        assert [r["position"] for r in rows] == list(range(9))
        assert [r["pair_id"] for r in rows] == [it.pair_id for it in schedule]
        assert [r["left_run"] for r in rows] == [it.left.run for it in schedule]
        assert all(r["passed"] == 1 for r in rows if r["control"]) and sum(bool(r["control"]) for r in rows) == 3

        out = tmp_path / "prefs.jsonl"
        subprocess.run([sys.executable, "-m", "addbench.cli", "arena", "export", "--db", str(db), "--out", str(out)],
                       check=True, capture_output=True)
        prefs = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(prefs) == 12 and {p["rater"] for p in prefs} == {"alice"}
        assert {(p["a"], p["b"]) for p in prefs} == {("sharp-model", "noisy-model")}
        assert {p["winner"] for p in prefs if p["question"] == "quality"} == {"a"}
        assert {p["winner"] for p in prefs if p["question"] == "alignment"} == {"tie"}

        browser.get(f"{base}/results?token={TOKEN}")
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "ready")
        quality = browser.find_element(By.CSS_SELECTOR, "section[data-question=quality] table")
        assert quality.find_element(By.CSS_SELECTOR, "tbody tr td").text == "sharp-model"  # ranked first
        assert "flagged" in browser.find_element(By.ID, "raters").text
        assert "12 games counted" in browser.find_element(By.ID, "summary").text
        if os.environ.get("ARENA_SCREENSHOTS") == "1":
            browser.set_window_size(1100, 1500)
            browser.save_screenshot(str(DOCS / "arena_results.png"))
    finally:
        server.kill()
