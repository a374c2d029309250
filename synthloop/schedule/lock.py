"""One tick at a time: an exclusive, non-blocking file lock held for the whole tick.

The lock is the kernel's (fcntl.flock), so it is released when the holder dies, even by SIGKILL:
a killed tick never blocks the next one. The file records who holds it, for the refusal message.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path


class TickLocked(RuntimeError):
    """Another tick holds the lock; the message is one line for the user."""


class TickLock:
    def __init__(self, path: Path):
        self.path = path
        self._handle = None

    def acquire(self) -> TickLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            try:
                info = json.loads(holder)
                who = f"pid {info['pid']}, started {info['started']}"
            except (ValueError, KeyError):
                who = "another process"
            raise TickLocked(f"another tick of this schedule is running ({who}); this one exits") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}))
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.truncate(0)
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> TickLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
