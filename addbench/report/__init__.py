"""``addbench report``: eval and training runs -> one static HTML page with its PNGs (offline, relative paths).

collect.py finds and reads the runs, plots.py draws metric-vs-NFE and training curves (matplotlib, Agg),
grids.py the labelled sample grids and the best / worst prompts, html.py the page. :func:`build_report` runs them.
"""
from addbench.report.html import build_report

__all__ = ["build_report"]
