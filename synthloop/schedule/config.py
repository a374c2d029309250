"""The config of `synthloop schedule`: a loop config whose training tasks arrive through an inbox, plus the rules
that decide whether a tick's new checkpoint replaces the current one.

    name: refine
    engine: {model: smollm2-135m-instruct}          # the starting policy (what `current` points to at first)
    inbox:
      path: inbox/                                  # new .jsonl records (or whole documents) arrive here
      prompt_column: question                       # task prompt <- record column (dotted paths reach inside)
      reference_column: answer                      # reference answer <- record column (null: none)
    tasks:
      eval: {kind: arithmetic, seed: 2}             # the held-out set every checkpoint is compared on
      eval_count: 200
    promotion: {metric: eval_accuracy, min_gain: 0.01, guards: [{metric: eval_truncated, max_drop: 0.05,
                lower_is_better: true}]}
    ... every other key of a loop config (sampling, judges, recipe, train, prompt, eval, seed) ...

Each tick runs one round of the recipe over the records it claimed (see `synthloop.schedule.tick`), so
`rounds` and `stop` have no meaning here; the foreground scheduler stops after `--max-ticks`.

Instead of an inbox, a synthesis program can write each tick's tasks (`tasks.train: {kind: program, ...}`, the
loop's program task source, `tasks.per_round` of them): every tick then runs a round on fresh tasks, decontaminated
against the held-out set like a loop's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from synthloop.configs import RUNTIME, Config
from synthloop.loops.config import LoopConfig
from synthloop.loops.tasks import ProgramTasks, TaskSource

#: what the evaluate stage measures on the held-out set; `judge.<name>` adds each judge's mean held-out score
EVAL_METRICS = ("eval_accuracy", "eval_score", "eval_tokens", "eval_truncated", "eval_failed")


class InboxConfig(Config):
    path: Path = Field(description="The inbox directory. Producers append JSON lines to *.jsonl files in it (append "
                       "only; complete lines are claimed, a half-written last line waits), or drop whole documents "
                       "(*.txt, *.md, *.json: one record {path, text} each). Created if missing.")
    prompt_column: str = Field("prompt", description="The record column holding the task prompt; a dotted path "
                               "reaches inside (messages.0.content). Documents: text.")
    reference_column: str | None = Field(
        "reference", description="The column holding the reference answer (verifiable tasks); records without one "
        "are dropped with that reason. null: the recipe's judges need no reference."
    )
    columns: dict[str, str] = Field(
        default_factory=dict, description="More task fields from record columns, e.g. {topic: meta.topic}; the "
        "prompt template can use them ({topic}). Other record columns are not carried into the tasks."
    )
    min_records: int = Field(1, ge=1, description="Run a round only once at least this many new records wait; "
                             "fewer stay in the inbox for a later tick.", json_schema_extra=RUNTIME)
    max_records: int | None = Field(None, ge=1, description="Most records one tick claims (oldest first); the rest "
                                    "wait for the next tick. null: everything new.", json_schema_extra=RUNTIME)


class ScheduleTasks(Config):
    eval: TaskSource = Field(description="The held-out evaluation tasks every checkpoint is compared on (materialized "
                             "once into the schedule's directory; inbox tasks equal to one are dropped).")
    eval_count: int | None = Field(200, ge=1, description="Held-out tasks evaluated (the first ones of the source).")
    train: ProgramTasks | None = Field(
        None, description="Instead of an inbox: a synthesis program writes each tick's fresh tasks ({kind: program, "
        "program: {...}}; see synthloop.loops.tasks.program), so every tick runs a round.")
    per_round: int = Field(128, ge=1, description="With a program source: tasks written and kept per tick.")


class Guard(Config):
    metric: str = Field(description="A held-out metric (eval_score, eval_truncated, eval_tokens, judge.<name>, ...).")
    max_drop: float = Field(0.0, ge=0, description="How much worse than the current checkpoint it may get.")
    lower_is_better: bool = Field(False, description="True for metrics where less is better (eval_truncated).")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        return check_metric(value)


class PromotionRules(Config):
    metric: str = Field("eval_accuracy", description="The held-out metric a new checkpoint must improve: "
                        f"{', '.join(EVAL_METRICS)}, or judge.<judge name> (that judge's mean held-out score).")
    min_gain: float = Field(0.0, ge=0, description="Promote only when the metric rises by more than 0 and by at least "
                            "this much (absolute, e.g. 0.01 = one point of accuracy).")
    guards: list[Guard] = Field(default_factory=list, description="Other held-out metrics that must not get worse "
                                "by more than their max_drop (e.g. a safety judge, truncation rate).")
    require: dict[str, float] = Field(
        default_factory=dict, description="Floors the new checkpoint must reach whatever the gain, e.g. "
        "{judge.verifier:math_answer: 0.3}: required judges."
    )
    compare: Literal["stored", "reevaluate"] = Field(
        "stored", description="stored: compare with the current checkpoint's stored held-out evaluation (it is "
        "re-evaluated anyway when the evaluation settings changed since); reevaluate: evaluate the current checkpoint "
        "again in every tick, with the same settings, before training."
    )
    keep_rejected: int | None = Field(None, ge=0, description="Rejected checkpoints kept on disk (newest first); "
                                      "older ones' weights are deleted. null: keep all. Never served either way.")
    keep_superseded: int | None = Field(None, ge=0, description="Formerly promoted checkpoints kept (newest first) "
                                        "for rollback; older ones' weights are deleted. null: keep all.")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        return check_metric(value)

    @field_validator("require")
    @classmethod
    def _known_floors(cls, value: dict[str, float]) -> dict[str, float]:
        for name in value:
            check_metric(name)
        return value

    def judge_names(self) -> set[str]:
        names = [self.metric, *(g.metric for g in self.guards), *self.require]
        return {n.removeprefix("judge.") for n in names if n.startswith("judge.")}


def check_metric(name: str) -> str:
    if name in EVAL_METRICS or (name.startswith("judge.") and len(name) > len("judge.")):
        return name
    raise ValueError(f"unknown held-out metric {name!r}; expected one of {', '.join(EVAL_METRICS)} or "
                     "judge.<judge name>")


class ScheduleConfig(LoopConfig):
    tasks: ScheduleTasks = Field(description="The held-out set (training tasks come from the inbox, or from a "
                                 "program: tasks.train).")
    inbox: InboxConfig | None = Field(None, description="Where new training data arrives, and how records map to "
                                      "tasks (or tasks.train: a program writes each tick's tasks).")
    promotion: PromotionRules = Field(PromotionRules(), description="When a tick's checkpoint replaces the current "
                                      "one, and what is kept on disk.", json_schema_extra=RUNTIME)

    def tasks_arrive_elsewhere(self) -> bool:
        return self.inbox is not None

    @model_validator(mode="after")
    def _one_task_source(self) -> ScheduleConfig:
        if (self.inbox is None) == (self.tasks.train is None):
            raise ValueError("name where each tick's training tasks come from: an inbox (inbox: {path: ...}) or a "
                             "program (tasks.train: {kind: program, ...}), not both")
        return self

    @field_validator("rounds", "stop", mode="before")
    @classmethod
    def _one_round_per_tick(cls, value, info):  # runs only for keys a config sets (defaults are not validated)
        raise ValueError("has no meaning in a schedule: each tick runs one round (stop the foreground scheduler "
                         "with --max-ticks)")
