"""The foreground scheduler: `synthloop schedule CONFIG --every 6h` (or `--cron "0 3 * * *"`).

It waits for the next tick time with a status line (next tick, last decision, current checkpoint, records
waiting in the inbox), then runs the tick as its own process, exactly as cron or a systemd timer would run it
(`synthloop schedule CONFIG --once`): memory is returned to the system after every tick, a crash ends the
tick and not the scheduler, and the next tick resumes what a failed one left. `--every` counts from the last
tick's start (also across a restart of the scheduler), so a 6h schedule restarted after 1h waits 5h.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

from rich.console import Console

from synthloop.runs.jsonl import atomic_write
from synthloop.runs.lock import EXIT_LOCKED
from synthloop.schedule.cron import once_command
from synthloop.schedule.history import History
from synthloop.schedule.inbox import Inbox, InboxError
from synthloop.schedule.tick import describe_dir, relative_to_run
from synthloop.schedule.timing import Timing


def _in(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


class Scheduler:
    def __init__(self, config, config_path: Path, overrides: list[str], timing: Timing, directory: Path, *,
                 resume: str = "if-unchanged", max_ticks: int | None = None, console: Console | None = None):
        self.config, self.config_path, self.overrides = config, config_path, overrides
        self.timing, self.dir, self.resume, self.max_ticks = timing, Path(directory), resume, max_ticks
        self.console = console or Console(stderr=True)
        self.child: subprocess.Popen | None = None

    # -- status -----------------------------------------------------------------------------------------
    def waiting_records(self) -> int | None:
        if self.config.inbox is None:  # a program writes the tasks: nothing waits
            return None
        try:
            return sum(r.records for r in Inbox(self.config.inbox.path, self.dir).pending())
        except (OSError, InboxError):
            return None

    def status_line(self, next_at: datetime, waiting: int | None) -> str:
        info = describe_dir(self.dir) if self.dir.is_dir() else {}
        parts = [f"next tick {next_at:%Y-%m-%d %H:%M:%S} (in {_in((next_at - datetime.now()).total_seconds())})"]
        last = info.get("last")
        if last is not None:
            what = last.decision or last.status
            if last.status == "done":
                metric = self.config.promotion.metric
                cur, new = (last.heldout.get("current") or {}).get(metric), \
                    (last.heldout.get("candidate") or {}).get(metric)
                if cur is not None and new is not None:
                    what += f" ({metric} {cur:.4g} -> {new:.4g})"
            parts.append(f"last: tick {last.tick}{f' round {last.round}' if last.round else ''} {what}")
        parts.append(f"current: {info.get('current', self.config.engine.model)}")
        if waiting is not None:
            parts.append(f"inbox: {waiting} waiting")
        return " · ".join(parts)

    def write_status(self, next_at: datetime) -> None:
        if self.dir.is_dir():
            atomic_write(self.dir / "scheduler.json", json.dumps({
                "pid": os.getpid(), "timing": self.timing.describe(),
                "next_tick": next_at.isoformat(timespec="seconds"), "config": str(self.config_path.resolve())},
                indent=2))

    def wait_until(self, next_at: datetime) -> None:
        waiting, checked = self.waiting_records(), time.time()
        if not self.console.is_terminal:  # logs: one line per wait
            self.console.print(self.status_line(next_at, waiting), highlight=False, soft_wrap=True)
            while (remaining := (next_at - datetime.now()).total_seconds()) > 0:
                time.sleep(min(remaining, 1.0))
            return
        with self.console.status(self.status_line(next_at, waiting)) as status:
            while (remaining := (next_at - datetime.now()).total_seconds()) > 0:
                time.sleep(min(remaining, 1.0))
                if time.time() - checked > 30:
                    waiting, checked = self.waiting_records(), time.time()
                status.update(self.status_line(next_at, waiting))

    # -- the loop ---------------------------------------------------------------------------------------
    def last_start(self) -> datetime | None:
        records = History(self.dir).records()
        return datetime.fromisoformat(records[-1].started) if records else None

    def run(self) -> int:
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            return self._loop()
        except KeyboardInterrupt:
            self._stop_child()
            self.console.print("[yellow]scheduler stopped[/]; a tick that was cut short resumes at the next tick")
            return 130
        finally:
            signal.signal(signal.SIGTERM, previous)
            (self.dir / "scheduler.json").unlink(missing_ok=True)

    def _on_sigterm(self, *_):
        raise KeyboardInterrupt

    def _stop_child(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
            try:
                self.child.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()

    def _loop(self) -> int:
        self.console.print(f"[bold]schedule[/] {self.dir}  ·  {self.timing.describe()}  ·  policy "
                           f"{self.config.engine.model}  ·  "
                           + (f"inbox {self.config.inbox.path}" if self.config.inbox is not None else
                              f"tasks written by {self.config.tasks.train.program.kind}")
                           + (f"  ·  {self.max_ticks} tick(s)" if self.max_ticks else ""), highlight=False)
        last_start, ticks = self.last_start(), 0
        command = once_command(self.config_path, self.overrides, self.resume)
        while self.max_ticks is None or ticks < self.max_ticks:
            next_at = self.timing.next_after(datetime.now(), last_start)
            self.write_status(next_at)
            self.wait_until(next_at)
            last_start = datetime.now()
            self.child = subprocess.Popen(command)
            code = self.child.wait()
            self.child = None
            ticks += 1
            if code == EXIT_LOCKED:
                self.console.print(f"{datetime.now():%H:%M:%S} tick skipped: another tick of this schedule is "
                                   "still running", highlight=False)
            elif code == 2:
                self.console.print("[bold red]the tick stopped on a problem to fix (above)[/]; scheduler stopped")
                return 2
            elif code in (130, -signal.SIGINT, -signal.SIGTERM):
                raise KeyboardInterrupt
            elif code != 0:
                self.console.print(f"[yellow]{datetime.now():%H:%M:%S} tick failed (exit {code})[/]; the next tick "
                                   "resumes its round", highlight=False)
        current = describe_dir(self.dir).get("current")
        shown = relative_to_run(current, self.dir) if current else "-"
        self.console.print(f"done: {ticks} tick(s) · current: {shown} · history: synthloop runs show {self.dir}",
                           highlight=False)
        return 0
