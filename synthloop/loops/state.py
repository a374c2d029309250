"""A loop's state on disk (`state.json`, rewritten atomically after every stage).

    {"checkpoints": {"policy": ".../round-001/train-sft/model"},     # the current checkpoint of each role
     "rounds": [{"round": 0, "label": "baseline", "status": "done", "checkpoint_in": {...},
                 "stages": {"evaluate": {"outputs": {...}, "seconds": 41.2, "peak_rss_gib": 3.4}},
                 "metrics": {"eval_accuracy": 0.31, ...}}, ...]}

A stage is in `stages` only once it finished; its checkpoint change (a training stage) is written in
the same atomic update, so the state never holds a checkpoint whose stage is not recorded, or the reverse.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from synthloop.runs.jsonl import atomic_write


class StageRecord(BaseModel):
    outputs: dict[str, Any] = Field(default_factory=dict)
    seconds: float = 0.0
    peak_rss_gib: float | None = None
    finished: str = ""


class RoundRecord(BaseModel):
    round: int
    label: str = ""
    status: str = "running"
    checkpoint_in: dict[str, str] = Field(default_factory=dict)
    stages: dict[str, StageRecord] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)


class LoopState(BaseModel):
    checkpoints: dict[str, str] = Field(default_factory=dict)
    rounds: list[RoundRecord] = Field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> LoopState:
        return cls.model_validate_json(path.read_text()) if path.is_file() else cls()

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(self.model_dump(mode="json"), indent=2))

    def round(self, index: int) -> RoundRecord | None:
        return next((r for r in self.rounds if r.round == index), None)

    def done_rounds(self) -> list[RoundRecord]:
        return [r for r in self.rounds if r.status == "done"]
