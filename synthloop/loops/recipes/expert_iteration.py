"""Rejection-sampling self-training (expert iteration, STaR): sample N answers per task, keep the ones the
verifier accepts, train on them; optionally DPO on accepted-vs-rejected pairs, or a GRPO round with the
verifier as reward. The training method of each round comes from `train.plan` in the loop config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from synthloop.configs import Config
from synthloop.loops.pairs import preference_pairs, sft_examples
from synthloop.loops.recipes.base import Recipe
from synthloop.loops.stages import (
    EvaluateStage,
    JudgeStage,
    SampleStage,
    Stage,
    TasksStage,
    TrainStage,
    write_jsonl,
)


class ExpertIterationConfig(Config):
    kind: Literal["expert_iteration"] = "expert_iteration"
    max_per_task: int | None = Field(
        4, ge=1, description="Most accepted answers kept per task for SFT (distinct texts); null keeps all."
    )
    include_truncated: bool = Field(False, description="Keep accepted answers that hit max_tokens.")
    pairs_per_task: int = Field(1, ge=1, description="DPO pairs per task: the k best against the k worst.")
    min_margin: float = Field(0.0, ge=0, description="Smallest score gap between chosen and rejected.")


class BuildDataStage(Stage):
    """Judged samples -> data/sft.jsonl (accepted answers) and data/pairs.jsonl (best vs worst of N)."""

    name = "build"

    def __init__(self, method: str, options: ExpertIterationConfig):
        self.method, self.options = method, options

    def run(self, ctx) -> dict[str, Any]:
        from synthloop.loops.judging import iter_judged

        judged = Path(ctx.outputs("judge")["path"])
        out: dict[str, Any] = {"metrics": {}}
        if "sft" in self.method:
            rows = sft_examples(iter_judged(judged), max_per_task=self.options.max_per_task,
                                include_truncated=self.options.include_truncated)
            n = write_jsonl(ctx.dir / "data" / "sft.jsonl", rows)
            out["sft"] = str(ctx.dir / "data" / "sft.jsonl")
            out["metrics"]["sft_data"] = n
        if "dpo" in self.method:
            rows = preference_pairs(iter_judged(judged), min_margin=self.options.min_margin,
                                    pairs_per_task=self.options.pairs_per_task)
            n = write_jsonl(ctx.dir / "data" / "pairs.jsonl", rows)
            out["pairs"] = str(ctx.dir / "data" / "pairs.jsonl")
            out["metrics"]["dpo_pairs"] = n
        return out


class ExpertIteration(Recipe):
    name = "expert_iteration"
    config_class = ExpertIterationConfig

    def stages(self, round_: int) -> list[Stage]:
        method = self.loop.train.method(round_)
        if method == "grpo":  # GRPO samples its own rollouts while it trains
            return [TasksStage(), TrainStage("grpo"), EvaluateStage()]
        trains = [TrainStage(m) for m in method.split("+")]
        return [TasksStage(), SampleStage(), JudgeStage(), BuildDataStage(method, self.config), *trains,
                EvaluateStage()]

    def describe(self, round_: int) -> str:
        return self.loop.train.method(round_) if round_ else "baseline"
