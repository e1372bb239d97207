"""The study's SQLite file: its settings and one row per vote (WAL journal; each vote one transaction).

A vote is committed (``synchronous=FULL``) before the server answers, so a killed server loses no answered vote;
the rater's next position is the count of their votes, so a restarted server resumes their schedule where they
stopped. The settings a study started with are kept; a server started on the same file with other runs, seed or
schedule settings is refused, since the schedules would change under the raters.
"""
from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

from addbench.errors import AddbenchError

SCHEMA = """
CREATE TABLE IF NOT EXISTS study (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL                 -- JSON
);
CREATE TABLE IF NOT EXISTS votes (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  rater TEXT NOT NULL,
  position INTEGER NOT NULL,          -- index into the rater's schedule
  pair_id TEXT NOT NULL,              -- "AvB:prompt_index:seed" or "control-KIND:RUN:prompt_index:seed"
  time TEXT NOT NULL,                 -- server time, ISO 8601 UTC
  elapsed_ms INTEGER,                 -- time the page showed the pair (client clock), if sent
  prompt_index INTEGER NOT NULL,
  seed INTEGER NOT NULL,
  prompt TEXT NOT NULL,
  left_run INTEGER NOT NULL,          -- display order: run index and model label on each side
  right_run INTEGER NOT NULL,
  left_model TEXT NOT NULL,
  right_model TEXT NOT NULL,
  control TEXT,                       -- NULL for a real pair; blur | noise | other_prompt
  control_side TEXT,                  -- left | right: the known-bad side of a control
  quality TEXT NOT NULL CHECK (quality IN ('left', 'right', 'tie')),
  alignment TEXT NOT NULL CHECK (alignment IN ('left', 'right', 'tie')),
  passed INTEGER,                     -- controls: 1 passed, 0 failed
  UNIQUE (rater, position)
);
"""
VOTE_COLUMNS = ("rater", "position", "pair_id", "time", "elapsed_ms", "prompt_index", "seed", "prompt", "left_run",
                "right_run", "left_model", "right_model", "control", "control_side", "quality", "alignment", "passed")


class PositionConflict(Exception):
    """The vote is not for the rater's next position (already answered, or ahead of it)."""

    def __init__(self, expected: int):
        super().__init__(f"the rater's next position is {expected}")
        self.expected = expected


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as conn:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise AddbenchError(f"{self.path}: SQLite would not use WAL mode (got {mode}); use a local disk")
            conn.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)  # explicit BEGIN / COMMIT
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    # Settings.
    def settings(self) -> dict | None:
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT value FROM study WHERE key = 'settings'").fetchone()
        return json.loads(row["value"]) if row else None

    def bind(self, settings: dict) -> dict:
        """Keep ``settings`` as the study's (first start), or check they equal the kept ones (restart)."""
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT value FROM study WHERE key = 'settings'").fetchone()
            if row is None:
                conn.execute("INSERT INTO study (key, value) VALUES ('settings', ?)", (json.dumps(settings),))
            conn.execute("COMMIT")
        kept = json.loads(row["value"]) if row else settings
        diff = sorted(k for k in set(kept) | set(settings) if kept.get(k) != settings.get(k))
        if diff:
            raise AddbenchError(f"{self.path} holds a study with other {', '.join(diff)} (kept: "
                                f"{', '.join(f'{k}={kept.get(k)!r}' for k in diff)}); start it with the same "
                                f"runs and options, or use another --db")
        return kept

    # Votes.
    def next_position(self, rater: str) -> int:
        with closing(self._connect()) as conn:
            return self._next(conn, rater)

    @staticmethod
    def _next(conn: sqlite3.Connection, rater: str) -> int:
        return conn.execute("SELECT COUNT(*) FROM votes WHERE rater = ?", (rater,)).fetchone()[0]

    def add_vote(self, vote: dict) -> int:
        """Insert one vote (keys :data:`VOTE_COLUMNS`; ``time`` filled in when absent) in one transaction; its
        position must be the rater's next. Returns the row id."""
        row = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), **vote}
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                expected = self._next(conn, row["rater"])
                if row["position"] != expected:
                    raise PositionConflict(expected)
                cur = conn.execute(f"INSERT INTO votes ({', '.join(VOTE_COLUMNS)}) VALUES "
                                   f"({', '.join('?' * len(VOTE_COLUMNS))})", [row.get(c) for c in VOTE_COLUMNS])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return int(cur.lastrowid)

    def votes(self) -> list[dict]:
        with closing(self._connect()) as conn:
            return [dict(r) for r in conn.execute("SELECT * FROM votes ORDER BY id")]


def open_existing(path: str | Path) -> Store:
    """A study file that exists (export, results), never a new empty one."""
    if not Path(path).is_file():
        raise AddbenchError(f"{path}: no such study file")
    store = Store(path)
    if store.settings() is None:
        raise AddbenchError(f"{path} holds no arena study")
    return store
