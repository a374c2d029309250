"""`synthloop report RUN`: one self-contained HTML file for a run directory of any kind (no server, no network).

    collect.py   the run directory -> one JSON-able dict (kind from manifest.json / the files present)
    records.py   a generate or filter run's records: kept and dropped with the reason, scores, figures
    rounds.py    a loop's or a schedule's rounds: metrics, data per stage, before/after, lineage, ticks
    charts.py    inline SVG charts
    html.py      the dict -> HTML (assets/: the Jinja2 template, CSS and JavaScript, inlined)

Floor 8 of the layout: it reads what runs/, loops/ and schedule/ wrote; only cli/ imports it.
"""

from __future__ import annotations

from pathlib import Path

from synthloop.report.collect import NotARunError, collect
from synthloop.report.records import RECORD_CAP
from synthloop.runs.jsonl import atomic_write

__all__ = ["NotARunError", "collect", "write_report"]


def write_report(run: str | Path, out: str | Path | None = None, *, cap: int = RECORD_CAP) -> Path:
    """Write the report of the run at `run` to `out` (default: RUN/report.html); returns its path."""
    from synthloop.report.html import render

    data = collect(run, cap=cap)
    target = Path(out) if out is not None else Path(run) / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    # a lone surrogate (a model's broken UTF-16 escape, kept by json.loads) cannot be written as UTF-8
    atomic_write(target, render(data).encode("utf-8", "replace").decode("utf-8"))
    return target
