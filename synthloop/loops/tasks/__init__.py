"""Task sources of a loop: where the prompts (and their reference answers) come from.

Every source yields rows `{"prompt": str, "reference": ..., ...}` in a fixed order (row i is the same
on every run, which resume relies on):

    tasks:
      train: {kind: dataset, path: ../shared/data/gsm8k/train.jsonl, prompt_column: question,
              reference_column: answer}
      eval:  {kind: arithmetic, seed: 1, count: 200, digits: 2, operations: 2}

or a synthesis program that writes each round's tasks (`program`, see `tasks/program.py`), or IFEval's
prompts (`ifeval`).

`TASK_SOURCES` maps `kind` to its config class (a pydantic model with `rows()`); a recipe that needs
another source registers it there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union

from pydantic import Field

from synthloop.loops.tasks.arithmetic import ArithmeticTasks
from synthloop.loops.tasks.ifeval import IFEvalTasks
from synthloop.loops.tasks.longbench_write import LongBenchWriteTasks
from synthloop.loops.tasks.program import ProgramTasks
from synthloop.loops.tasks.questions import QuestionTasks
from synthloop.runs.inputs import DatasetInput


class DatasetTasks(DatasetInput):
    """A dataset file, a saved dataset or a synthloop run directory (see `synthloop.runs.inputs`)."""

    kind: Literal["dataset"] = "dataset"
    prompt_column: str = Field("prompt", description="The column holding the task text.")
    reference_column: str | None = Field(
        "reference", description="The column holding the reference answer (e.g. GSM8K's `answer`); null if none."
    )

    def rows(self) -> Iterator[dict[str, Any]]:
        for row in super().rows():
            if self.prompt_column not in row:
                raise KeyError(f"{self.path}: no column {self.prompt_column!r} (columns: {', '.join(row)}); "
                               "set prompt_column")
            out = {k: v for k, v in row.items() if k not in (self.prompt_column, self.reference_column)}
            out["prompt"] = row[self.prompt_column]
            if self.reference_column is not None:
                if self.reference_column not in row:
                    raise KeyError(f"{self.path}: no column {self.reference_column!r} (columns: "
                                   f"{', '.join(row)}); set reference_column, or null")
                out["reference"] = row[self.reference_column]
            yield out


TASK_SOURCES: dict[str, type] = {"dataset": DatasetTasks, "arithmetic": ArithmeticTasks,
                                 "longbench_write": LongBenchWriteTasks, "questions": QuestionTasks,
                                 "ifeval": IFEvalTasks, "program": ProgramTasks}
TaskSource = Annotated[Union[tuple(TASK_SOURCES.values())], Field(discriminator="kind")]  # noqa: UP007

__all__ = ["TASK_SOURCES", "ArithmeticTasks", "DatasetTasks", "IFEvalTasks", "LongBenchWriteTasks", "ProgramTasks",
           "QuestionTasks", "TaskSource"]
