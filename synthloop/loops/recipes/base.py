"""What a recipe is: a config section (`recipe: {kind: ...}`) and the stages of each round.

    class MyRecipe(Recipe):
        name = "my_recipe"
        config_class = MyRecipeConfig            # pydantic, with kind: Literal["my_recipe"]
        def stages(self, round_):                # round 1, 2, ...; round 0 is the baseline evaluation
            return [TasksStage(), SampleStage(), JudgeStage(), MyBuildStage(), TrainStage("sft"), EvaluateStage()]

Register it in `synthloop/loops/recipes/__init__.py: RECIPES` and its config in `recipes/configs.py:
RECIPE_CONFIGS`; the loop config then accepts it. The
controller runs the stages, records each one's outputs once it finished, resumes a killed loop at the
stage it was in, swaps engines and checkpoints, and writes the per-round metrics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from pydantic import BaseModel

from synthloop.loops.config import LoopConfig
from synthloop.loops.stages import EvaluateStage, Stage


class Recipe(ABC):
    name: ClassVar[str]
    config_class: ClassVar[type[BaseModel]]

    def __init__(self, loop: LoopConfig):
        self.loop = loop
        self.config = loop.recipe

    def initial_checkpoints(self) -> dict[str, str]:
        """The checkpoint of each role before round 1 (a recipe with several roles, e.g. a generator and an
        extender, names them all; stages then read and replace them with ctx.checkpoint / ctx.set_checkpoint)."""
        return {"policy": self.loop.engine.model}

    def baseline(self) -> list[Stage]:
        """Round 0: evaluate the starting policy on the held-out tasks."""
        return [EvaluateStage()]

    @abstractmethod
    def stages(self, round_: int) -> list[Stage]:
        """The stages of training round `round_` (1, 2, ...), in order."""

    def describe(self, round_: int) -> str:
        """A short label of the round for tables (e.g. its training method)."""
        return ""
