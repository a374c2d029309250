"""An in-flight limit that adapts to a server's pushback (AIMD, as TCP congestion control does).

A success raises the limit by 1/limit (so by about one per round trip: slowly); an overload answer
(429/503) halves it, at most once per round trip (only a request started after the last decrease can
decrease it again, so a burst of 429s from one overload counts once), and `Retry-After` pauses every
new request until it has passed. Waiters are served first come, first served.

Hand-written: the Python libraries for this (aiolimiter, asyncio-throttle) limit a *rate* with a
fixed budget; none adapts a *concurrency* limit to 429s.
"""

from __future__ import annotations

import asyncio
import collections
import time


class AdaptiveLimit:
    def __init__(self, maximum: int, *, minimum: int = 1, decrease: float = 0.5):
        if not 1 <= minimum <= maximum:
            raise ValueError(f"need 1 <= minimum ({minimum}) <= maximum ({maximum})")
        self.maximum, self.minimum, self.decrease = maximum, minimum, decrease
        self.limit = float(maximum)
        self.in_flight = 0
        self.epoch = 0  # bumped by every decrease
        self.paused_until = 0.0  # loop time
        self.lowest = float(maximum)
        self.decreases = 0
        self.max_in_flight = 0
        #: (unix time, limit) after every change of the integer limit, the last 1,000 of them
        self.trace: collections.deque[tuple[float, int]] = collections.deque(maxlen=1000)
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self._wake_handle: asyncio.TimerHandle | None = None

    @property
    def current(self) -> int:
        return max(self.minimum, int(self.limit))

    def _paused(self, loop: asyncio.AbstractEventLoop) -> bool:
        return loop.time() < self.paused_until

    def _take(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    async def acquire(self) -> int:
        """Wait for a slot; returns the epoch to pass back to `overloaded`."""
        loop = asyncio.get_running_loop()
        if not self._waiters and not self._paused(loop) and self.in_flight < self.current:
            self._take()
            return self.epoch
        waiter = loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # `_wake` takes the slot on our behalf before it resolves the future
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()
            else:
                self._waiters.remove(waiter)
            raise
        return self.epoch

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        loop = asyncio.get_running_loop()
        if self._paused(loop):
            return
        while self._waiters and self.in_flight < self.current:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._take()
                waiter.set_result(None)

    def succeeded(self) -> None:
        before = self.current
        self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)
        if self.current != before:
            self.trace.append((time.time(), self.current))
            self._wake()

    def overloaded(self, epoch: int, retry_after: float | None) -> None:
        """The server refused a request started in `epoch` because it is overloaded."""
        loop = asyncio.get_running_loop()
        if epoch == self.epoch:
            before = self.current
            self.limit = max(float(self.minimum), self.limit * self.decrease)
            self.lowest = min(self.lowest, self.limit)
            self.epoch += 1
            if self.current < before:
                self.decreases += 1
                self.trace.append((time.time(), self.current))
        if retry_after and retry_after > 0:
            until = loop.time() + retry_after
            if until > self.paused_until:
                self.paused_until = until
                if self._wake_handle is not None:
                    self._wake_handle.cancel()
                self._wake_handle = loop.call_at(until, self._end_pause)

    def _end_pause(self) -> None:
        # the live handle always belongs to the latest pause (a longer one replaces it); timers may fire a
        # clock tick early, so the pause is ended here rather than re-checked against the clock
        self._wake_handle = None
        self.paused_until = 0.0
        self._wake()

    def stats(self) -> dict[str, float | int]:
        return {"limit": self.current, "lowest_limit": int(self.lowest), "decreases": self.decreases,
                "max_in_flight": self.max_in_flight}
