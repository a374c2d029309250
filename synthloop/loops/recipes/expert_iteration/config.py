"""The `recipe:` section of expert iteration (rejection-sampling self-training)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from synthloop.configs import Config


class ExpertIterationConfig(Config):
    kind: Literal["expert_iteration"] = "expert_iteration"
    #: its tasks stage takes a program source (`tasks.train: {kind: program}`): `loops.program_tasks.tasks_stage`
    program_tasks: ClassVar[bool] = True
    max_per_task: int | None = Field(
        4, ge=1, description="Most accepted answers kept per task for SFT (distinct texts); null keeps all."
    )
    include_truncated: bool = Field(False, description="Keep accepted answers that hit max_tokens.")
    pairs_per_task: int = Field(1, ge=1, description="DPO pairs per task: the k best against the k worst.")
    min_margin: float = Field(0.0, ge=0, description="Smallest score gap between chosen and rejected when both have "
                                                     "the same verdict (accepted vs rejected always pairs).")
