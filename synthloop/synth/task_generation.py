"""Task generation from raw text (Bonito-style): passage + task type -> (instruction, response) records.

Any text column of any dataset is the input (`inputs:`, a `DatasetInput`). Each passage gets
`tasks_per_passage` tasks, their types taken in turn from `task_types`. Each type has its own predictor
(so compiling gives it its own demos) and signature, its user-message template, and checks of its answer
where the type allows: an extractive answer must occur in the passage (and not in the question), a summary
must be shorter than the passage. Labelled types (yes-no QA, NLI) get a target label in turn, so labels
come out balanced. Records are TRL `messages`, with the passage, the task type, the generated fields and
the check results beside them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any, Literal

import dspy
from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthloop.configs import ConfigError
from synthloop.judges.verifiers.span import SpanVerifier, normalize
from synthloop.prompts.task_generation import BUILTIN_SIGNATURES, GenerateLabeledTask, GenerateTask
from synthloop.runs.inputs import DatasetInput
from synthloop.synth.base import (
    PROMPT_ECHO,
    BaseProgramConfig,
    SynthProgram,
    as_text,
    carry_columns,
    clip,
    expand_builtins,
    text_rows,
)

Check = Literal["span_in_passage", "answer_not_in_task", "shorter_than_passage", "task_is_question"]
_QUESTION = re.compile(r"\?\s*$|^\s*(?:what|which|who|whom|whose|when|where|why|how|is|are|was|were|does|do|did|"
                       r"can|could|has|have|had|will|would|should)\b", re.IGNORECASE)
_FIELD = re.compile(r"\{([a-z_]+)\}")


class TaskType(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Identifier, e.g. extractive_qa; stored in every record as task_type.")
    signature: str | None = Field(None, description="A built-in signature of synthloop.prompts.task_generation "
                                                    f"({', '.join(BUILTIN_SIGNATURES)}); none: a generic one "
                                                    "(fields task, answer) told `description`.")
    description: str | None = Field(None, description="What to create, added to the signature's instruction "
                                                      "(required without a built-in signature).")
    template: str = Field(description="The record's user message: {passage} and the signature's fields "
                                      "({question}, {hypothesis}, {task}...) are filled in.")
    answer_field: str = Field("answer", description="The field that becomes the assistant message.")
    labels: list[str] | None = Field(None, description="A closed answer set (e.g. yes/no): each task of this type "
                                                       "is asked to have the next label in turn as its answer.")
    checks: list[Check] = Field(default_factory=list, description="Checks the record must pass: span_in_passage, "
                                                                  "answer_not_in_task, shorter_than_passage, "
                                                                  "task_is_question.")


BUILTIN_TASK_TYPES: dict[str, TaskType] = {t.name: t for t in [
    TaskType(name="yes_no_qa", signature="YesNoQuestion", labels=["yes", "no"], checks=["task_is_question"],
             template="{passage}\n\nQuestion: {question}\nAnswer yes or no."),
    TaskType(name="extractive_qa", signature="ExtractiveQuestion",
             checks=["task_is_question", "span_in_passage", "answer_not_in_task"],
             template="{passage}\n\nQuestion: {question}\nAnswer with the exact words from the passage."),
    TaskType(name="nli", signature="NLIHypothesis", answer_field="label",
             labels=["entailment", "neutral", "contradiction"],
             template="Premise: {passage}\n\nHypothesis: {hypothesis}\n\nDoes the premise entail the hypothesis? "
             "Answer entailment, neutral or contradiction."),
    TaskType(name="open_qa", signature="OpenQuestion", checks=["task_is_question"], template="{passage}\n\n{question}"),
    TaskType(name="summarization", signature="SummaryRequest", answer_field="summary",
             checks=["shorter_than_passage"], template="{instruction}\n\n{passage}"),
]}


class TaskGenerationConfig(BaseProgramConfig):
    kind: Literal["task_generation"] = "task_generation"
    inputs: DatasetInput | None = Field(
        None, description="The texts: a dataset file or run directory and which column holds the passage, e.g. "
        "{path: data.jsonl, columns: {passage: text}}. Python callers may pass rows to generate() instead.")
    task_types: list[TaskType] = Field(
        default_factory=lambda: list(BUILTIN_TASK_TYPES.values()),
        description="Task types, taken in turn per passage. A name picks a built-in (yes_no_qa, extractive_qa, "
        "nli, open_qa, summarization); a mapping {name, description, template, answer_field, labels, checks} adds "
        "your own.")
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
        return expand_builtins(value, BUILTIN_TASK_TYPES, "task type", "name, description, template")


def _signature(task_type: TaskType) -> type[dspy.Signature]:
    if task_type.signature is not None:
        if task_type.signature not in BUILTIN_SIGNATURES:
            raise ConfigError(f"task type {task_type.name}: unknown signature {task_type.signature!r} "
                              f"(built-in: {', '.join(BUILTIN_SIGNATURES)})")
        signature = BUILTIN_SIGNATURES[task_type.signature]
    else:
        if not task_type.description:
            raise ConfigError(f"task type {task_type.name}: give a description (or a built-in signature)")
        signature = GenerateLabeledTask if task_type.labels else GenerateTask
    if task_type.description:
        signature = signature.with_instructions(f"{signature.instructions}\n\n{task_type.description}")
    fields = set(signature.fields) | {"passage"}
    unknown = [f for f in _FIELD.findall(task_type.template) if f not in fields]
    if unknown or task_type.answer_field not in signature.fields:
        bad = unknown[0] if unknown else task_type.answer_field
        raise ConfigError(f"task type {task_type.name}: {bad!r} is not a field of its signature "
                          f"({', '.join(sorted(fields))})")
    if task_type.labels and task_type.answer_field not in signature.input_fields:
        raise ConfigError(f"task type {task_type.name}: labels need a signature that takes the answer as input")
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
            raise ConfigError("task_generation needs program.inputs (a dataset with a passage column)")
        names = list(self.types)
        turn, per_type = 0, dict.fromkeys(names, 0)
        for passage, kept in text_rows(self.config.inputs, "passage", self.config.min_passage_chars,
                                       self.config.keep_columns):
            for _ in range(self.config.tasks_per_passage):
                kind = names[turn % len(names)]
                labels = self.types[kind].labels
                item = {"passage": passage, "task_type": kind, **kept}
                if labels:
                    item["label"] = labels[per_type[kind] % len(labels)]
                yield item
                turn += 1
                per_type[kind] += 1

    def _plan(self, passage: str, task_type: str | None, label: str | None) -> tuple[str, str | None]:
        digest = int(hashlib.sha256(passage.encode()).hexdigest(), 16)
        if task_type is None:  # rows from a caller: a type (and label) that depend only on the passage
            names = list(self.types)
            task_type = names[digest % len(names)]
        if task_type not in self.types:
            raise ValueError(f"task type {task_type!r} is not configured ({', '.join(self.types)})")
        labels = self.types[task_type].labels
        if labels and label not in labels:
            label = labels[(digest // 7) % len(labels)]
        return task_type, label if labels else None

    def _call_args(self, passage: Any, task_type: str | None, label: str | None):
        passage = clip(as_text(passage), self.config.max_passage_chars)
        kind, label = self._plan(passage, task_type, label)
        args = {"passage": passage}
        if label is not None:
            args[self.types[kind].answer_field] = label
        return passage, kind, args

    def _prediction(self, passage: str, kind: str, args: dict[str, Any], out: dspy.Prediction) -> dspy.Prediction:
        signature = self.generators[kind].signature
        fields = {name: str(args[name]) for name in signature.input_fields if name != "passage"}
        fields.update({name: str(out[name]).strip() for name in signature.output_fields})
        return dspy.Prediction(passage=passage, task_type=kind, fields=fields)

    async def aforward(self, passage: Any, task_type: str | None = None, label: str | None = None,
                       **_: Any) -> dspy.Prediction:
        passage, kind, args = self._call_args(passage, task_type, label)
        return self._prediction(passage, kind, args, await self.generators[kind].acall(**args))

    def check(self, task_type: TaskType, passage: str, task: str, answer: str) -> dict[str, str | None]:
        """Each of the type's checks -> None if it passed, else why not."""
        out: dict[str, str | None] = {}
        for check in task_type.checks:
            if check == "task_is_question":
                out[check] = None if _QUESTION.search(task) else "the task is not a question"
            elif check == "span_in_passage":
                verdict = self.span.verify(answer, passage)
                out[check] = None if verdict.passed else verdict.reason
            elif check == "answer_not_in_task":
                given = normalize(answer) and normalize(answer) in normalize(task)
                out[check] = "the question contains its answer" if given else None
            elif check == "shorter_than_passage":
                ok = len(answer) <= 0.7 * len(passage) and len(answer.split()) >= 5
                out[check] = None if ok else f"summary of {len(answer.split())} words for a passage of " \
                                             f"{len(passage.split())}"
                if ok and _copied(answer, passage):
                    out[check] = "the summary is copied from the passage"
        return out

    def to_record(self, inputs: dict[str, Any], prediction: dspy.Prediction) -> dict[str, Any]:
        task_type = self.types[prediction.task_type]
        fields = prediction.fields
        answer = fields[task_type.answer_field]
        task = next(v for k, v in fields.items() if k != task_type.answer_field)
        user = task_type.template.format(passage=prediction.passage, **fields)
        checks = self.check(task_type, prediction.passage, task, answer)
        record = {
            "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
            "task_type": prediction.task_type,
            "task": task,
            "answer": answer,
            "fields": fields,
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
        if PROMPT_ECHO.search(task) or PROMPT_ECHO.search(answer):
            return "copied the prompt's template or format"
        if len(task) > 0.8 * len(passage) or _copied(task, passage):
            return "task copies the passage"
        if self.config.drop_failed_checks:
            failed = self.check(self.types[record["task_type"]], passage, task, answer)
            reason = next((f"{name}: {why}" for name, why in failed.items() if why), None)
            if reason:
                return reason
        return None

    def judge_item(self, record: dict[str, Any], reference: Any = None):  # the passage is the reference
        item = super().judge_item(record, reference)
        return item if reference is not None else item.model_copy(update={"reference": record["passage"]})



def _copied(text: str, passage: str, min_words: int = 12) -> bool:
    """A long stretch of `text` taken word for word from the passage (not a task or summary of one's own)."""
    words = normalize(text).split()
    return len(words) >= min_words and " ".join(words[:min_words]) in normalize(passage)
