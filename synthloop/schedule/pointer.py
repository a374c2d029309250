"""The `current` pointer of a schedule: which checkpoint is served, with the held-out metrics it won with.

    runs/<name>/current        a symlink to the promoted checkpoint directory (relative inside the schedule's
                               directory, absolute for a starting model outside it); engines and `synthloop serve`
                               load it as any checkpoint: engine.model: runs/<name>/current
    runs/<name>/current.json   {"checkpoint", "path", "round", "promoted", "metrics", "eval_fingerprint", "history"}

Both are replaced atomically (a new symlink renamed over the old one; the JSON written to a temporary file
and renamed), the symlink first: a reader sees the old or the new checkpoint, never a missing one. Only a
promotion moves them, so a rejected checkpoint is never pointed to.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from synthloop.runs.jsonl import atomic_write


class Current(BaseModel):
    checkpoint: str = Field(description="The policy as the loop names it (a registered name or a directory).")
    path: str = Field(description="The checkpoint directory the symlink points to.")
    round: int
    promoted: str
    metrics: dict[str, Any] = Field(default_factory=dict, description="Its held-out metrics (incl. judge.<name>).")
    eval_fingerprint: str = Field("", description="Hash of the evaluation settings those metrics were measured with.")
    history: list[dict[str, Any]] = Field(default_factory=list, description="Earlier current checkpoints, oldest "
                                          "first: {checkpoint, round, promoted, replaced}.")


class Pointer:
    def __init__(self, schedule_dir: Path):
        self.dir = Path(schedule_dir)
        self.link = self.dir / "current"
        self.json_path = self.dir / "current.json"

    def load(self) -> Current | None:
        return Current.model_validate_json(self.json_path.read_text()) if self.json_path.is_file() else None

    def set(self, checkpoint: str, path: Path, *, round_: int, metrics: dict[str, Any], fingerprint: str) -> Current:
        """Point `current` at `path` (idempotent: setting the same round again changes nothing)."""
        old = self.load()
        if old is not None and old.round == round_ and old.checkpoint == checkpoint:
            self._link(Path(old.path))
            return old
        history = list(old.history) if old else []
        if old is not None:
            history.append({"checkpoint": old.checkpoint, "path": old.path, "round": old.round,
                            "promoted": old.promoted, "replaced": time.strftime("%Y-%m-%dT%H:%M:%S")})
        new = Current(checkpoint=checkpoint, path=str(Path(path).resolve()), round=round_, metrics=metrics,
                      eval_fingerprint=fingerprint, promoted=time.strftime("%Y-%m-%dT%H:%M:%S"), history=history)
        self._link(Path(new.path))
        atomic_write(self.json_path, json.dumps(new.model_dump(mode="json"), indent=2))
        return new

    def _link(self, target: Path) -> None:
        target = target.resolve()
        try:
            rel = target.relative_to(self.dir.resolve())
        except ValueError:
            rel = None
        value = str(rel) if rel is not None else str(target)
        if self.link.is_symlink() and os.readlink(self.link) == value:
            return
        tmp = self.dir / f".current.tmp-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(value, tmp, target_is_directory=True)
        os.replace(tmp, self.link)


def prune(paths: list[Path], keep: int | None, protect: set[Path]) -> list[str]:
    """Delete the weights of all but the newest `keep` of `paths` (oldest first), never one in `protect`
    (the current checkpoint, or one outside the schedule's directory). Returns what was deleted."""
    if keep is None:
        return []
    deleted = []
    candidates = [p for p in paths if p.resolve() not in protect and p.is_dir()]
    for path in candidates[: max(len(candidates) - keep, 0)]:
        shutil.rmtree(path, ignore_errors=True)
        deleted.append(str(path))
    return deleted
