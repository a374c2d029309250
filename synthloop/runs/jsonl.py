"""JSONL on disk, crash-safe: whole files written atomically (`write_jsonl`, `atomic_write`), append-only files
flushed line by line (`AppendLog`, one new part per session: `next_part`), read up to their last whole line
(`read_jsonl`): a kill loses at most the line being written."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows atomically (a kill leaves the old file or none, never half a file); returns the count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows]
    atomic_write(path, "".join(lines))
    return len(lines)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                return  # torn by a kill mid-write: the item was not finished
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


class AppendLog:
    """An append-only JSONL file, flushed per line."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        if _ends_torn(path):  # a kill cut the last line: end it, so the next row starts a line of its own
            self._handle.write("\n")
            self._handle.flush()

    def write(self, row: dict[str, Any]) -> None:
        self._handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _ends_torn(path: Path) -> bool:
    with open(path, "rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return False
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"


def next_part(records_dir: Path) -> Path:
    """A new part file per session, so a resumed run never appends after a torn line."""
    existing = sorted(records_dir.glob("part-*.jsonl"))
    index = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
    return records_dir / f"part-{index:05d}.jsonl"
