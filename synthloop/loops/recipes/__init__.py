"""Recipes: what a loop does each round, as stages on the controller. `RECIPES` maps `recipe.kind` to one."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from synthloop.loops.recipes.base import Recipe
from synthloop.loops.recipes.expert_iteration import ExpertIteration, ExpertIterationConfig
from synthloop.loops.recipes.stat import Stat, StatConfig

RECIPES: dict[str, type[Recipe]] = {
    ExpertIteration.name: ExpertIteration,
    Stat.name: Stat,
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


__all__ = ["RECIPES", "ExpertIteration", "ExpertIterationConfig", "Recipe", "RecipeConfig", "Stat", "StatConfig",
           "build", "default_recipe"]
