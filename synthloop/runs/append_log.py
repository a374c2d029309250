"""Append-only JSONL files, flushed line by line: a kill loses at most the line being written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class AppendLog:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

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


def next_part(records_dir: Path) -> Path:
    """A new part file per session, so a resumed run never appends after a torn line."""
    existing = sorted(records_dir.glob("part-*.jsonl"))
    index = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
    return records_dir / f"part-{index:05d}.jsonl"
