"""The `recipe:` section of STAT (skill-targeted training)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from synthloop.configs import Config
from synthloop.engines.config import EngineConfig
from synthloop.engines.types import sampling_config
from synthloop.loops.tasks import TaskSource


class SynSettings(Config):
    source: Literal["generator", "skillmix"] = Field(
        "generator", description="generator: candidates from the tasks.train generator (with a new seed), kept by "
        "their skills; skillmix: the teacher writes Instruct-SkillMix instructions over the missing skills.")
    tasks: int | None = Field(None, ge=1, description="New tasks per round (default: tasks.per_round, the same "
                                                      "sampling budget as sel and uniform).")
    oversample: int = Field(4, ge=1, description="generator: candidates drawn per task wanted, to fill each "
                                                 "skill's share from.")
    k: int = Field(2, ge=1, le=4, description="skillmix: skills combined per instruction.")
    query_types: list[str] | None = Field(
        None, description="skillmix: kinds of request to write (default: SkillMix's general ones; for a math task "
        "set e.g. [word problem])."
    )
    min_response_words: int = Field(15, ge=1, description="skillmix: shorter teacher answers are dropped (shirkers).")
    verify: Literal["self_consistency", "none"] = Field(
        "self_consistency", description="skillmix: self_consistency keeps an instruction when most of the "
        "teacher's answers agree on one final number (it becomes the reference); none keeps all (for loops whose "
        "judges need no reference).")
    consistency_samples: int = Field(5, ge=2, description="skillmix: teacher answers per instruction for the vote.")
    min_agreement: float = Field(0.6, gt=0.0, le=1.0, description="skillmix: share of answers that must agree.")
    writing: sampling_config("skillmix: how the teacher writes instructions and answers.", temperature=0.8,
                             max_tokens=384)
    consistency: sampling_config("skillmix: how the teacher's answers for the vote are sampled.", temperature=0.7,
                                 max_tokens=384)


class StatConfig(Config):
    kind: Literal["stat"] = "stat"
    variant: Literal["sel", "syn", "uniform"] = Field(
        "sel", description="sel: reweight the round's examples toward missing skills (STAT-Sel); syn: make new "
        "tasks for them (STAT-Syn); uniform: the unweighted baseline with the same budget.")
    labels: Literal["programmatic", "teacher"] = Field(
        "programmatic", description="Where skill labels come from: programmatic (a task column, see "
        "skills_column) or teacher (an LLM picks skills from the inventory for every task).")
    skills_column: str = Field("skills", description="programmatic: the task column that lists its skills.")
    teacher: EngineConfig | None = Field(
        None, description="teacher: the engine that lists and labels skills (and writes SkillMix tasks); default: "
        "the loop's engine on the starting model.")
    teacher_sampling: sampling_config("How the teacher lists and labels skills (greedy; max_tokens bounds a JSON list "
                                      "of skill names).", temperature=0.0, max_tokens=96)
    inventory: Path | list[str] | None = Field(
        None, description="teacher: the skills to choose from (a list, a skills.yaml or a .txt); default: the "
        "teacher lists the skills of inventory_tasks training tasks and they are clustered (MiniLM).")
    inventory_tasks: int = Field(64, ge=1, description="teacher, no inventory: training tasks the teacher reads.")
    max_skills: int = Field(8, ge=2, description="teacher, no inventory: most skills kept (the most named).")
    max_labels: int = Field(2, ge=1, le=8, description="teacher: most skills per task.")
    probe: TaskSource | None = Field(
        None, description="The probe set whose failures build the Missing-Skill-Profile (kept apart from the "
        "held-out tasks; needed by sel and syn).")
    probe_count: int = Field(200, ge=1, description="Probe tasks answered each round (the first of the source).")
    budget: int = Field(256, ge=1, description="SFT rows per round, drawn from the examples (with replacement): the "
                                               "same training budget in every variant.")
    response_column: str | None = Field(
        None, description="A training-task column holding a worked answer (e.g. GSM8K's, mapped to reference): the "
        "existing examples. Null: the examples are the policy's own verified answers (sample, judge).")
    max_per_task: int = Field(2, ge=1, description="Most distinct verified answers kept per task as examples.")
    include_truncated: bool = Field(False, description="Keep verified answers that hit max_tokens as examples.")
    smoothing: float = Field(1.0, ge=0.0, description="Failure rates are smoothed toward the overall rate as if "
                                                      "this many average tasks were added per skill.")
    sharpness: float = Field(1.0, gt=0.0, description="Target share per skill is failure_rate ** sharpness "
                                                      "(higher: more toward the worst skills).")
    uniform_mix: float = Field(0.1, ge=0.0, le=1.0, description="Share of the target spread evenly over all "
                                                                "skills (none is starved).")
    syn: SynSettings = SynSettings()

    def check_loop(self, loop) -> None:
        """Called by LoopConfig's validation with the whole loop config."""
        if any(m != "sft" for m in loop.train.plan):
            raise ValueError(f"recipe stat trains with SFT; set train.plan: [sft] (got {loop.train.plan})")

    @model_validator(mode="after")
    def _check(self) -> StatConfig:
        if self.variant in ("sel", "syn") and self.probe is None:
            raise ValueError(f"variant {self.variant} needs a probe set (recipe.probe: a task source, e.g. "
                             "{kind: arithmetic, seed: 3})")
        if self.variant == "syn" and self.response_column is not None:
            raise ValueError("variant syn makes new tasks, answered by the policy: unset response_column "
                             "(it is for sel and uniform)")
        return self
