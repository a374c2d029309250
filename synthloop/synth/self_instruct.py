"""Self-instruct: bootstrap new (instruction, response) pairs from a pool of seed tasks.

Each item samples `num_examples` seed tasks (seeded by the item, so item i is the same on every
run), proposes a new task from them, and answers it. The paper's filters then drop near-copies
(ROUGE-L >= 0.7 against every seed and every kept instruction), tasks a text model cannot do
(images, files, plots...), and tasks too short or too long. Records are TRL `messages`.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any, Literal

import dspy
from pydantic import Field
from rouge_score import rouge_scorer

from synthloop.prompts.self_instruct import ProposeTask, RespondToTask
from synthloop.synth.base import BaseProgramConfig, SynthProgram

# The self-instruct paper's blacklist: tasks a text-only model cannot complete.
_BLACKLIST = [
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
    "video",
    "audio",
    "music",
    "flowchart",
    "diagram",
]
# DSPy-style template slots a small model copies instead of filling: {task}, [[ ## task ## ]], [task], task_name
_PLACEHOLDER = re.compile(r"\{[a-z_]+\}|\[\[ ## |^\s*\[[a-z_ ]+\]\s*$|^\s*[a-z]+(?:_[a-z]+)+\s*$", re.IGNORECASE)
_LEADING_JUNK = re.compile(r"^\s*(?:\d+[.)]\s*|(?:new )?task\s*\d*\s*:\s*|instruction\s*:\s*)", re.IGNORECASE)


class SelfInstructConfig(BaseProgramConfig):
    kind: Literal["self_instruct"] = "self_instruct"
    seed_tasks: Path = Field(
        Path("../shared/data/self_instruct/seed_tasks.jsonl"),
        description="JSONL of seed tasks (self-instruct format: instruction, instances).",
    )
    num_examples: int = Field(8, ge=1, le=32, description="Seed tasks shown as examples per proposal.")
    rouge_threshold: float = Field(
        0.7,
        gt=0,
        le=1,
        description="Drop a task whose ROUGE-L F1 with any task "
        "in the pool (seeds + kept) is at least this (the paper's 0.7).",
    )
    min_words: int = Field(3, ge=1, description="Drop tasks shorter than this many words.")
    max_words: int = Field(150, ge=1, description="Drop tasks longer than this many words.")
    seed: int = Field(0, description="Seeds which examples each item shows.")


def load_seed_tasks(path: Path) -> list[str]:
    """The seed tasks of a self-instruct JSONL file; a file that is missing, unreadable, malformed or holds no
    task is a one-line `ConfigError` naming the file (and the line)."""
    from synthloop.configs import ConfigError

    if not path.is_file():
        raise ConfigError(f"{path}: seed tasks not found (set program.seed_tasks)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text (expected JSONL seed tasks)") from None
    tasks = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("instruction"), str) or not row["instruction"].strip():
            raise ConfigError(f"{path}:{number}: a seed task needs a non-empty 'instruction' string "
                              "(self-instruct format: instruction, instances)")
        text = row["instruction"].strip()
        instances = row.get("instances") or [{}]
        first = instances[0].get("input", "") if isinstance(instances, list) and isinstance(instances[0], dict) else ""
        first = first.strip() if isinstance(first, str) else ""
        tasks.append(f"{text}\n{first}" if first else text)
    if not tasks:
        raise ConfigError(f"{path}: no seed tasks (the file is empty or holds only blank lines)")
    return tasks


def clean_task(text: str) -> str:
    text = text.strip().split("\n\n")[0].strip()
    while (stripped := _LEADING_JUNK.sub("", text, count=1).strip()) != text:
        text = stripped
    return text.strip('"').strip()


class SelfInstruct(SynthProgram):
    name = "self_instruct"
    config_class = SelfInstructConfig

    def __init__(self, config: SelfInstructConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.propose = dspy.Predict(ProposeTask)
        self.respond = dspy.Predict(RespondToTask)
        self.seeds = load_seed_tasks(Path(self.config.seed_tasks))
        self._scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        # Tokenized once: the library's public score() re-tokenizes both strings for every pair,
        # which dominates once the pool holds thousands of tasks.
        self._pool: list[tuple[list[str], str]] = [(self._tokens(t), t) for t in self.seeds]

    def _tokens(self, text: str) -> list[str]:
        return self._scorer._tokenizer.tokenize(text)

    def inputs(self) -> Iterator[dict[str, Any]]:
        for item in count():
            rng = random.Random(f"{self.config.seed}:{item}")
            yield {"example_tasks": rng.sample(self.seeds, min(self.config.num_examples, len(self.seeds)))}

    async def aforward(self, example_tasks: list[str]) -> dspy.Prediction:
        proposal = await self.propose.acall(example_tasks=example_tasks)
        task = clean_task(proposal.new_task)
        answer = await self.respond.acall(task=task)
        return dspy.Prediction(task=task, response=answer.response.strip())

    def to_record(self, inputs: dict[str, Any], prediction: dspy.Prediction) -> dict[str, Any]:
        return {
            "messages": [
                {"role": "user", "content": prediction.task},
                {"role": "assistant", "content": prediction.response},
            ]
        }

    def accept(self, record: dict[str, Any]) -> str | None:
        task, response = record["messages"][0]["content"], record["messages"][1]["content"]
        words = len(task.split())
        if words < self.config.min_words:
            return f"task too short ({words} words)"
        if words > self.config.max_words:
            return f"task too long ({words} words)"
        if _PLACEHOLDER.search(task) or _PLACEHOLDER.search(response):
            return "copied a template placeholder"
        if not task[0].isalnum() or not task[0].isascii():
            return "task starts with punctuation or a non-ASCII character"
        lowered = f" {task.lower()} "
        hit = next((w for w in _BLACKLIST if re.search(rf"\b{re.escape(w)}\b", lowered)), None)
        if hit:
            return f"needs more than text (mentions '{hit}')"
        if lowered.strip().startswith("write a program"):
            return "'write a program' tasks are ambiguous (the paper drops them)"
        if not response.strip():
            return "empty response"
        tokens = self._tokens(task)
        best, match = 0.0, ""
        for pool_tokens, text in self._pool:
            score = rouge_scorer._score_lcs(pool_tokens, tokens).fmeasure
            if score > best:
                best, match = score, text
        if best >= self.config.rouge_threshold:
            return f"near-copy (ROUGE-L {best:.2f}) of: {match[:80]}"
        return None

    def remember(self, record: dict[str, Any]) -> None:
        task = record["messages"][0]["content"]
        self._pool.append((self._tokens(task), task))
