"""Every recipe by the `recipe.kind` a loop config names (their configs: `recipes/configs.py`)."""


from __future__ import annotations

from synthloop.loops.config import LoopConfig
from synthloop.loops.recipes.base import Recipe
from synthloop.loops.recipes.expert_iteration.recipe import ExpertIteration
from synthloop.loops.recipes.latent_thought_em.recipe import LatentThoughtEM
from synthloop.loops.recipes.negatives.recipe import LearningFromNegatives
from synthloop.loops.recipes.self_lengthen.recipe import SelfLengthen
from synthloop.loops.recipes.stat.recipe import Stat
from synthloop.loops.recipes.ttsi.recipe import TTD, TTSI

RECIPES: dict[str, type[Recipe]] = {r.name: r for r in (
    ExpertIteration, LatentThoughtEM, LearningFromNegatives, SelfLengthen, Stat, TTSI, TTD)}


def build(loop: LoopConfig) -> Recipe:
    return RECIPES[loop.recipe.kind](loop)

