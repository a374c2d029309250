"""Open questions from MT-Bench-format files (`turns`, `category`): MT-Bench and Vicuna-bench.

    tasks:
      train: {kind: questions, categories: [generic, knowledge, roleplay, writing, humanities]}

Rows: `{"prompt": <turn>, "category": ..., "question_id": ..., "source": <file name>}`, files in order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from synthloop.configs import Config


class QuestionTasks(Config):
    kind: Literal["questions"] = "questions"
    paths: list[Path] = Field(
        default_factory=lambda: [Path("../shared/data/mt_bench/vicuna_bench_question.jsonl"),
                                 Path("../shared/data/mt_bench/question.jsonl")],
        description="MT-Bench-format .jsonl files (each row: question_id, category, turns).")
    categories: list[str] | None = Field(None, description="Keep these categories only (null: all).")
    turn: int = Field(0, ge=0, description="Which turn is the prompt (0: the first question).")

    def rows(self) -> Iterator[dict[str, Any]]:
        for path in self.paths:
            if not Path(path).is_file():
                raise FileNotFoundError(f"{path}: no such question file")
            for line in Path(path).read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                row = json.loads(line)
                if self.categories is not None and row.get("category") not in self.categories:
                    continue
                turns = row.get("turns") or []
                if self.turn < len(turns):
                    yield {"prompt": turns[self.turn], "category": row.get("category"),
                           "question_id": row.get("question_id"), "source": Path(path).name}
