"""The human preference arena: ADD's study (appendix B.2) as a local web app, and its automatic twin.

Raters see two samples of one (prompt, seed) from two runs, sides randomised, and answer ADD's two questions
(image quality, prompt alignment: left / right / tie). Attention checks put a known-bad control (heavy blur, noise,
another prompt's image) against a real sample; raters who fail too many are flagged and their votes left out.

- ``runs.py``      the eval run dirs: models, shared (prompt_index, seed) keys, image paths
- ``schedule.py``  each rater's deterministic, balanced list of pairs (and where the controls go)
- ``controls.py``  control images (made on the fly, deterministic), expected answers, rater flagging
- ``store.py``     SQLite (WAL): the study's settings and one row per vote
- ``study.py``     runs + schedule + store: what the routes ask for
- ``app.py``       the FastAPI routes (token, validation, images looked up by schedule item, never by path)
- ``export.py``    votes -> preference JSONL (``addbench elo``), the automatic arena, the results report
- ``static/``      the voting page and the results page

docs/arena.md describes running a study, the DB schema and the export format.
"""
