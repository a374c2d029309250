"""Instruct-SkillMix stage 1: which skills do instructions need, or which skills does a topic call for.

Two sources (exactly one per run):
  - `inputs:` an instruction dataset: each example -> the skills answering it needs;
  - `topics:` a list of topics (or a .txt file, one per line): each topic, asked `samples_per_topic`
    times with different seeds -> skills for it.
Records hold the normalised skill names; `synthloop skills build RUN` (or `build_inventory`) clusters
them into the inventory file that stage 2 (`skillmix`) draws from.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import dspy
from pydantic import Field, model_validator

from synthloop.configs import ConfigError
from synthloop.prompts.skillmix import SkillsOfInstruction, SkillsOfTopic
from synthloop.runs.inputs import DatasetInput
from synthloop.synth.base import BaseProgramConfig, SynthProgram, as_text, clip, dataset_rows
from synthloop.synth.skill_inventory import normalize_skill


class SkillExtractionConfig(BaseProgramConfig):
    kind: Literal["skill_extraction"] = "skill_extraction"
    inputs: DatasetInput | None = Field(
        None, description="An instruction dataset, with its instruction column mapped: {path: ..., columns: "
        "{instruction: <column>}}. Give this or topics.")
    topics: list[str] | Path | None = Field(
        None, description="Topics to ask about (a list, or a .txt file with one per line). Give this or inputs.")
    samples_per_topic: int = Field(3, ge=1, description="Times each topic is asked (different seeds, more skills).")
    max_skills: int = Field(5, ge=1, le=8, description="Most skills kept per example or topic sample.")
    max_instruction_chars: int = Field(1500, ge=50, description="Instructions are cut to this many characters.")

    @model_validator(mode="after")
    def _one_source(self) -> SkillExtractionConfig:
        if (self.inputs is None) == (self.topics is None):
            raise ValueError("give exactly one of inputs (an instruction dataset) and topics")
        return self


class SkillExtraction(SynthProgram):
    name = "skill_extraction"
    config_class = SkillExtractionConfig

    def __init__(self, config: SkillExtractionConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.from_instruction = dspy.Predict(SkillsOfInstruction)
        self.from_topic = dspy.Predict(SkillsOfTopic)

    def topic_list(self) -> list[str]:
        topics = self.config.topics
        if isinstance(topics, Path):
            if not topics.is_file():
                raise FileNotFoundError(f"{topics}: topics file not found (one topic per line)")
            topics = [t.strip() for t in topics.read_text().splitlines() if t.strip() and not t.startswith("#")]
        if not topics:
            raise ConfigError("program.topics is empty")
        return list(topics)

    def inputs(self) -> Iterator[dict[str, Any]]:
        if self.config.topics is not None:
            topics = self.topic_list()
            for _ in range(self.config.samples_per_topic):
                for topic in topics:
                    yield {"topic": topic}
            return
        for row in dataset_rows(self.config.inputs):
            if "instruction" not in row:
                raise ConfigError(f"{self.config.inputs.path}: no 'instruction' column; map one with "
                               f"inputs.columns: {{instruction: <column>}} (columns: {', '.join(row)})")
            yield {"instruction": clip(as_text(row["instruction"]), self.config.max_instruction_chars)}

    async def aforward(self, instruction: Any = None, topic: str | None = None, **_: Any) -> dspy.Prediction:
        if topic is not None:
            out = await self.from_topic.acall(topic=topic)
        else:
            out = await self.from_instruction.acall(instruction=as_text(instruction))
        return dspy.Prediction(skills=self._clean(out.skills))

    def _clean(self, names: list[str]) -> list[str]:
        cleaned = dict.fromkeys(n for n in (normalize_skill(x) for x in names or []) if n)
        return list(cleaned)[: self.config.max_skills]

    def to_record(self, inputs: dict[str, Any], prediction: dspy.Prediction) -> dict[str, Any]:
        source = {"topic": inputs["topic"]} if inputs.get("topic") is not None else \
            {"instruction": as_text(inputs.get("instruction"))}
        return {**source, "skills": prediction.skills}

    def accept(self, record: dict[str, Any]) -> str | None:
        return None if record["skills"] else "no usable skill names"
