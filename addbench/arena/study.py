"""A running study: the runs, each rater's schedule, the control images and the vote store, for the routes."""
from __future__ import annotations

import functools
import hashlib
import json

from addbench.arena import controls
from addbench.arena.runs import ArenaRun, prompt_of, shared_keys
from addbench.arena.schedule import Item, build_schedule, check_settings, default_pairs
from addbench.arena.store import Store

FORMAT = "addbench-arena/1"
QUESTIONS = {"quality": "Which image is of higher quality?",
             "alignment": "Which image fits the prompt better?"}  # ADD's study (appendix B.2), in this order


class Study:
    def __init__(self, runs: list[ArenaRun], store: Store, seed: int = 0, pairs: int | None = None,
                 controls_every: int = 10, max_fail: float = controls.MAX_FAIL):
        self.runs, self.store = runs, store
        self.keys = shared_keys(runs)
        check_settings(len(runs), len(self.keys), pairs, controls_every)
        self.seed, self.controls_every, self.max_fail = seed, controls_every, max_fail
        self.pairs = pairs or default_pairs(len(runs), len(self.keys))
        self.settings = store.bind(self._settings())
        self.schedule = functools.lru_cache(maxsize=256)(self._schedule)
        self._png = functools.lru_cache(maxsize=512)(self._render)

    def _settings(self) -> dict:
        keys_sha = hashlib.sha256(json.dumps(self.keys).encode()).hexdigest()
        return {"format": FORMAT, "runs": [{"dir": str(r.path), "model": r.model} for r in self.runs],
                "keys": len(self.keys), "keys_sha256": keys_sha, "seed": self.seed, "pairs": self.pairs,
                "controls_every": self.controls_every, "max_fail": self.max_fail, "questions": list(QUESTIONS)}

    def _schedule(self, rater: str) -> tuple[Item, ...]:
        return tuple(build_schedule(len(self.runs), self.keys, rater, self.seed, self.pairs, self.controls_every))

    def total(self, rater: str) -> int:
        return len(self.schedule(rater))

    def item(self, rater: str, position: int) -> Item | None:
        items = self.schedule(rater)
        return items[position] if 0 <= position < len(items) else None

    def prompt(self, item: Item) -> str:
        return prompt_of(self.runs, item.key)

    def image_png(self, item: Item, side: str) -> bytes:
        """The PNG of one side, looked up by (run index, prompt_index, seed) in the loaded tables."""
        s = item.side(side)
        return self._png(s.run, s.key, s.control)

    def _render(self, run: int, key: tuple[int, int], control: str | None) -> bytes:
        return controls.control_png(self.runs[run].image_path(key), control, key)

    def vote(self, rater: str, item: Item, answers: dict[str, str], elapsed_ms: int | None = None) -> int:
        """Store one answered item (one transaction); PositionConflict if it is not the rater's next."""
        kind, bad = item.control, item.control_side
        return self.store.add_vote({
            "rater": rater, "position": item.position, "pair_id": item.pair_id, "elapsed_ms": elapsed_ms,
            "prompt_index": item.key[0], "seed": item.key[1], "prompt": self.prompt(item),
            "left_run": item.left.run, "right_run": item.right.run,
            "left_model": self.runs[item.left.run].model, "right_model": self.runs[item.right.run].model,
            "control": kind, "control_side": bad, **answers,
            "passed": None if kind is None else int(controls.passed(kind, bad, answers))})
