"""Scheduling building blocks: timing, the tick lock, and exactly-once inbox claims."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from synthloop.runs.lock import FileLock, Locked, holder
from synthloop.schedule.inbox import Inbox, InboxError
from synthloop.schedule.timing import ScheduleError, Timing, parse_every


def test_durations_and_cron():
    assert parse_every("6h") == timedelta(hours=6)
    assert parse_every("1h30m") == timedelta(minutes=90)
    assert parse_every("45s") == timedelta(seconds=45)
    for bad in ["6", "h", "6x", "-1h", ""]:
        with pytest.raises(ScheduleError):
            parse_every(bad)
    at = datetime(2026, 11, 22, 14, 5)
    nightly = Timing.from_options(None, "0 3 * * *")
    assert nightly.next_after(at) == datetime(2026, 11, 23, 3, 0)
    every = Timing.from_options("6h", None)
    assert every.next_after(at) == at  # never ran: now
    assert every.next_after(at, last_start=at - timedelta(hours=1)) == at + timedelta(hours=5)
    assert every.cron_line() == "0 */6 * * *" and Timing.from_options("15m", None).cron_line() == "*/15 * * * *"
    with pytest.raises(ScheduleError):
        Timing.from_options("6h", "0 3 * * *")
    with pytest.raises(ScheduleError, match="not a cron expression"):
        Timing.from_options(None, "0 3 * *")


def test_lock_refuses_a_second_holder_in_another_process(tmp_path):
    path = tmp_path / "tick.lock"
    code = (
        f"from synthloop.runs.lock import FileLock, Locked\n"
        f"from pathlib import Path\n"
        f"try:\n    FileLock(Path({str(path)!r}), busy='another tick of this schedule is running').acquire()\n"
        f"except Locked as e:\n    print(e, e.pid)\n"
    )
    with FileLock(path):
        with FileLock(path):  # the same process: re-entrant (a command and the controller it runs share the hold)
            pass
        assert holder(path) == os.getpid()
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert f"another tick of this schedule is running (pid {os.getpid()}" in other.stdout
        assert other.stdout.split()[-1] == str(os.getpid())
    assert holder(path) is None
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert other.stdout == ""  # released: free again


def test_lock_is_freed_when_the_holder_is_killed(tmp_path):
    path = tmp_path / "tick.lock"
    script = (
        f"from synthloop.runs.lock import FileLock\nfrom pathlib import Path\nimport time\n"
        f"lock = FileLock(Path({str(path)!r})).acquire()\nprint('held', flush=True)\ntime.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(Locked, match=f"pid {proc.pid}"):
        FileLock(path).acquire()
    proc.kill()
    proc.wait(timeout=10)
    with FileLock(path):
        pass


def _append(path, rows, partial: str = ""):
    with open(path, "a") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
        handle.write(partial)


def test_inbox_records_are_claimed_exactly_once(tmp_path):
    inbox_dir, state = tmp_path / "inbox", tmp_path / "state"
    inbox_dir.mkdir()
    inbox = Inbox(inbox_dir, state)
    _append(inbox_dir / "failures.jsonl", [{"id": i} for i in range(3)], partial='{"id": 3')
    (inbox_dir / "doc.txt").write_text("a new document")
    (inbox_dir / ".partial.jsonl").write_text('{"id": 99}\n')  # hidden files are not inbox files

    first = inbox.claim(tmp_path / "t1", 1)
    assert first.records == 4
    got = list(inbox.read(first))
    assert got[:1] == [{"path": "doc.txt", "text": "a new document"}] and [r["id"] for r in got[1:]] == [0, 1, 2]

    # the half-written line completes, more arrive; the document is not consumed again
    _append(inbox_dir / "failures.jsonl", [], partial='}\n{"id": 4}\n')
    second = inbox.claim(tmp_path / "t2", 2)
    assert [r["id"] for r in inbox.read(second)] == [3, 4]

    # a resumed tick reuses its recorded claim (nothing new, nothing lost)
    _append(inbox_dir / "failures.jsonl", [{"id": 5}])
    again = inbox.claim(tmp_path / "t2", 2)
    assert again == second
    third = inbox.claim(tmp_path / "t3", 3)
    assert [r["id"] for r in inbox.read(third)] == [5]
    assert inbox.claim(tmp_path / "t4", 4).records == 0


def test_a_claim_written_before_a_crash_is_committed_on_resume(tmp_path):
    inbox_dir, state = tmp_path / "inbox", tmp_path / "state"
    inbox_dir.mkdir()
    _append(inbox_dir / "a.jsonl", [{"id": 0}, {"id": 1}])
    inbox = Inbox(inbox_dir, state)
    claim = inbox.claim(tmp_path / "t1", 1)
    inbox.ledger_path.unlink()  # as if killed between writing the claim and committing the ledger
    assert inbox.claim(tmp_path / "t1", 1) == claim
    assert inbox.claim(tmp_path / "t2", 2).records == 0


def test_a_shrunk_file_is_an_error(tmp_path):
    inbox_dir = tmp_path / "inbox"
    inbox_dir.mkdir()
    _append(inbox_dir / "a.jsonl", [{"id": 0}, {"id": 1}])
    inbox = Inbox(inbox_dir, tmp_path / "state")
    inbox.claim(tmp_path / "t1", 1)
    (inbox_dir / "a.jsonl").write_text('{"id": 0}\n')
    with pytest.raises(InboxError, match="shrank"):
        inbox.claim(tmp_path / "t2", 2)
