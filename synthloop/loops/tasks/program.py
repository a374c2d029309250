"""A synthesis program as a loop's task source: each round the program writes that round's fresh tasks.

    tasks:
      train:
        kind: program
        program: {kind: verifiable_instructions, rewrite: constraints, k: [1, 2, 3]}   # any `program:` section
        engine: null               # null: the policy's current checkpoint writes them; or a teacher's engine config
        sampling: {temperature: 0.7, max_tokens: 256}
      eval: {kind: ifeval}
      per_round: 128               # tasks kept per round (after decontamination)

The loop's `tasks` stage runs the program through the generation runner into `round-NNN/task-writing/` (a run
directory: a killed stage resumes from its records and request cache, no task is written twice), then drops the
tasks that copy a held-out task (the same prompt, a shared word n-gram, or a MinHash near-duplicate) and writes
`round-NNN/tasks.jsonl` and `round-NNN/tasks_dropped.jsonl` (each dropped task with its reason and the held-out
task it matches). See `synthloop.loops.program_tasks`.

Fresh tasks per round: a program config with a `seed` field (verifiable_instructions, self_instruct, skillmix,
...) gets a seed derived from it, the loop's seed and the round, so its items differ by round; the model calls'
seeds differ by round too. `tasks.fresh_each_round: false` keeps the round-1 seeds in every round.

Task rows: `prompt` from the record's `prompt_column` (a dotted path reaches into chat messages:
`messages.0.content`), `reference` from `reference` (one column, or several gathered into a dict), plus
`columns`. For verifiable_instructions the reference defaults to the record's IFEval row (prompt,
instruction_id_list, kwargs), which the `ifeval` judge checks answers against, and decontamination compares its
base task (the constraint statements are IFEval's own templates, in IFEval's prompts by design).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from synthloop.configs import Config, ConfigError
from synthloop.engines.config import EngineConfig
from synthloop.engines.types import sampling_config
from synthloop.synth.generate_config import ProgramConfig

#: per program kind, the defaults of keys a config leaves out: the reference its records carry for their judges,
#: and the column decontamination compares
PROGRAM_DEFAULTS: dict[str, dict[str, Any]] = {"verifiable_instructions": {
    "reference": ["prompt", "instruction_id_list", "kwargs"], "decontamination": {"column": "base_task"}}}


class Decontamination(Config):
    column: str | None = Field(
        None, description="The record column compared with the held-out prompts (default: the task prompt; for "
        "verifiable_instructions its base_task: the constraint statements are IFEval's own templates, shared with "
        "IFEval's prompts by design). A task whose whole prompt equals a held-out prompt is dropped either way.")
    ngram: int | None = Field(13, ge=3, description="Drop a task sharing a word n-gram this long with a held-out "
                                                    "task (GPT-3's 13-gram rule); null: no n-gram check.")
    near_duplicate: float | None = Field(
        0.7, gt=0, le=1, description="Drop a task whose MinHash-estimated Jaccard similarity (3-word shingles) to a "
        "held-out task reaches this; null: no near-duplicate check.")


class ProgramTasks(Config):
    kind: Literal["program"] = "program"
    program: ProgramConfig = Field(description="The synthesis program and its knobs (the `program:` section of a "
                                               "generate config; `kind` picks it).")
    engine: EngineConfig | None = Field(
        None, description="The engine that writes the tasks: null for the policy's current checkpoint (the model "
        "writes its own curriculum), or a teacher's engine config (the pool's role `teacher`).")
    sampling: sampling_config("How the program's model calls sample.", temperature=0.7, max_tokens=384)
    prompt_column: str = Field("prompt", description="The record column holding the task prompt (a dotted path "
                                                     "reaches inside: messages.0.content).")
    reference: str | list[str] | None = Field(
        None, description="The record column handed to the judges as the task's reference, or a list of columns "
        "gathered into a dict. Default: the IFEval row for verifiable_instructions, else none.")
    columns: list[str] = Field(default_factory=list, description="More record columns carried into each task row "
                                                                 "(the prompt template can use them).")
    decontamination: Decontamination = Field(Decontamination(), description="How tasks copying a held-out task "
                                                                            "are found and dropped.")
    max_attempts: int = Field(3, ge=1, description="Tries per program item (fresh samples) before it is given up.")
    max_items_factor: int = Field(10, ge=1, description="The program tries at most this many items per task "
                                                        "wanted before the round goes on with fewer tasks.")

    @model_validator(mode="before")
    @classmethod
    def _default_reference(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        program = data.get("program")
        kind = program.get("kind") if isinstance(program, dict) else getattr(program, "kind", None)
        defaults = PROGRAM_DEFAULTS.get(kind, {})
        data = {**data}
        if "reference" not in data and "reference" in defaults:
            data["reference"] = defaults["reference"]
        given = data.get("decontamination")
        if isinstance(given, dict | None) and "decontamination" in defaults:
            data["decontamination"] = {**defaults["decontamination"], **(given or {})}
        return data

    def rows(self) -> Iterator[dict[str, Any]]:
        raise ConfigError("tasks.train: a program source writes its tasks in the loop's tasks stage, round by "
                          "round; it has no fixed rows to read")

    def task_row(self, record: dict[str, Any]) -> dict[str, Any]:
        """A task row from one of the program's records; a missing column is a one-line `ConfigError`."""
        from synthloop.runs.inputs import DatasetInput

        gathered = self.reference if isinstance(self.reference, list) else []
        lookups = {"prompt": self.prompt_column, **{name: name for name in self.columns}}
        if isinstance(self.reference, str):
            lookups["reference"] = self.reference
        lookups.update({f"reference.{name}": name for name in gathered})
        try:
            mapped = DatasetInput(path=Path("task-writing"), columns=lookups).map(record)
        except KeyError as exc:
            raise ConfigError(f"tasks.train ({self.program.kind}): {exc.args[0] if exc.args else exc}; set "
                              "prompt_column / reference / columns to the program's record columns") from None
        row = {name: mapped[name] for name in lookups if not name.startswith("reference.")}
        if gathered:
            row["reference"] = {name: mapped[f"reference.{name}"] for name in gathered}
        return row
