"""Recipes: what a loop does each round, as stages on the controller. `RECIPES` maps `recipe.kind` to one."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from synthloop.loops.recipes.base import Recipe
from synthloop.loops.recipes.expert_iteration import ExpertIteration, ExpertIterationConfig
from synthloop.loops.recipes.latent_thought_em import LatentThoughtEM, LatentThoughtEMConfig
from synthloop.loops.recipes.negatives import LearningFromNegatives
from synthloop.loops.recipes.self_lengthen import SelfLengthen, SelfLengthenConfig
from synthloop.loops.recipes.stat import Stat, StatConfig
from synthloop.loops.recipes.test_time import TTD, TTSI

RECIPES: dict[str, type[Recipe]] = {
    ExpertIteration.name: ExpertIteration,
    LatentThoughtEM.name: LatentThoughtEM,
    LearningFromNegatives.name: LearningFromNegatives,
    SelfLengthen.name: SelfLengthen,
    Stat.name: Stat,
    TTSI.name: TTSI,
    TTD.name: TTD,
}

_configs = tuple(r.config_class for r in RECIPES.values())
RecipeConfig = (
    Annotated[Union[_configs], Field(discriminator="kind")]  # noqa: UP007 - built at runtime
    if len(_configs) > 1
    else _configs[0]
)


def default_recipe():
    return ExpertIterationConfig()


def build(loop) -> Recipe:
    return RECIPES[loop.recipe.kind](loop)


__all__ = [
    "RECIPES",
    "TTD",
    "TTSI",
    "ExpertIteration",
    "ExpertIterationConfig",
    "LatentThoughtEM",
    "LatentThoughtEMConfig",
    "LearningFromNegatives",
    "Recipe",
    "RecipeConfig",
    "SelfLengthen",
    "SelfLengthenConfig",
    "Stat",
    "StatConfig",
    "build",
    "default_recipe",
]
