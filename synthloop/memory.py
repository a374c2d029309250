"""Memory of a loop: peak RSS of the process tree (vLLM runs its engine in child processes), and
handing freed memory back to the OS between stages so RSS does not climb round over round."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import threading

import psutil


def tree_rss() -> int:
    """Resident bytes of this process and all its children."""
    proc = psutil.Process()
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


class PeakRSS:
    """Samples the tree RSS in a daemon thread; `peak` is the largest seen since `reset()`.

    with PeakRSS() as meter: ...; meter.peak_gib
    """

    def __init__(self, interval_s: float = 0.25):
        self.interval_s = interval_s
        self.peak = tree_rss()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, tree_rss())

    def reset(self) -> int:
        """Start a new window; returns the peak of the one that ended."""
        ended = max(self.peak, tree_rss())
        self.peak = tree_rss()
        return ended

    @property
    def peak_gib(self) -> float:
        return max(self.peak, tree_rss()) / 2**30

    def start(self) -> PeakRSS:
        self._thread = threading.Thread(target=self._sample, name="synthloop-rss", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> PeakRSS:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def release_memory() -> None:
    """Collect garbage and return free heap pages to the OS (glibc keeps them otherwise, and the RSS of a
    process that alternates a 3.8 GB training step with a 3.6 GB engine would ratchet up)."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass
    name = ctypes.util.find_library("c")
    if name:
        with contextlib.suppress(OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
            ctypes.CDLL(name).malloc_trim(0)
