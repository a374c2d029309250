"""Where text goes: our consoles (the terminal), library output (a run's log file), and our own lines.

    with library_output(run_dir / "log.txt"):     # vLLM, torch, transformers, datasets, warnings -> the file
        say("round 1 · sample  128/128 items")      # one of our lines: the console, mirrored into the file

`library_output` points the process's file descriptors 1 and 2 at the log file, so everything a library
prints lands there: Python logging and warnings, tqdm bars, C libraries, and the engine processes vLLM
starts (they inherit the descriptors). Our consoles (`console`, `out` and any made by `new_console`)
keep writing to the terminal through copies of the original descriptors. `--verbose`
(`SYNTHLOOP_VERBOSE=1`) leaves everything on the console as it always was. The live progress displays drawn on
`console` are in progress.py (this package).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.text import Text

#: our lines and progress displays (stderr)
console = Console(stderr=True)
#: tables and results (stdout)
out = Console()
_CONSOLES: list[Console] = [console, out]

def new_console(**kwargs) -> Console:
    """A console of our own (e.g. a wider one for tables in CI logs): it keeps writing to the terminal while
    `library_output` sends everything else to the log file."""
    made = Console(**kwargs)
    _CONSOLES.append(made)
    return made


def verbose() -> bool:
    """`synthloop --verbose`: library output stays on the console (and tracebacks are shown)."""
    return os.environ.get("SYNTHLOOP_VERBOSE", "") not in ("", "0")


def progress_forced() -> bool:
    """SYNTHLOOP_PROGRESS=1: draw live progress displays even without a terminal (tests, recordings)."""
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
