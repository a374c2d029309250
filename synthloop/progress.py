"""The console: our own lines, one live progress display per stage of work, and where library output goes.

    with library_output(run_dir / "log.txt"):     # vLLM, torch, transformers, datasets, warnings -> the file
        with stage("round 1 · sample") as s:        # one live display while the stage runs ...
            with bar("sample", total=128, unit="tasks") as b:
                b.advance()
        say(f"round 1 · sample  {s.summary()}")    # ... and one line once it is done

`library_output` points the process's file descriptors 1 and 2 at the log file, so everything a library
prints lands there: Python logging and warnings, tqdm bars, C libraries, and the engine processes vLLM
starts (they inherit the descriptors). Our consoles (`console`, `out` and any made by `new_console`)
keep writing to the terminal through copies of the original descriptors. `--verbose`
(`SYNTHLOOP_VERBOSE=1`) leaves everything on the console as it always was.

A bar knows its total (items, tasks, steps), its rate and ETA. On a terminal it is a row of the live display
of its stage; elsewhere (CI logs, pipes) a line every `HEARTBEAT_S` seconds says how far it got.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from rich.console import Console
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

#: our lines and progress displays (stderr)
console = Console(stderr=True)
#: tables and results (stdout)
out = Console()
_CONSOLES: list[Console] = [console, out]

#: without a terminal, a running bar prints a line this often (seconds)
HEARTBEAT_S = 60.0


def new_console(**kwargs) -> Console:
    """A console of our own (e.g. a wider one for tables in CI logs): it keeps writing to the terminal while
    `library_output` sends everything else to the log file."""
    made = Console(**kwargs)
    _CONSOLES.append(made)
    return made


def verbose() -> bool:
    """`synthloop --verbose`: library output stays on the console (and tracebacks are shown)."""
    return os.environ.get("SYNTHLOOP_VERBOSE", "") not in ("", "0")


def _force() -> bool:
    return os.environ.get("SYNTHLOOP_PROGRESS", "") == "1"


# -- library output -> the log file -----------------------------------------------------------------
class _Redirect:
    def __init__(self, path: Path, log: IO[str], saved: tuple[int, int] | None):
        self.path, self.log, self.saved = path, log, saved
        self.streams: list[IO[str]] = []
        #: each console's file and size before (restored afterwards)
        self.before: list[tuple[Console, IO[str] | None, int | None, int | None]] = []


_active: _Redirect | None = None
_last_log: Path | None = None
_lock = threading.Lock()

#: progress bars of libraries off (they would fill the log file with carriage returns): read when a process imports
#: tqdm/datasets, so this reaches the engine processes started from here (this process keeps what it imported)
_QUIET_ENV = {"TQDM_DISABLE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
              "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}


def log_path() -> Path | None:
    """The log file library output goes to right now (None when it goes to the console)."""
    return _active.path if _active is not None else None


def last_log_path() -> Path | None:
    """The log file of the last `library_output` of this process, also after it ended (for error messages)."""
    return _last_log


def quiet() -> bool:
    """Library output goes to a log file right now."""
    return _active is not None


@contextlib.contextmanager
def library_output(path: str | Path) -> Iterator[Path | None]:
    """Send third-party output to the log file `path` (appended) for the duration; yields the path (None in verbose
    mode, where nothing changes). Nested calls keep the outer file.

    Where the process has no real stdout/stderr descriptors (an in-process test runner), only Python's logging
    and warnings go to the file."""
    global _active, _last_log
    if verbose() or _active is not None:
        yield log_path()
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    log = open(path, "a", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115 (closed in finally)
    log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}: {' '.join(sys.argv)}\n")
    env_before = {k: os.environ.get(k) for k in _QUIET_ENV}
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    try:
        fds = (sys.stdout.fileno(), sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):
        fds = None
    state = _Redirect(path, log, None)
    logging_undo = None
    with _lock:
        if fds == (1, 2):
            state.saved = _point_descriptors_at(log, state)
        else:
            logging_undo = _log_python_to(log)
        _active, _last_log = state, path
    try:
        yield path
    finally:
        with _lock:
            _active = None
            if state.saved is not None:
                _restore_descriptors(state)
            if logging_undo is not None:
                logging_undo()
            for key, value in env_before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            log.close()


def _point_descriptors_at(log: IO[str], state: _Redirect) -> tuple[int, int]:
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = (os.dup(1), os.dup(2))
    for console_ in _CONSOLES:
        # rich reads a terminal's size from descriptors 0-2, which are about to be a file: keep today's size
        state.before.append((console_, console_._file, console_._width, console_._height))
        if console_.is_terminal:
            console_.size = console_.size
    for fd in saved:
        stream = open(os.dup(fd), "w", buffering=1, encoding=sys.stderr.encoding or "utf-8",  # noqa: SIM115
                      errors="replace")
        state.streams.append(stream)
    for console_ in _CONSOLES:
        if console_._file is None:  # a console on sys.stdout / sys.stderr (not on a file of its own)
            console_.file = state.streams[1] if console_.stderr else state.streams[0]
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    return saved


def _restore_descriptors(state: _Redirect) -> None:
    for stream in (sys.stdout, sys.stderr, *state.streams):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    assert state.saved is not None
    os.dup2(state.saved[0], 1)
    os.dup2(state.saved[1], 2)
    for fd in state.saved:
        os.close(fd)
    for console_, file, width, height in state.before:
        console_.file = file  # type: ignore[assignment]  # None: back to sys.stdout / sys.stderr
        console_._width, console_._height = width, height
    for stream in state.streams:
        stream.close()


def _log_python_to(log: IO[str]):
    """Python logging and warnings into `log` (the part of the redirection possible without descriptors)."""
    import logging

    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    logging.captureWarnings(True)

    def undo() -> None:
        root.removeHandler(handler)
        logging.captureWarnings(False)

    return undo


_CLOCK = re.compile(r"^\d\d:\d\d:\d\d ")


def note(message: str) -> None:
    """A line of ours into the log file too (so the file tells the whole story in order)."""
    state = _active
    if state is not None:
        plain = Text.from_markup(message).plain
        stamp = "" if _CLOCK.match(plain) else time.strftime("%H:%M:%S ")
        with contextlib.suppress(OSError, ValueError):
            state.log.write(f"[synthloop] {stamp}{plain}\n")


def say(message: str) -> None:
    """One line of ours on the console (rich markup), mirrored into the log file."""
    console.print(message, highlight=False, soft_wrap=True)
    note(message)


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
        disable=not console.is_terminal and not _force(),
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
