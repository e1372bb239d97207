import sqlite3
import subprocess
import sys

import pytest

from addbench.arena.store import PositionConflict, Store, open_existing
from addbench.errors import AddbenchError


def vote(rater="r1", position=0, **kw):
    return {"rater": rater, "position": position, "pair_id": f"0v1:{position}:0", "prompt_index": position, "seed": 0,
            "prompt": "p", "left_run": 0, "right_run": 1, "left_model": "a", "right_model": "b", "control": None,
            "control_side": None, "quality": "left", "alignment": "tie", "passed": None, **kw}


def test_the_study_file_is_in_wal_mode_with_one_row_per_vote(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    for i in range(3):
        store.add_vote(vote(position=i))
    store.add_vote(vote("r2", 0))
    conn = sqlite3.connect(tmp_path / "s.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0] == 4
    rows = store.votes()
    assert [(r["rater"], r["position"]) for r in rows] == [("r1", 0), ("r1", 1), ("r1", 2), ("r2", 0)]
    assert rows[0]["time"].endswith("+00:00") and rows[0]["quality"] == "left"


def test_a_vote_must_be_for_the_raters_next_position(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    store.add_vote(vote(position=0))
    for position in (0, 2):
        with pytest.raises(PositionConflict) as exc:
            store.add_vote(vote(position=position))
        assert exc.value.expected == 1
    with pytest.raises(sqlite3.IntegrityError):  # the CHECK constraint
        store.add_vote(vote(position=1, quality="up"))
    assert len(store.votes()) == 1 and store.next_position("r1") == 1


def test_a_killed_writer_loses_no_committed_vote_and_a_new_store_resumes(tmp_path):
    db = tmp_path / "s.sqlite"
    Store(db).bind({"seed": 0})
    script = (f"import os, signal; from addbench.arena.store import Store; s = Store({str(db)!r}); "
              f"[s.add_vote(v) for v in {[vote(position=i) for i in range(2)]!r}]; os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path)
    assert proc.returncode == -9
    store = Store(db)
    assert store.next_position("r1") == 2 and store.next_position("r9") == 0
    assert store.bind({"seed": 0}) == {"seed": 0}


def test_a_restart_with_other_settings_is_refused(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    store.bind({"seed": 0, "pairs": 10})
    with pytest.raises(AddbenchError, match="seed"):
        Store(tmp_path / "s.sqlite").bind({"seed": 1, "pairs": 10})
    with pytest.raises(AddbenchError, match="no such study"):
        open_existing(tmp_path / "other.sqlite")
    assert not (tmp_path / "other.sqlite").exists()
    Store(tmp_path / "empty.sqlite")
    with pytest.raises(AddbenchError, match="no arena study"):
        open_existing(tmp_path / "empty.sqlite")
