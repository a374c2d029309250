"""Rejection-sampling self-training (expert iteration, STaR): sample N answers per task, keep the ones the
verifier accepts, train on them; optionally DPO on accepted-vs-rejected pairs, or a GRPO round with the
verifier as reward. The training method of each round comes from `train.plan` in the loop config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from synthloop.loops.context import RoundContext
from synthloop.loops.judging import iter_judged
from synthloop.loops.pairs import preference_pairs, sft_examples
from synthloop.loops.program_tasks import tasks_stage
from synthloop.loops.recipes.base import Recipe
from synthloop.loops.recipes.expert_iteration.config import ExpertIterationConfig
from synthloop.loops.stages import EvaluateStage, JudgeStage, SampleStage, Stage, TrainStage
from synthloop.runs.jsonl import write_jsonl


class BuildDataStage(Stage):
    """Judged samples -> data/sft.jsonl (accepted answers) and data/pairs.jsonl (best vs worst of N) for the round's
    methods; recipes that train on more add theirs in `more_data`."""

    name = "build"
    #: methods that train on data/pairs.jsonl (each reports `<method>_pairs`)
    pair_methods: ClassVar[tuple[str, ...]] = ("dpo",)

    def __init__(self, method: str, options: ExpertIterationConfig):
        self.method, self.options = method, options

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        judged, data = Path(ctx.outputs("judge")["path"]), ctx.dir / "data"
        opts = self.options
        out: dict[str, Any] = {"metrics": {}}
        if "sft" in self.method:
            rows = sft_examples(iter_judged(judged), max_per_task=opts.max_per_task,
                                include_truncated=opts.include_truncated)
            out["sft"] = str(data / "sft.jsonl")
            out["metrics"]["sft_data"] = write_jsonl(data / "sft.jsonl", rows)
        for method in self.pair_methods:
            if method in self.method:
                rows = preference_pairs(iter_judged(judged), min_margin=opts.min_margin,
                                        pairs_per_task=opts.pairs_per_task)
                out["pairs"] = str(data / "pairs.jsonl")
                out["metrics"][f"{method}_pairs"] = write_jsonl(data / "pairs.jsonl", rows)
        self.more_data(ctx, judged, data, out)
        return out

    def more_data(self, ctx: RoundContext, judged: Path, data: Path, out: dict[str, Any]) -> None:
        """Write further data files into `data` (and their paths and counts into `out`)."""


class ExpertIteration(Recipe):
    name = "expert_iteration"
    config_class = ExpertIterationConfig
    #: the stage that builds a round's data and the one that trains each method (recipes on top swap in their own)
    build_stage: ClassVar[type[BuildDataStage]] = BuildDataStage
    train_stage: ClassVar[type[TrainStage]] = TrainStage

    def stages(self, round_: int) -> list[Stage]:
        method = self.loop.train.method(round_)
        if method == "grpo":  # GRPO samples its own rollouts while it trains
            return [tasks_stage(self.loop), TrainStage("grpo"), EvaluateStage()]
        trains = [self.train_stage(m) for m in method.split("+")]
        return [tasks_stage(self.loop), SampleStage(), JudgeStage(), self.build_stage(method, self.config), *trains,
                EvaluateStage()]

    def describe(self, round_: int) -> str:
        return self.loop.train.method(round_) if round_ else "baseline"
