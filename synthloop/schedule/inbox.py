"""The inbox: a directory where new data arrives between ticks, consumed exactly once.

A deployed model (or anything else) appends JSONL records to files in the inbox directory, or drops
whole documents (.txt, .md, .json) into it. Each tick claims what arrived since the last claim:

1. the claim (file, byte range, line count per file; complete lines only) is written atomically into
   the tick's directory;
2. then the ledger's per-file offsets move to the claim's ends (atomically).

A tick killed after (1) finds its claim on resume and reuses it (and re-commits the ledger, which is
idempotent); killed before (1), it claimed nothing. So every record is used by exactly one tick.
JSONL files must only ever be appended to; a file that shrinks is reported, never re-read.
A claim can be capped (`limit` records, oldest files first): the rest stays pending for the next claim.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from synthloop.runs.jsonl import atomic_write

_LINE_FILES = {".jsonl"}
_DOC_FILES = {".txt", ".md", ".json"}


class InboxError(RuntimeError):
    pass


class FileRange(BaseModel):
    file: str
    start: int
    end: int
    records: int
    whole: bool = False  # a document file, consumed as one record


class InboxClaim(BaseModel):
    tick: int
    ranges: list[FileRange]

    @property
    def records(self) -> int:
        return sum(r.records for r in self.ranges)


@dataclass(frozen=True)
class InboxEntry:
    """One claimed record and where it came from; `error` instead of `record` for a line that is not JSON."""

    file: str
    offset: int
    record: dict[str, Any] | None
    error: str | None = None


class Inbox:
    def __init__(self, directory: Path, state_dir: Path):
        self.directory = Path(directory)
        self.ledger_path = Path(state_dir) / "inbox_ledger.json"

    def _ledger(self) -> dict[str, dict[str, Any]]:
        if self.ledger_path.is_file():
            return json.loads(self.ledger_path.read_text())["files"]
        return {}

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(
            p
            for p in self.directory.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix in _LINE_FILES | _DOC_FILES
        )

    def pending(self, limit: int | None = None) -> list[FileRange]:
        """What a claim made now would take (at most `limit` records, if given)."""
        ledger, ranges = self._ledger(), []
        for path in self._files():
            taken = sum(r.records for r in ranges)
            if limit is not None and taken >= limit:
                break
            name, size = path.name, path.stat().st_size
            seen = ledger.get(name, {})
            if path.suffix in _DOC_FILES:
                if not seen and size > 0:
                    ranges.append(FileRange(file=name, start=0, end=size, records=1, whole=True))
                continue
            start = int(seen.get("offset", 0))
            if size < start:
                raise InboxError(
                    f"inbox file {path} shrank from {start} to {size} bytes; inbox files must only "
                    "be appended to (move it away to continue)"
                )
            if size == start:
                continue
            with open(path, "rb") as handle:
                handle.seek(start)
                chunk = handle.read(size - start)
            complete = chunk.rfind(b"\n") + 1  # a line still being written waits for the next tick
            if complete == 0:
                continue
            lines = end = 0
            for line in chunk[:complete].split(b"\n")[:-1]:
                if line.strip():
                    if limit is not None and taken + lines >= limit:
                        break
                    lines += 1
                end += len(line) + 1
            if end:
                ranges.append(FileRange(file=name, start=start, end=start + end, records=lines))
        return ranges

    def claim(self, tick_dir: Path, tick: int, limit: int | None = None) -> InboxClaim:
        """This tick's claim: the one already recorded in `tick_dir` (a resumed tick), or a new one."""
        path = Path(tick_dir) / "claim.json"
        if path.is_file():
            claim = InboxClaim.model_validate_json(path.read_text())
        else:
            claim = InboxClaim(tick=tick, ranges=self.pending(limit))
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, claim.model_dump_json(indent=2))
        self._commit(claim)
        return claim

    def _commit(self, claim: InboxClaim) -> None:
        ledger = self._ledger()
        for r in claim.ranges:
            entry = ledger.setdefault(r.file, {})
            entry["offset"] = max(int(entry.get("offset", 0)), r.end)
            entry["last_tick"] = max(int(entry.get("last_tick", -1)), claim.tick)
        self.ledger_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.ledger_path, json.dumps({"files": ledger}, indent=2))

    def entries(self, claim: InboxClaim) -> Iterator[InboxEntry]:
        """The claimed records with their file and byte offset; documents as {"path", "text"}. A line that is
        not JSON comes as an entry with `error` (it is consumed all the same: a retry would fail again)."""
        for r in claim.ranges:
            path = self.directory / r.file
            with open(path, "rb") as handle:
                handle.seek(r.start)
                data = handle.read(r.end - r.start)
            if r.whole:
                yield InboxEntry(r.file, 0, {"path": r.file, "text": data.decode("utf-8", errors="replace")})
                continue
            offset = r.start
            for line in data.split(b"\n"):
                at, offset = offset, offset + len(line) + 1
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield InboxEntry(r.file, at, None, f"not JSON: {exc}")
                    continue
                if not isinstance(record, dict):
                    yield InboxEntry(r.file, at, None, f"not a JSON object: {type(record).__name__}")
                    continue
                yield InboxEntry(r.file, at, record)

    def read(self, claim: InboxClaim) -> Iterator[dict[str, Any]]:
        """The claimed records. JSONL lines as they are; documents as {"path", "text"}; a bad line raises."""
        for entry in self.entries(claim):
            if entry.error is not None:
                raise InboxError(f"{self.directory / entry.file}: the line at byte {entry.offset} is {entry.error}")
            yield entry.record
