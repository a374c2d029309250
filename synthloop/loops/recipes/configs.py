"""The `recipe:` section of a loop config: one config class per recipe, picked by `kind`."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import BaseModel, Field

from synthloop.loops.recipes.expert_iteration.config import ExpertIterationConfig
from synthloop.loops.recipes.latent_thought_em.config import LatentThoughtEMConfig
from synthloop.loops.recipes.negatives.config import NegativesConfig
from synthloop.loops.recipes.self_lengthen.config import SelfLengthenConfig
from synthloop.loops.recipes.stat.config import StatConfig
from synthloop.loops.recipes.ttsi.config import TTDConfig, TTSIConfig

#: recipe configs by the `kind` a loop config names (the recipes themselves: `registry.RECIPES`)
RECIPE_CONFIGS: dict[str, type[BaseModel]] = {c.model_fields["kind"].default: c for c in (
    ExpertIterationConfig, LatentThoughtEMConfig, NegativesConfig, SelfLengthenConfig, StatConfig, TTSIConfig,
    TTDConfig)}
RecipeConfig = Annotated[Union[tuple(RECIPE_CONFIGS.values())], Field(discriminator="kind")]  # noqa: UP007


def default_recipe() -> ExpertIterationConfig:
    return ExpertIterationConfig()
