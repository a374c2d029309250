"""The processes an engine starts (vLLM's EngineCore and its workers), so closing it can wait until they are gone:
their memory is free only then, and a training step right after must not meet a still-exiting engine."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psutil


def _children() -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return psutil.Process().children(recursive=True)
    return []


def _is_resource_tracker(proc: psutil.Process) -> bool:
    """multiprocessing's resource tracker lives as long as this process, whoever started it: never an engine's."""
    with contextlib.suppress(psutil.Error):
        return any("resource_tracker" in part for part in proc.cmdline())
    return True


class ChildProcesses:
    """The child processes that appeared while `track()` ran; `reap()` waits for them, then terminates stragglers."""

    def __init__(self) -> None:
        self.procs: list[psutil.Process] = []

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        before = {p.pid for p in _children()}
        try:
            yield
        finally:
            self.procs += [p for p in _children() if p.pid not in before and not _is_resource_tracker(p)]

    def reap(self, timeout: float = 30.0) -> list[int]:
        """Wait up to `timeout` s for every tracked process to exit; terminate (then kill) what is left. Returns the
        pids that had to be terminated."""
        _, alive = psutil.wait_procs(self.procs, timeout=timeout)
        stragglers = [p.pid for p in alive]
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.terminate()
        _, alive = psutil.wait_procs(alive, timeout=5)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        self.procs = []
        return stragglers
