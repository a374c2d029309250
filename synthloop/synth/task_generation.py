"""Task generation from raw text (Bonito-style): passage + task type -> (instruction, response) records.

Any text column of any dataset is the input (`inputs:`, a `DatasetInput`). Each passage gets
`tasks_per_passage` tasks, their types taken in turn from `task_types`; each type has its own predictor
(so compiling gives it its own demos), its own user-message template, and a check of its answer where
the type allows one: an extractive answer must occur in the passage, a label must be one of the type's
labels, a summary must be shorter than the passage. Records are TRL `messages`, with the passage, the
task type and the check results beside them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any, Literal

import dspy
from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthloop.judges.verifiers.span import SpanVerifier
from synthloop.prompts.task_generation import GenerateTask
from synthloop.runs.inputs import DatasetInput
from synthloop.synth.base import BaseProgramConfig, SynthProgram, as_text, carry_columns, clip

Check = Literal["span_in_passage", "label", "shorter_than_passage"]
_PLACEHOLDER = re.compile(r"\{[a-z_]+\}|\[\[ ## ", re.IGNORECASE)


class TaskType(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Identifier, e.g. extractive_qa; stored in every record as task_type.")
    description: str = Field(description="What to create, told to the model (added to the instruction).")
    template: str = Field(description="The user message of the record: {passage} and {task} are filled in.")
    labels: list[str] | None = Field(None, description="Closed answer set (e.g. yes/no); the answer is "
                                                       "constrained to one of them.")
    checks: list[Check] = Field(default_factory=list, description="Checks the answer must pass: span_in_passage, "
                                                                  "label, shorter_than_passage.")


BUILTIN_TASK_TYPES: dict[str, TaskType] = {t.name: t for t in [
    TaskType(
        name="yes_no_qa",
        description="Task type: yes-no question. Ask a question about a fact in the passage that is answered "
        "by yes or no; the answer is 'yes' or 'no'.",
        template="{passage}\n\nQuestion: {task}\nAnswer yes or no.",
        labels=["yes", "no"], checks=["label"]),
    TaskType(
        name="extractive_qa",
        description="Task type: extractive question answering. Ask a question whose answer is a short phrase "
        "(a name, number, date or a few words) copied word for word from the passage; the answer is that phrase.",
        template="{passage}\n\nQuestion: {task}\nAnswer with the exact words from the passage.",
        checks=["span_in_passage"]),
    TaskType(
        name="nli",
        description="Task type: natural language inference. Write one new sentence (the hypothesis) that the "
        "passage either supports (entailment), contradicts (contradiction) or neither (neutral); the answer is "
        "that label.",
        template="Premise: {passage}\n\nHypothesis: {task}\n\nDoes the premise entail the hypothesis? "
        "Answer entailment, neutral or contradiction.",
        labels=["entailment", "neutral", "contradiction"], checks=["label"]),
    TaskType(
        name="open_qa",
        description="Task type: open question answering. Ask an open question about the passage (why, how, "
        "what for) and answer it in one to three sentences using the passage.",
        template="{passage}\n\n{task}"),
    TaskType(
        name="summarization",
        description="Task type: summarization. Write an instruction asking for a short summary of the "
        "passage; the answer is a summary of one to three sentences.",
        template="{task}\n\n{passage}",
        checks=["shorter_than_passage"]),
]}


class TaskGenerationConfig(BaseProgramConfig):
    kind: Literal["task_generation"] = "task_generation"
    inputs: DatasetInput | None = Field(
        None, description="The texts: a dataset file or run directory and which column holds the passage, e.g. "
        "{path: data.jsonl, columns: {passage: text}}. Python callers may pass rows to generate() instead.")
    task_types: list[TaskType] = Field(
        default_factory=lambda: list(BUILTIN_TASK_TYPES.values()),
        description="Task types, taken in turn per passage. A name picks a built-in (yes_no_qa, extractive_qa, "
        "nli, open_qa, summarization); a mapping {name, description, template, labels, checks} adds your own.")
    tasks_per_passage: int = Field(1, ge=1, description="Tasks made from each passage (of successive types).")
    max_passage_chars: int = Field(2000, ge=100, description="Passages are cut to this many characters (at a "
                                                              "sentence end) before prompting.")
    min_passage_chars: int = Field(200, ge=1, description="Shorter passages are skipped.")
    max_answer_words: int = Field(30, ge=1, description="Extractive answers: most words a span may have.")
    drop_failed_checks: bool = Field(True, description="Drop records whose answer fails its type's checks (into "
                                                       "filtered.jsonl, with the reason); else keep them, marked.")
    keep_columns: list[str] = Field(default_factory=list, description="Input columns copied into every record "
                                                                      "(e.g. an id or a label for lineage).")

    @field_validator("task_types", mode="before")
    @classmethod
    def _builtin_names(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        out = []
        for item in value:
            if isinstance(item, str):
                if item not in BUILTIN_TASK_TYPES:
                    raise ValueError(f"unknown task type {item!r}; built-in: {', '.join(BUILTIN_TASK_TYPES)} "
                                     "(or give a mapping with name, description, template)")
                item = BUILTIN_TASK_TYPES[item]
            out.append(item)
        if not out:
            raise ValueError("give at least one task type")
        return out


def _signature(task_type: TaskType) -> type[dspy.Signature]:
    signature = GenerateTask.with_instructions(f"{GenerateTask.instructions}\n\n{task_type.description}")
    if task_type.labels:
        signature = signature.with_updated_fields("answer", type_=Literal[tuple(task_type.labels)])
    return signature


class TaskGeneration(SynthProgram):
    name = "task_generation"
    config_class = TaskGenerationConfig

    def __init__(self, config: TaskGenerationConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.types = {t.name: t for t in self.config.task_types}
        self.generators = {name: dspy.Predict(_signature(t)) for name, t in self.types.items()}
        self.span = SpanVerifier(max_words=self.config.max_answer_words)

    def inputs(self) -> Iterator[dict[str, Any]]:
        if self.config.inputs is None:
            raise ValueError("task_generation needs program.inputs (a dataset with a passage column)")
        names = list(self.types)
        turn = 0
        for row in self.config.inputs.rows():
            if "passage" not in row:
                raise KeyError(f"{self.config.inputs.path}: no 'passage' column; map one with "
                               f"inputs.columns: {{passage: <column>}} (columns: {', '.join(row)})")
            passage = as_text(row["passage"])
            if len(passage) < self.config.min_passage_chars:
                continue
            kept = {k: row[k] for k in self.config.keep_columns if k in row}
            for _ in range(self.config.tasks_per_passage):
                yield {"passage": passage, "task_type": names[turn % len(names)], **kept}
                turn += 1

    def _type_of(self, passage: str, task_type: str | None) -> str:
        if task_type is None:  # rows from a caller: a type that depends only on the passage
            names = list(self.types)
            return names[int(hashlib.sha256(passage.encode()).hexdigest(), 16) % len(names)]
        if task_type not in self.types:
            raise ValueError(f"task type {task_type!r} is not configured ({', '.join(self.types)})")
        return task_type

    async def aforward(self, passage: Any, task_type: str | None = None, **_: Any) -> dspy.Prediction:
        passage = clip(as_text(passage), self.config.max_passage_chars)
        kind = self._type_of(passage, task_type)
        out = await self.generators[kind].acall(passage=passage)
        return dspy.Prediction(passage=passage, task_type=kind, task=out.task.strip(), answer=str(out.answer).strip())

    def forward(self, passage: Any, task_type: str | None = None, **_: Any) -> dspy.Prediction:
        passage = clip(as_text(passage), self.config.max_passage_chars)
        kind = self._type_of(passage, task_type)
        out = self.generators[kind](passage=passage)
        return dspy.Prediction(passage=passage, task_type=kind, task=out.task.strip(), answer=str(out.answer).strip())

    def check(self, task_type: TaskType, passage: str, answer: str) -> dict[str, str | None]:
        """Each of the type's checks -> None if it passed, else why not."""
        out: dict[str, str | None] = {}
        for check in task_type.checks:
            if check == "span_in_passage":
                verdict = self.span.verify(answer, passage)
                out[check] = None if verdict.passed else verdict.reason
            elif check == "label":
                ok = answer.strip().lower() in {label.lower() for label in task_type.labels or []}
                out[check] = None if ok else f"answer {answer[:40]!r} is not one of {task_type.labels}"
            elif check == "shorter_than_passage":
                ok = len(answer) <= 0.7 * len(passage) and len(answer.split()) >= 5
                out[check] = None if ok else f"summary of {len(answer.split())} words for a passage of " \
                                             f"{len(passage.split())}"
        return out

    def to_record(self, inputs: dict[str, Any], prediction: dspy.Prediction) -> dict[str, Any]:
        task_type = self.types[prediction.task_type]
        user = task_type.template.format(passage=prediction.passage, task=prediction.task)
        checks = self.check(task_type, prediction.passage, prediction.answer)
        record = {
            "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": prediction.answer}],
            "task_type": prediction.task_type,
            "task": prediction.task,
            "answer": prediction.answer,
            "passage": prediction.passage,
            "checks": {name: reason is None for name, reason in checks.items()},
        }
        return carry_columns(record, inputs, self.config.keep_columns)

    def accept(self, record: dict[str, Any]) -> str | None:
        task, answer, passage = record["task"], record["answer"], record["passage"]
        if len(task.split()) < 3:
            return f"task too short ({len(task.split())} words)"
        if not answer:
            return "empty answer"
        if _PLACEHOLDER.search(task) or _PLACEHOLDER.search(answer):
            return "copied a template placeholder"
        if len(task) > 0.8 * len(passage):
            return "task copies the passage"
        if self.config.drop_failed_checks:
            failed = self.check(self.types[record["task_type"]], passage, answer)
            reason = next((f"{name}: {why}" for name, why in failed.items() if why), None)
            if reason:
                return reason
        return None

    def judge_item(self, record: dict[str, Any], reference: Any = None):
        item = super().judge_item(record, reference)
        return item if reference is not None else item.model_copy(update={"reference": record["passage"]})
