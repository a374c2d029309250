"""LongBench-Write prompts (THUDM/LongWriter, evaluation/): writing requests with a required length.

    tasks:
      eval: {kind: longbench_write, sets: [en, ruler], max_length: 800, ruler_lengths: [100, 200, 400]}

Rows: `{"prompt": ..., "reference": <required words>, "set": "en" | "ruler", "type": <genre>}`; the
reference is what `synthloop.judges.length.LengthFollowingJudge` scores against.

- `en`: longbench_write_en.jsonl (60 English prompts asking for 100 to 12,000 words), those whose
  required length is within [min_length, max_length].
- `ruler`: longwrite_ruler.jsonl, a length-control probe: the same prompts at fixed lengths (1,000 to
  30,000 words). Small models cannot write that much, so by default the English prompts are rewritten
  at `ruler_lengths` ("Write a 1000-word China travel guide" -> "Write a 200-word China travel guide");
  an empty list keeps the original English rows within [min_length, max_length].
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from synthloop.configs import Config

_CHINESE = re.compile(r"[\u4e00-\u9fff]")


class LongBenchWriteTasks(Config):
    kind: Literal["longbench_write"] = "longbench_write"
    dir: Path = Field(Path("../shared/data/longbench_write"),
                      description="The folder holding longbench_write_en.jsonl and longwrite_ruler.jsonl.")
    sets: list[Literal["en", "ruler"]] = Field(default_factory=lambda: ["en", "ruler"],
                                               description="Which prompt sets, in this order.")
    min_length: int = Field(0, ge=0, description="Keep prompts requiring at least this many words.")
    max_length: int | None = Field(800, ge=1, description="Keep prompts requiring at most this many words "
                                                          "(null: all, up to 30,000).")
    ruler_lengths: list[int] = Field(
        default_factory=lambda: [100, 200, 400],
        description="Rewrite each English ruler prompt at these lengths (empty: keep its original lengths).")

    def _read(self, name: str) -> list[dict[str, Any]]:
        path = Path(self.dir) / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (tasks.*.dir must hold the LongBench-Write files)")
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def _fits(self, length: int) -> bool:
        return length >= self.min_length and (self.max_length is None or length <= self.max_length)

    def rows(self) -> Iterator[dict[str, Any]]:
        for name in self.sets:
            if name == "en":
                for i, row in enumerate(self._read("longbench_write_en.jsonl")):
                    if self._fits(row["length"]):
                        yield {"prompt": row["prompt"], "reference": row["length"], "set": "en", "type": row["type"],
                               "source_row": i}
                continue
            english = [(i, r) for i, r in enumerate(self._read("longwrite_ruler.jsonl"))
                       if not _CHINESE.search(r["prompt"])]
            if not self.ruler_lengths:
                for i, row in english:
                    if self._fits(row["length"]):
                        yield {"prompt": row["prompt"], "reference": row["length"], "set": "ruler",
                               "type": row["type"], "source_row": i}
                continue
            shortest = min(r["length"] for _, r in english)
            for length in self.ruler_lengths:
                for i, row in english:
                    if row["length"] == shortest:
                        prompt = row["prompt"].replace(str(row["length"]), str(length), 1)
                        yield {"prompt": prompt, "reference": length, "set": "ruler", "type": row["type"],
                               "source_row": i}
