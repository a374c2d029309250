"""IFEval's prompts as tasks (Zhou et al., 2023): 541 instructions with verifiable constraints.

    tasks:
      eval: {kind: ifeval}                  # all 541 prompts with tasks.eval_count: null
    judges:
      - {kind: ifeval}                      # prompt-level strict: every instruction followed

Rows: `{"prompt": <the prompt>, "reference": <the IFEval row: key, prompt, instruction_id_list, kwargs>, "key":
...}`, in file order. A held-out set whose references are IFEval rows is also scored with IFEval's own metrics
(prompt- and instruction-level, strict and loose, per family; see `synthloop.loops.heldout`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from synthloop.configs import Config

IFEVAL_PROMPTS = Path("../shared/data/ifeval/input_data.jsonl")


class IFEvalTasks(Config):
    kind: Literal["ifeval"] = "ifeval"
    path: Path = Field(IFEVAL_PROMPTS, description="IFEval's input_data.jsonl (or any file of rows with prompt, "
                                                   "instruction_id_list and kwargs).")

    def rows(self) -> Iterator[dict[str, Any]]:
        path = Path(self.path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such IFEval file")
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if "instruction_id_list" not in row or "prompt" not in row:
                raise KeyError(f"{path}: a row without prompt / instruction_id_list (keys: {', '.join(row)})")
            reference = {k: row[k] for k in ("key", "prompt", "instruction_id_list", "kwargs") if k in row}
            yield {"prompt": row["prompt"], "reference": reference, "key": row.get("key")}
