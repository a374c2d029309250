"""Skill labels for STAT: a teacher LLM picks, for each task, the skills of an inventory it needs.

The answer is constrained to the inventory's names (JSON enums under constrained decoding): the skill the
task needs most (always one), then any others it also needs; duplicates are dropped and at most
`max_labels` kept. A task whose label names no known skill (an engine without constrained decoding) goes
to filtered.jsonl.

    labels = SkillLabels(skills="runs/stat/skills/inventory.yaml", max_labels=2)
    synthloop.generate(labels, engine=teacher, run="runs/labels", inputs=[{"task": "...", "task_id": "t1"}])

Records: `{"task": str, "skills": [names], "task_id": ...}` (`task_id` is carried from the input when given).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import dspy
from pydantic import Field

from synthloop.prompts.stat import LabelTaskSkills
from synthloop.runs.inputs import DatasetInput
from synthloop.synth.base import BaseProgramConfig, SynthProgram, as_text, carry_columns, clip, dataset_rows
from synthloop.synth.skill_inventory import Skill, SkillInventory


class SkillLabelsConfig(BaseProgramConfig):
    kind: Literal["skill_labels"] = "skill_labels"
    skills: Path | list[str] = Field(description="The skill inventory to choose from: skills.yaml (from `synthloop "
                                                 "skills build`), a .txt file with one skill per line, or a list.")
    max_labels: int = Field(2, ge=1, le=8, description="Most skills kept per task (in the teacher's order).")
    max_task_chars: int = Field(1500, ge=50, description="Tasks are cut to this many characters.")
    inputs: DatasetInput | None = Field(
        None, description="The tasks to label (when run by `synthloop generate`): {path: ..., columns: {task: "
        "<column>}}.")


def load_skills(skills: Path | list[str]) -> list[Skill]:
    """The inventory's skills (a file) or the given names (a list)."""
    if isinstance(skills, list):
        if not skills:
            raise ValueError("the skill list is empty")
        return [Skill(name=s) for s in dict.fromkeys(skills)]
    return SkillInventory.load(skills).skills


class SkillLabels(SynthProgram):
    name = "skill_labels"
    config_class = SkillLabelsConfig

    def __init__(self, config: SkillLabelsConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.skills = load_skills(self.config.skills)
        names = tuple(s.name for s in self.skills)
        signature = LabelTaskSkills.with_updated_fields("skill", type_=Literal[names])
        self.label = dspy.Predict(signature.with_updated_fields("other_skills", type_=list[Literal[names]]))
        self._shown = [s.prompt_text() for s in self.skills]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "skills": self._shown}  # an edited inventory is a different run

    def inputs(self) -> Iterator[dict[str, Any]]:
        if self.config.inputs is None:
            raise NotImplementedError("skill_labels: set program.inputs (the tasks) or pass inputs to generate()")
        for row in dataset_rows(self.config.inputs):
            if "task" not in row:
                from synthloop.configs import ConfigError

                raise ConfigError(f"{self.config.inputs.path}: no 'task' column; map one with inputs.columns: "
                                  f"{{task: <column>}} (columns: {', '.join(row)})")
            yield row

    def _clean(self, out: dspy.Prediction) -> list[str]:
        known = {s.name for s in self.skills}
        names = [out.skill, *(out.other_skills or [])]
        return [n for n in dict.fromkeys(names) if n in known][: self.config.max_labels]

    async def aforward(self, task: Any, **_: Any) -> dspy.Prediction:
        out = await self.label.acall(task=clip(as_text(task), self.config.max_task_chars), skill_list=self._shown)
        return dspy.Prediction(skills=self._clean(out))

    def to_record(self, inputs: dict[str, Any], prediction: dspy.Prediction) -> dict[str, Any]:
        return carry_columns({"task": as_text(inputs["task"]), "skills": prediction.skills}, inputs, ["task_id"])

    def accept(self, record: dict[str, Any]) -> str | None:
        return None if record["skills"] else "the teacher named no skill"
