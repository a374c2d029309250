"""Progress bars (rich) for long work: a run's items, and a plain batch of engine futures."""

from __future__ import annotations

import concurrent.futures
import sys
import time
from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


def make_progress(*, transient: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=not sys.stderr.isatty() and not _force(),
        refresh_per_second=4,
    )


def _force() -> bool:
    import os

    return os.environ.get("SYNTHLOOP_PROGRESS", "") == "1"


def wait_with_progress(futures: Sequence[concurrent.futures.Future], label: str) -> None:
    with make_progress(transient=True) as progress:
        task = progress.add_task(label, total=len(futures), detail="")
        for _ in concurrent.futures.as_completed(futures):
            progress.advance(task)


class RateMeter:
    """Tokens per second over the whole run so far."""

    def __init__(self):
        self.start = time.monotonic()

    def rate(self, tokens: int) -> float:
        return tokens / max(time.monotonic() - self.start, 1e-9)
