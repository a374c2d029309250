"""`synthloop report RUN`: the run's self-contained HTML report (also written at the end of every generate, filter
and loop run: `after_run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthloop.cli.common import fail
from synthloop.console.output import console, out


def report(
    run: Annotated[Path, typer.Argument(help="A run directory: generate, filter, loop or schedule (any kind).")],
    dest: Annotated[Path | None, typer.Option("--out", "-o", help="Where to write it; default: RUN/report.html.")]
    = None,
) -> None:
    """Write one self-contained HTML file for a run (opens from disk: no server, no network).

    Generate and filter runs: every record (searchable, paged, kept vs dropped with the reason, scores), counts,
    tokens and time, score and length histograms. Loops and schedules: per-round charts, data per stage, the
    held-out tasks answered before and after side by side, and the lineage of every round.

    Example:

      synthloop report runs/quickstart
    """
    from synthloop.report import NotARunError, write_report

    try:
        path = write_report(run, dest)
    except NotARunError as exc:
        fail(str(exc))
    out.print(str(path), highlight=False, soft_wrap=True)


def after_run(run: Path) -> None:
    """Write RUN/report.html at the end of a run; a report that cannot be written never fails the run."""
    try:
        from synthloop.report import write_report

        console.print(f"report: {write_report(run)}", highlight=False, soft_wrap=True)
    except Exception as exc:  # the run itself succeeded: say why the report is missing, in one line
        console.print(f"[yellow]warning:[/] report not written: {type(exc).__name__}: {exc}", highlight=False,
                      soft_wrap=True)
