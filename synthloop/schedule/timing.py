"""When ticks fire: `--every 6h` intervals and `--cron "0 3 * * *"` expressions (croniter)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


class ScheduleError(ValueError):
    """A bad --every or --cron value; the message is one line for the user."""


def parse_every(text: str) -> timedelta:
    """'6h' -> 6 hours; '1h30m', '90s', '2d' work too."""
    compact = text.replace(" ", "").lower()
    parts = _PART.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ScheduleError(f"--every {text!r}: expected a duration like 30m, 6h, 1h30m or 1d")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds < 1:
        raise ScheduleError(f"--every {text!r}: the interval must be at least 1 second")
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class Timing:
    every: timedelta | None = None
    cron: str | None = None

    @classmethod
    def from_options(cls, every: str | None, cron: str | None) -> Timing:
        if bool(every) == bool(cron):
            raise ScheduleError('give exactly one of --every (e.g. 6h) or --cron (e.g. "0 3 * * *"), or --once')
        if cron:
            from croniter import croniter

            if not croniter.is_valid(cron):
                raise ScheduleError(f"--cron {cron!r}: not a cron expression (minute hour day month weekday)")
            return cls(cron=cron)
        return cls(every=parse_every(every or ""))

    def next_after(self, moment: datetime, last_start: datetime | None = None) -> datetime:
        """The next tick: for intervals, one interval after the last tick started (or now if it never ran)."""
        if self.cron:
            from croniter import croniter

            return croniter(self.cron, moment).get_next(datetime)
        assert self.every is not None
        if last_start is None:
            return moment
        return max(moment, last_start + self.every)

    def describe(self) -> str:
        if self.cron:
            return f"cron '{self.cron}'"
        total = int(self.every.total_seconds()) if self.every else 0
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if total % size == 0 and total >= size:
                return f"every {total // size}{unit}"
        return f"every {total}s"

    def cron_line(self) -> str | None:
        """The crontab schedule equivalent to this timing, where one exists."""
        if self.cron:
            return self.cron
        total = int(self.every.total_seconds()) if self.every else 0
        if total % 86400 == 0 and total // 86400 == 1:
            return "0 0 * * *"
        if total % 3600 == 0 and 24 % (total // 3600) == 0:
            return f"0 */{total // 3600} * * *" if total > 3600 else "0 * * * *"
        if total % 60 == 0 and 60 % (total // 60) == 0:
            return f"*/{total // 60} * * * *"
        return None
