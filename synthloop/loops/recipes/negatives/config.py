"""The `recipe:` section of learning from negatives (REDI, TOPR beside expert iteration's methods)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synthloop.loops.recipes.expert_iteration.config import ExpertIterationConfig
from synthloop.train.config import REDISettings, TOPRSettings

OWN_METHODS = ("redi", "topr")


class NegativesConfig(ExpertIterationConfig):
    kind: Literal["negatives"] = "negatives"
    max_negatives_per_task: int | None = Field(
        4, ge=1, description="Most rejected answers kept per task for TOPR (distinct texts); null keeps all. "
        "Positives follow max_per_task."
    )
    reward_correct: float = Field(1.0, description="TOPR reward of an accepted answer.")
    reward_incorrect: float = Field(-1.0, description="TOPR reward of a rejected answer.")
    redi: REDISettings = Field(REDISettings(), description="The REDI training step (methods redi, sft+redi).")
    topr: TOPRSettings = Field(TOPRSettings(), description="The TOPR training step (methods topr, sft+topr).")
