"""Progress: one live display per stage of work, each counted piece of work a row with its total, rate and ETA.

    with stage("round 1 · sample") as s:        # one live display while the stage runs ...
        with bar("sample", total=128, unit="tasks") as b:
            b.advance()
    say(f"round 1 · sample  {s.summary()}")    # ... and one line once it is done (synthloop.console.output.say)

On a terminal a bar is a row of the live display of its stage; elsewhere (CI logs, pipes) a line every
`HEARTBEAT_S` seconds says how far it got. The displays draw on `synthloop.console.output.console`, which keeps writing
to the terminal while library output goes to the run's log file.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from collections.abc import Iterator, Sequence

from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from synthloop.console.output import console, note, progress_forced, quiet, say

#: without a terminal, a running bar prints a line this often (seconds)
HEARTBEAT_S = 60.0


# -- progress ---------------------------------------------------------------------------------------
class _Count(ProgressColumn):
    """`612/1024 tasks` (or `612 tasks` while the total is unknown)."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "")
        if not task.fields.get("counted", True):
            return Text("")
        done = int(task.completed)
        text = f"{done}/{int(task.total)}" if task.total is not None else f"{done}"
        return Text(f"{text} {unit}".rstrip(), style="progress.download")


class _Bar(BarColumn):
    """The bar, for counted rows only (a stage's header row has none)."""

    def render(self, task: Task):
        return super().render(task) if task.fields.get("counted", True) else Text("")


class _Eta(TimeRemainingColumn):
    """`eta 0:01:02` once the total is known."""

    def render(self, task: Task) -> Text:
        if task.total is None or not task.fields.get("counted", True):
            return Text("")
        return Text.assemble("eta ", super().render(task))


def make_progress(*, transient: bool = False) -> Progress:
    """A rich Progress on our console (disabled without a terminal unless SYNTHLOOP_PROGRESS=1). While library
    output goes to a log file it does not capture stdout/stderr (that would bring library output back)."""
    capture = not quiet()
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        _Bar(bar_width=30),
        _Count(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        _Eta(),
        console=console,
        transient=transient,
        disable=not console.is_terminal and not progress_forced(),
        refresh_per_second=4,
        redirect_stdout=capture,
        redirect_stderr=capture,
    )


class Bar:
    """One counted piece of work: a row of its stage's display (or a display of its own outside a stage)."""

    def __init__(self, display: _Display, description: str, total: int | None, unit: str, completed: int):
        self.display, self.description, self.total, self.unit = display, description, total, unit
        self.completed, self.detail = completed, ""
        self.started = self.last_line = time.monotonic()
        self.task = display.progress.add_task(description, total=total, completed=completed, detail="", unit=unit)

    def advance(self, n: int = 1) -> None:
        self.update(completed=self.completed + n)

    def update(self, *, completed: int | None = None, total: int | None = None, detail: str | None = None) -> None:
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total
        if detail is not None:
            self.detail = detail
        self.display.progress.update(self.task, completed=self.completed, total=self.total, detail=self.detail)
        self.display.heartbeat(self)

    def count(self) -> str:
        """`612/1024 tasks`."""
        done = f"{self.completed}/{self.total}" if self.total is not None else f"{self.completed}"
        return f"{done} {self.unit}".rstrip()

    def line(self) -> str:
        return f"{self.count()}" + (f" · {self.detail}" if self.detail else "")


class _Display:
    """The live display of one stage (a rich Progress whose rows are the stage's bars)."""

    def __init__(self, label: str, enabled: bool, transient: bool):
        self.label, self.enabled = label, enabled
        self.progress = make_progress(transient=transient)
        if not enabled:
            self.progress.disable = True
        self.bars: list[Bar] = []
        self.asides: list[str] = []
        self.started = time.monotonic()
        self.header = None

    @property
    def live(self) -> bool:
        return not self.progress.disable

    def start(self, status: str = "") -> None:
        self.progress.start()
        if self.label:
            self.header = self.progress.add_task(self.label, total=None, detail=status, unit="", counted=False)

    def stop(self) -> None:
        self.progress.stop()

    def status(self, text: str) -> None:
        if self.header is not None:
            self.progress.update(self.header, detail=f"[dim]{text}[/]")

    def heartbeat(self, bar: Bar) -> None:
        """Without a terminal, a line now and then (every HEARTBEAT_S) for a bar that is still running."""
        if self.live or not self.enabled:
            return
        now = time.monotonic()
        if now - bar.last_line >= HEARTBEAT_S and (bar.total is None or bar.completed < bar.total):
            bar.last_line = now
            prefix = f"{self.label} · " if self.label and self.label != bar.description else ""
            say(f"  {prefix}{bar.description} {bar.line()} · {_clock(now - bar.started)}")

    def summary(self) -> str:
        """The stage's bars in one line: the first by its count, the others by name and count; asides last."""
        line = " · ".join(b.line() if i == 0 else f"{b.description} {b.line()}" for i, b in enumerate(self.bars))
        return " ".join(filter(None, [line, f"({'; '.join(self.asides)})" if self.asides else ""]))


_stages: list[_Display] = []


class Stage:
    """What `stage()` yields: `summary()` is the stage's bars in one line once it is done."""

    def __init__(self, display: _Display):
        self._display = display

    def summary(self) -> str:
        return self._display.summary()

    def status(self, text: str) -> None:
        self._display.status(text)


@contextlib.contextmanager
def stage(label: str, *, enabled: bool = True) -> Iterator[Stage]:
    """One live display for a stage of work: every `bar` opened inside is a row of it; it disappears when the stage
    ends (say the stage's `summary()` then). `enabled=False`: no display, bars still count."""
    display = _Display(label, enabled, transient=True)
    _stages.append(display)
    display.start()
    try:
        yield Stage(display)
    finally:
        display.stop()
        _stages.remove(display)


def status(text: str) -> None:
    """What the current stage is doing right now (e.g. starting an engine): shown in its display, logged."""
    note(text)
    if _stages:
        _stages[-1].status(text)


def aside(text: str) -> bool:
    """A remark for the current stage's line (e.g. how long its engine took to start), logged; False when no stage
    is running (say it yourself then)."""
    note(text)
    if not _stages:
        return False
    _stages[-1].asides.append(text)
    return True


@contextlib.contextmanager
def bar(description: str, total: int | None, *, unit: str = "", completed: int = 0,
        enabled: bool = True) -> Iterator[Bar]:
    """A counted piece of work with a known `total` (None while unknown). Inside a `stage` it is a row of the stage's
    display; alone it has its own display and leaves one line when done."""
    if _stages:
        display = _stages[-1]
        made = Bar(display, description, total, unit, completed)
        display.bars.append(made)
        yield made
        return
    display = _Display("", enabled, transient=True)
    display.start()
    made = Bar(display, description, total, unit, completed)
    display.bars.append(made)
    try:
        yield made
    finally:
        display.stop()
        if enabled:
            say(f"{description} {made.line()} · {_clock(time.monotonic() - made.started)}")


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


def wait_with_progress(futures: Sequence[concurrent.futures.Future], label: str) -> None:
    with bar(label, total=len(futures)) as b:
        for _ in concurrent.futures.as_completed(futures):
            b.advance()


class RateMeter:
    """Tokens per second over the whole run so far."""

    def __init__(self):
        self.start = time.monotonic()

    def rate(self, tokens: int) -> float:
        return tokens / max(time.monotonic() - self.start, 1e-9)
