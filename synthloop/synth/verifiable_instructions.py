"""Verifiable instructions: a base task plus k IFEval constraints with sampled kwargs, written by the model as one
natural request; the record is an IFEval row, so `IFEvalVerifier` checks any answer to it.

In the spirit of Instruct-SkillMix (Kaur et al., 2024) with IFEval's constraint kinds as the skills, and of AutoIF
(Dong et al., 2024) / Tulu 3's verifiable instruction data: the constraints come from a program, so they are
checkable; only their wording comes from the model.

Per item (seeded: item i is the same on every run): a base task (from the seed file, from a dataset such as a
self-instruct run, or proposed by the model from seed examples), k drawn from `k`, k compatible constraints
(`judges.verifiers.ifeval_constraints.draw_constraints`: keywords come from the task's own words), their
templated statements, and one model call that writes task + statements as a request (`rewrite: request`), or
only the statements in natural words, appended to the task kept verbatim (`rewrite: constraints`: what a 135M
model can do; asked to rewrite the whole request, SmolLM2-135M loses or answers the task most of the time).

Base tasks that share a 13-gram with an IFEval prompt are refused (the `decontaminate` filter's rule): the seed
or dataset pool is filtered before drawing, and every record's base task is checked again (generated ones too).

A rewrite that no longer states a constraint (`ifeval_constraints.stated`: its number, keyword, letter, marker,
language or end phrase is missing) gets that constraint's templated statement appended verbatim (`on_lost:
restate`, the default; the record lists them in `restated`; a text that stated none of them is not used at all),
is replaced by the templated statements (`on_lost: template`: no stray model text in the prompt; the choice for a
weak model), or is dropped (`on_lost: drop`). Restating keeps the draw (and its balance over kinds) at the cost
of a less natural request. `combination:repeat_prompt` is never given to the model: the rewritten request is its
`prompt_to_repeat`, and its statement follows the request, as in IFEval's own rows.

Records: `prompt`, `instruction_id_list`, `kwargs` (IFEval's row format), `base_task`, `constraint_statement`
(the templated statements), `rewrite` (the model's text), `restated` (ids whose statement was appended),
`templated` (true when the prompt is the task and the templated statements, the model's text unused). Dropped,
with the reason: model text the prompt uses that is empty, copies template slots or field names, lost the task
(too few of its content words; `request` mode only) or is far longer than its inputs (an answer, not a request);
a contaminated base task; and a request to repeat that breaks `punctuation:no_comma` itself. (Text the prompt
does not use, replaced by the templated statements, is not checked: the record is the task and the statements.)

    synthloop generate configs/generate/verifiable_instructions.yaml
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any, Literal

import dspy
from pydantic import Field, model_validator

from synthloop.configs import ConfigError
from synthloop.judges.base import JudgeItem
from synthloop.judges.filters.decontaminate import Decontaminate, DecontaminateConfig, EvalSet
from synthloop.judges.verifiers.ifeval_constraints import (
    Constraint,
    content_words,
    draw_constraints,
    draw_ids,
    stated,
    statement,
)
from synthloop.prompts.self_instruct import ProposeTask
from synthloop.prompts.verifiable_instructions import StateConstraintsInRequest, StateConstraintsNaturally
from synthloop.runs.inputs import DatasetInput
from synthloop.synth.base import PROMPT_ECHO, BaseProgramConfig, SynthProgram, as_text, dataset_rows
from synthloop.synth.self_instruct import clean_task, load_seed_tasks

REPEAT = "combination:repeat_prompt"
IFEVAL_PROMPTS = Path("../shared/data/ifeval/input_data.jsonl")
#: field labels copied from the prompt instead of writing a request
_FIELD_LABELS = re.compile(r"^\s*(?:task|request|constraints?)\s*:|\n\s*(?:task|constraints?)\s*:", re.IGNORECASE)


class VerifiableInstructionsConfig(BaseProgramConfig):
    kind: Literal["verifiable_instructions"] = "verifiable_instructions"
    base_tasks: Literal["seed_file", "dataset", "generated"] | None = Field(
        None, description="Where base tasks come from: seed_file (seed_tasks), dataset (inputs), or generated (the "
        "model proposes one per record from seed_tasks examples, self-instruct's prompt). Default: dataset when "
        "inputs is set, else seed_file.")
    seed_tasks: Path = Field(Path("../shared/data/self_instruct/seed_tasks.jsonl"),
                             description="JSONL of tasks in self-instruct's format (instruction, instances): the base "
                                         "tasks for seed_file, the examples for generated.")
    inputs: DatasetInput | None = Field(
        None, description="Base tasks from a dataset: rows with an `instruction` column (map one: {instruction: "
        "prompt}); rows with chat `messages` instead (e.g. a self-instruct run directory) use their first user "
        "message.")
    k: list[int] = Field([1, 2, 3], min_length=1, description="Constraints per record: one value drawn per record "
                                                             "(repeat a value to weight it; IFEval has 1-3).")
    families: list[str] | None = Field(None, description="Instruction ids to draw from (default: all 25 of IFEval's, "
                                                         "e.g. punctuation:no_comma, keywords:existence).")
    num_examples: int = Field(8, ge=1, le=32, description="Seed tasks shown per proposal (base_tasks: generated).")
    rewrite: Literal["request", "constraints"] = Field(
        "request", description="request: the model writes the task and its constraints as one request; constraints: "
        "the task stays verbatim and the model words only the constraints, appended to it (what a small model such "
        "as SmolLM2-135M can do: it loses or answers the task when asked to rewrite all of it).")
    on_lost: Literal["restate", "template", "drop"] = Field(
        "restate", description="A rewrite that no longer states a constraint (its number, keyword, marker... is "
        "missing): restate appends that constraint's templated statement (and drops the model's text when it "
        "stated none of them); template uses the task and the templated statements instead of the model's text; "
        "drop drops the record.")
    min_task_overlap: float = Field(0.5, ge=0, le=1, description="Drop rewrites keeping less than this share of the "
                                                                 "base task's content words (the task was lost).")
    max_length_ratio: float = Field(3.0, gt=1, description="Drop rewrites with more words than this times the task "
                                                           "and statements together (an answer, not a request).")
    decontaminate: list[EvalSet] = Field(
        default_factory=lambda: [EvalSet(path=IFEVAL_PROMPTS, fields=["prompt"], name="ifeval")],
        description="Evaluation sets base tasks must not come from (default: IFEval's 541 prompts).")
    decontamination_n: int = Field(13, ge=3, description="A base task sharing a word n-gram this long with an "
                                                         "evaluation set is refused (GPT-3's 13-gram rule).")
    seed: int = Field(0, description="Seeds the base-task order and the constraint draws.")

    @model_validator(mode="after")
    def _source(self) -> VerifiableInstructionsConfig:
        if self.base_tasks is None:
            self.base_tasks = "dataset" if self.inputs is not None else "seed_file"
        if self.base_tasks == "dataset" and self.inputs is None:
            raise ValueError("base_tasks: dataset needs inputs (a dataset with an instruction column)")
        if self.base_tasks != "dataset" and self.inputs is not None:
            raise ValueError(f"inputs is set but base_tasks is {self.base_tasks} (set base_tasks: dataset)")
        return self


def task_of(row: dict[str, Any]) -> str:
    """A row's task: its `instruction` column (with an `input` column appended, as in Alpaca-style data), or the
    first user message of chat `messages`."""
    if "instruction" in row:
        text, extra = as_text(row["instruction"]), as_text(row.get("input"))
        return f"{text}\n{extra}" if extra else text
    messages = row.get("messages")
    if isinstance(messages, list):
        return next((as_text(m["content"]) for m in messages if isinstance(m, dict) and m.get("role") == "user"), "")
    raise ConfigError(f"program.inputs: rows need an 'instruction' column or chat 'messages' (columns: "
                      f"{', '.join(row)}); map one with inputs.columns: {{instruction: <column>}}")


class VerifiableInstructions(SynthProgram):
    name = "verifiable_instructions"
    config_class = VerifiableInstructionsConfig

    def __init__(self, config: VerifiableInstructionsConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        cfg = self.config
        self.write = dspy.Predict(StateConstraintsInRequest)
        self.word = dspy.Predict(StateConstraintsNaturally)
        self.propose = dspy.Predict(ProposeTask)
        for k in set(cfg.k):  # fails early on unknown ids or a k the families cannot reach
            if k < 1:
                raise ValueError(f"k: {k} constraints per record (at least 1)")
            draw_ids(random.Random(0), k, cfg.families)
        self.decontaminator = Decontaminate(DecontaminateConfig(
            eval_sets=cfg.decontaminate, field="base_task", n=cfg.decontamination_n)) if cfg.decontaminate else None
        self.seeds = load_seed_tasks(Path(cfg.seed_tasks)) if cfg.base_tasks != "dataset" else []
        self.refused: list[str] = []  # reasons for pool tasks refused as contaminated
        self.pool: list[str] = []
        if cfg.base_tasks != "generated":
            tasks = self.seeds if cfg.base_tasks == "seed_file" else \
                [t for t in (task_of(r) for r in dataset_rows(cfg.inputs)) if t]
            for task in dict.fromkeys(tasks):
                reason = self.contamination(task)
                if reason:
                    self.refused.append(reason)
                else:
                    self.pool.append(task)
            if not self.pool:
                raise ValueError(f"no base task left ({len(self.refused)} refused as contaminated)")

    def contamination(self, task: str) -> str | None:
        """Why `task` may not be a base task (it shares an n-gram with an evaluation set), or None."""
        if self.decontaminator is None:
            return None
        dropped = self.decontaminator.apply([{"base_task": task}]).dropped
        return dropped[0].reason if dropped else None

    def inputs(self) -> Iterator[dict[str, Any]]:
        cfg = self.config
        order: list[int] = []
        for item in count():
            draw = f"{cfg.seed}:{item}"
            if cfg.base_tasks == "generated":
                rng = random.Random(f"{cfg.seed}:examples:{item}")
                yield {"example_tasks": rng.sample(self.seeds, min(cfg.num_examples, len(self.seeds))), "draw": draw}
                continue
            if item % len(self.pool) == 0:  # every task once per pass, in a seeded order per pass
                order = list(range(len(self.pool)))
                random.Random(f"{cfg.seed}:order:{item // len(self.pool)}").shuffle(order)
            yield {"base_task": self.pool[order[item % len(self.pool)]], "draw": draw}

    def _draw(self, base_task: str, draw: str | None) -> list[Constraint]:
        rng = random.Random(draw if draw is not None else f"{self.config.seed}:{base_task}")
        return draw_constraints(rng, rng.choice(self.config.k), self.config.families, text=base_task)

    def assemble(self, base_task: str, constraints: list[Constraint], rewrite: str) -> dspy.Prediction:
        """The record's fields from the model's text: the request (rewrite: request) or the constraints' wording
        appended to the task (rewrite: constraints); lost constraints restated; repeat_prompt appended."""
        stated_ones = [(i, kw) for i, kw in constraints if i != REPEAT]
        prompt = rewrite if self.config.rewrite == "request" else _join(base_task, rewrite)
        restated = [i for i, kw in stated_ones if not stated(i, kw, rewrite)]
        templated = bool(restated) and (self.config.on_lost == "template" or len(restated) == len(stated_ones))
        if templated and self.config.on_lost != "drop":  # the model's text is no use: the task and the statements
            prompt = _join(base_task, " ".join(statement(i, kw) for i, kw in stated_ones))
        elif restated and self.config.on_lost == "restate":
            prompt = " ".join([prompt.rstrip(), *(statement(i, kw) for i, kw in stated_ones if i in restated)])
        kwargs = []
        for i, kw in constraints:
            kwargs.append({"prompt_to_repeat": prompt} if i == REPEAT else kw)
        if any(i == REPEAT for i, _ in constraints):
            prompt = f"{prompt}\n{statement(REPEAT, {'prompt_to_repeat': prompt})}"
        return dspy.Prediction(
            prompt=prompt, instruction_id_list=[i for i, _ in constraints], kwargs=kwargs, base_task=base_task,
            constraint_statement=" ".join(statement(i, kw) for i, kw in constraints), rewrite=rewrite,
            restated=restated, templated=templated and self.config.on_lost != "drop")

    async def aforward(self, base_task: str | None = None, example_tasks: list[str] | None = None,
                       draw: str | None = None, **_: Any) -> dspy.Prediction:
        if base_task is None:
            if not example_tasks:
                raise ValueError("verifiable_instructions: an item needs base_task or example_tasks")
            base_task = clean_task((await self.propose.acall(example_tasks=example_tasks)).new_task)
        constraints = self._draw(base_task, draw)
        statements = [statement(i, kw) for i, kw in constraints if i != REPEAT]
        if not statements:
            text = base_task if self.config.rewrite == "request" else ""
        elif self.config.rewrite == "request":
            text = (await self.write.acall(task=base_task, constraints=statements)).request
        else:
            text = (await self.word.acall(task=base_task, constraints=statements)).constraints_text
        return self.assemble(base_task, constraints, clean_request(text))

    def to_record(self, inputs: dict[str, Any], prediction: dspy.Prediction) -> dict[str, Any]:
        return {key: prediction[key] for key in ("prompt", "instruction_id_list", "kwargs", "base_task",
                                                 "constraint_statement", "rewrite", "restated", "templated")}

    def accept(self, record: dict[str, Any]) -> str | None:
        ids = record["instruction_id_list"]
        if record["restated"] and self.config.on_lost == "drop":
            return f"lost constraints: {', '.join(record['restated'])}"
        reason = self._text_problem(record) if not record["templated"] else None  # unused text: nothing to check
        reason = reason or self.contamination(record["base_task"])
        if reason:
            return reason
        if REPEAT in ids and "punctuation:no_comma" in ids and \
                "," in record["kwargs"][ids.index(REPEAT)]["prompt_to_repeat"]:
            return "unsatisfiable: the request to repeat has a comma and commas are not allowed"
        return None

    def _text_problem(self, record: dict[str, Any]) -> str | None:
        """What is wrong with the model's text that the prompt uses, if anything."""
        rewrite, base_task, ids = record["rewrite"], record["base_task"], record["instruction_id_list"]
        whole = self.config.rewrite == "request"
        if not rewrite.strip() and ids != [REPEAT]:
            return "empty rewrite"
        if _echoes(rewrite, f"{base_task}\n{record['constraint_statement']}", ids) or _FIELD_LABELS.search(rewrite):
            return "copied the prompt's template or format"
        task_words = content_words(base_task)
        if whole and task_words:
            kept = set(content_words(rewrite))
            share = sum(w in kept for w in task_words) / len(task_words)
            if share < self.config.min_task_overlap:
                return f"lost the task: keeps {share:.0%} of its content words"
        budget = len(f"{base_task if whole else ''} {record['constraint_statement']}".split())
        if len(rewrite.split()) > self.config.max_length_ratio * budget:
            return f"too long for a request ({len(rewrite.split())} words for {budget} of task and constraints)"
        return None

    def judge_item(self, record: dict[str, Any], reference: Any = None) -> JudgeItem:
        """The request as the prompt and the record itself (an IFEval row) as the reference."""
        return JudgeItem(prompt=record["prompt"], response="", reference=record if reference is None else reference)


def _join(task: str, constraints_text: str) -> str:
    """The task, then its constraints: in the same paragraph after a one-line task, after a blank line otherwise."""
    if not constraints_text:
        return task
    separator = "\n\n" if "\n" in task else " "
    return f"{task}{separator}{constraints_text}"


def clean_request(request: str) -> str:
    """The model's text without wrapping quotes or a bracket left unmatched at either end."""
    text = request.strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    if text.startswith("[") and "]" not in text:
        text = text[1:].strip()
    if text.endswith("]") and "[" not in text:
        text = text[:-1].strip()
    return text


def _echoes(rewrite: str, given: str, ids: list[str]) -> bool:
    """Template slots or format text in the rewrite, not counting what the task and statements themselves hold
    (a placeholder example such as [address], a JSON request)."""
    masked = rewrite
    for token in set(re.findall(r"\[[^\]\n]*\]", given)):
        masked = masked.replace(token, " ")
    if "detectable_format:json_format" in ids:
        masked = re.sub(r"\bjson object\b|\bwith the keys\b", " ", masked, flags=re.IGNORECASE)
    return PROMPT_ECHO.search(masked) is not None
