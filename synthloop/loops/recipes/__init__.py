"""Recipes: what a loop does each round, as stages on the controller. `registry.RECIPES` maps `recipe.kind` to one; each
recipe lives in its own folder (`config.py`: its `recipe:` section, `recipe.py`: the stages of a round, `stages.py`:
the stages it adds)."""
