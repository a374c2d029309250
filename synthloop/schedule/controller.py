"""The round controller of a schedule: the loop's own controller, with the recipe fed by the inbox and ending in a
promotion decision (`synthloop.schedule.stages.ScheduledRecipe`). Generation, judging, training, evaluation,
engine swaps and resume are the controller's (`synthloop.loops.controller`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthloop.loops.controller import LoopController
from synthloop.schedule.stages import ScheduledRecipe


class TickController(LoopController):
    def __init__(self, config, run_dir: str | Path, **options: Any):
        super().__init__(config, run_dir, **options)
        self.recipe = ScheduledRecipe(self.recipe, self.run.path)
