"""One writer at a time: an exclusive, non-blocking file lock (the kernel's `fcntl.flock`).

The kernel releases it when the holder dies, even by SIGKILL, so a killed process never blocks the next one. The
file records who holds it (pid, start time) for the refusal message. Used for run directories (`RunDir.open`
holds `<run>/run.lock` while a command writes the run) and for a schedule's ticks (`tick.lock`).

Within one process the lock is re-entrant by path: a loop controller that opens its run directory while the
command around it already holds that directory's lock shares the hold (flock would otherwise refuse the second
open file description, even in the same process).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from pathlib import Path
from typing import IO

#: exit code of a command refused because another process holds the lock (sysexits EX_TEMPFAIL, "try again
#: later"): distinct from 1 (the run failed) and 2 (a config or input to fix). See `synthloop.cli.common`.
EXIT_LOCKED = 75

_held: dict[str, list] = {}  # real path -> [open handle, holds in this process]
_guard = threading.Lock()


class Locked(RuntimeError):
    """Another process holds the lock; the message is one line for the user and names its pid."""

    def __init__(self, message: str, pid: int | None):
        super().__init__(message)
        self.pid = pid


class FileLock:
    """`FileLock(path, busy="another process is writing runs/x")`: `acquire()` raises `Locked` at once if another
    process holds it; `busy` is how the refusal describes the holder's work."""

    def __init__(self, path: Path, *, busy: str | None = None):
        self.path = Path(path)
        self.busy = busy or f"{self.path} is locked by another process"
        self._key: str | None = None

    def acquire(self) -> FileLock:
        if self._key is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(self.path)
        with _guard:
            held = _held.get(key)
            if held is not None:
                held[1] += 1
                self._key = key
                return self
            handle: IO[str] = open(self.path, "a+")  # noqa: SIM115 - held until release()
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip()
                handle.close()
                pid, who = None, "another process"
                try:
                    info = json.loads(holder)
                    pid, who = int(info["pid"]), f"pid {info['pid']}, since {info['started']}"
                except (ValueError, KeyError, TypeError):
                    pass
                raise Locked(f"{self.busy} ({who}); this one exits", pid) from None
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({"pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}))
            handle.flush()
            _held[key] = [handle, 1]
            self._key = key
        return self

    def release(self) -> None:
        if self._key is None:
            return
        key, self._key = self._key, None
        with _guard:
            held = _held.get(key)
            if held is None:
                return
            held[1] -= 1
            if held[1] > 0:
                return
            del _held[key]
            handle = held[0]
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    @property
    def held(self) -> bool:
        return self._key is not None

    def __del__(self) -> None:  # a holder dropped without release() (e.g. a RunDir nobody closed) frees its hold
        with contextlib.suppress(Exception):
            self.release()

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holder(path: Path) -> int | None:
    """The pid holding the lock at `path` right now, or None when nobody does (a dead holder holds nothing)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                try:
                    return int(json.loads(handle.read())["pid"])
                except (ValueError, KeyError, TypeError):
                    return -1
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None
    except OSError:
        return None
