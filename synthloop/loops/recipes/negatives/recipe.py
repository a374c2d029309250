"""Learning from negatives: expert iteration that also trains on the answers the verifier rejected.

Each round samples N answers per task with the current policy and verifies them (as expert iteration does), then
builds data from accepted AND rejected answers and trains with the round's method (`train.plan`):

- `sft+redi`  REDI (Xu et al. 2025, arXiv:2505.24850): SFT on the correct answers, then the reference-free REDI
              objective on correct-vs-incorrect pairs (data/pairs.jsonl, the same pairs DPO trains on).
- `topr`      TOPR (Le Roux et al. 2025, arXiv:2503.14286): tapered off-policy REINFORCE on correct (reward +1) and
              incorrect (reward -1) samples (data/topr.jsonl); the round's sampler is the behaviour policy.
- `redi`, `sft+topr`, and the expert-iteration methods (`sft`, `dpo`, `sft+dpo`, `grpo`) on the same data, so
  several loops with the same seeds compare the methods on the same tasks and (in round 1) the same samples.

    synthloop loop configs/loop/negatives.yaml --set train.plan=[sft+redi]
    synthloop loop configs/loop/negatives.yaml --set train.plan=[topr] --set name=negatives-topr

The objectives live in `synthloop.train` (`redi`, `topr`: TRL SFTTrainer subclasses); their settings are
`recipe.redi` and `recipe.topr`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from synthloop import train
from synthloop.loops.context import RoundContext
from synthloop.loops.judging import iter_judged
from synthloop.loops.pairs import sft_examples
from synthloop.loops.recipes.expert_iteration.recipe import BuildDataStage, ExpertIteration
from synthloop.loops.recipes.negatives.config import OWN_METHODS, NegativesConfig
from synthloop.loops.stages import TrainStage
from synthloop.runs.jsonl import read_jsonl, write_jsonl
from synthloop.text import normal_form


def rejected_examples(records: Iterable[dict[str, Any]], *, max_per_task: int | None = None
                      ) -> Iterator[dict[str, Any]]:
    """Rejected samples as prompt-completion rows (distinct texts up to whitespace and case, at most `max_per_task`
    per task, in sample order). Answers cut off at max_tokens stay: an unfinished answer is a wrong one."""
    for record in records:
        seen: set[str] = set()
        for sample in record["samples"]:
            key = normal_form(sample["text"])
            if sample["accepted"] or not key or key in seen:
                continue
            seen.add(key)
            yield {"prompt": [dict(m) for m in record["messages"]],
                   "completion": [{"role": "assistant", "content": sample["text"]}],
                   "task_id": record["id"], "score": sample["score"]}
            if max_per_task is not None and len(seen) >= max_per_task:
                break


def topr_samples(judged: Path, options: NegativesConfig) -> Iterator[dict[str, Any]]:
    """Judged samples -> TOPR rows: accepted answers with reward_correct, rejected ones with reward_incorrect,
    grouped by task (positives first)."""
    for record in iter_judged(judged):
        for row in sft_examples([record], max_per_task=options.max_per_task,
                                include_truncated=options.include_truncated):
            yield {**row, "reward": options.reward_correct}
        for row in rejected_examples([record], max_per_task=options.max_negatives_per_task):
            yield {**row, "reward": options.reward_incorrect}


class NegativesBuildStage(BuildDataStage):
    """Judged samples -> data/sft.jsonl (accepted answers: sft), data/pairs.jsonl (correct vs incorrect, best vs
    worst of N: dpo and redi train on the same pairs), data/topr.jsonl (accepted and rejected samples with rewards)."""

    pair_methods = ("dpo", "redi")

    def more_data(self, ctx: RoundContext, judged: Path, data: Path, out: dict[str, Any]) -> None:
        if "topr" in self.method:
            opts = self.options
            rows = list(topr_samples(judged, opts))
            positives = sum(1 for r in rows if r["reward"] - opts.topr.baseline >= 0)
            out["topr"] = str(data / "topr.jsonl")
            out["metrics"].update(topr_samples=write_jsonl(data / "topr.jsonl", rows), topr_positives=positives,
                                  topr_negatives=len(rows) - positives)


class NegativesTrainStage(TrainStage):
    """TrainStage for redi and topr (settings from the recipe section); sft and dpo as in expert iteration."""

    def data_path(self, ctx: RoundContext) -> Path:
        if self.method == "redi":
            return ctx.dir / "data" / "pairs.jsonl"
        if self.method == "topr":
            return ctx.dir / "data" / "topr.jsonl"
        return super().data_path(ctx)

    def settings(self, ctx: RoundContext):
        return getattr(ctx.config.recipe, self.method) if self.method in OWN_METHODS else super().settings(ctx)

    def train(self, ctx: RoundContext, *, model: str, data: Path, out: Path, settings):
        if self.method not in OWN_METHODS:
            return super().train(ctx, model=model, data=data, out=out, settings=settings)
        common = dict(model=model, data=data, out=out, progress=ctx.progress, log=ctx.log)
        if self.method == "redi":
            return train.redi(config=settings, **common)
        if settings.behavior_temperature is None:
            settings = settings.model_copy(update={"behavior_temperature": ctx.config.sampling.temperature})
        # the behaviour policy mu is the one that drew this round's samples
        return train.topr(config=settings, behavior_model=self.behavior(ctx, model), **common)

    def behavior(self, ctx: RoundContext, model: str) -> str:
        return ctx.record.checkpoint_in.get(self.role, model)

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        out = super().run(ctx)
        if self.method == "topr" and "skipped" not in out:
            settings = self.settings(ctx)
            out["behavior_model"] = self.behavior(ctx, self.start_checkpoint(ctx))
            out["behavior_temperature"] = settings.behavior_temperature or ctx.config.sampling.temperature
        return out

    def step_metrics(self, ctx: RoundContext, out: Path, result) -> dict[str, Any]:
        if self.method not in OWN_METHODS:
            return super().step_metrics(ctx, out, result)
        metrics: dict[str, Any] = {}
        log = [r for r in read_jsonl(out / "log.jsonl") if "loss" in r]
        for key, name in (("logps/positive", "logp_pos"), ("logps/negative", "logp_neg"),
                          ("topr/negative_weight", "neg_weight")):
            values = [r[key] for r in log if key in r]
            if values:
                metrics[f"{self.method}_{name}_first"] = round(values[0], 4)
                metrics[f"{self.method}_{name}_last"] = round(values[-1], 4)
        return metrics


class LearningFromNegatives(ExpertIteration):
    name = "negatives"
    config_class = NegativesConfig

    build_stage = NegativesBuildStage
    train_stage = NegativesTrainStage
