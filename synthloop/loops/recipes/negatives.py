"""Learning from negatives: expert iteration that also trains on the answers the verifier rejected.

Each round samples N answers per task with the current policy and verifies them (as expert iteration does), then
builds data from accepted AND rejected answers and trains with the round's method (`train.plan`):

- `sft+redi`  REDI (Xu et al. 2025, arXiv:2505.24850): SFT on the correct answers, then the reference-free REDI
              objective on correct-vs-incorrect pairs (data/pairs.jsonl, the same pairs DPO trains on).
- `topr`      TOPR (Le Roux et al. 2025, arXiv:2503.14286): tapered off-policy REINFORCE on correct (reward +1) and
              incorrect (reward -1) samples (data/topr.jsonl); the round's sampler is the behaviour policy.
- `redi`, `sft+topr`, and the expert-iteration methods (`sft`, `dpo`, `sft+dpo`, `grpo`) on the same data, so
  several loops with the same seeds compare the methods on the same tasks and (in round 1) the same samples.

    synthloop loop configs/negatives.yaml --set train.plan=[sft+redi]
    synthloop loop configs/negatives.yaml --set train.plan=[topr] --set name=negatives-topr

The objectives live in `synthloop.loops.train` (`redi`, `topr`: TRL SFTTrainer subclasses); their settings are
`recipe.redi` and `recipe.topr`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from synthloop.loops.pairs import preference_pairs, sft_examples
from synthloop.loops.recipes.expert_iteration import ExpertIteration, ExpertIterationConfig
from synthloop.loops.stages import EvaluateStage, JudgeStage, SampleStage, Stage, TasksStage, TrainStage, write_jsonl
from synthloop.loops.train.config import REDISettings, TOPRSettings
from synthloop.runs.run_dir import read_jsonl

OWN_METHODS = ("redi", "topr")


class NegativesConfig(ExpertIterationConfig):
    kind: Literal["negatives"] = "negatives"
    max_negatives_per_task: int | None = Field(
        4, ge=1, description="Most rejected answers kept per task for TOPR (distinct texts); null keeps all. "
        "Positives follow max_per_task."
    )
    reward_correct: float = Field(1.0, description="TOPR reward of an accepted answer.")
    reward_incorrect: float = Field(-1.0, description="TOPR reward of a rejected answer.")
    redi: REDISettings = Field(REDISettings(), description="The REDI training step (methods redi, sft+redi).")
    topr: TOPRSettings = Field(TOPRSettings(), description="The TOPR training step (methods topr, sft+topr).")


def _normal(text: str) -> str:
    return " ".join(text.split()).lower()


def rejected_examples(records: Iterable[dict[str, Any]], *, max_per_task: int | None = None
                      ) -> Iterator[dict[str, Any]]:
    """Rejected samples as prompt-completion rows (distinct texts up to whitespace and case, at most `max_per_task`
    per task, in sample order). Answers cut off at max_tokens stay: an unfinished answer is a wrong one."""
    for record in records:
        seen: set[str] = set()
        for sample in record["samples"]:
            key = _normal(sample["text"])
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
    from synthloop.loops.judging import iter_judged

    for record in iter_judged(judged):
        for row in sft_examples([record], max_per_task=options.max_per_task,
                                include_truncated=options.include_truncated):
            yield {**row, "reward": options.reward_correct}
        for row in rejected_examples([record], max_per_task=options.max_negatives_per_task):
            yield {**row, "reward": options.reward_incorrect}


class NegativesBuildStage(Stage):
    """Judged samples -> data/sft.jsonl (accepted answers: sft), data/pairs.jsonl (correct vs incorrect, best vs
    worst of N: dpo and redi train on the same pairs), data/topr.jsonl (accepted and rejected samples with rewards)."""

    name = "build"

    def __init__(self, method: str, options: NegativesConfig):
        self.method, self.options = method, options

    def run(self, ctx) -> dict[str, Any]:
        from synthloop.loops.judging import iter_judged

        judged, data = Path(ctx.outputs("judge")["path"]), ctx.dir / "data"
        opts = self.options
        out: dict[str, Any] = {"metrics": {}}
        if "sft" in self.method:
            rows = sft_examples(iter_judged(judged), max_per_task=opts.max_per_task,
                                include_truncated=opts.include_truncated)
            out["sft"] = str(data / "sft.jsonl")
            out["metrics"]["sft_data"] = write_jsonl(data / "sft.jsonl", rows)
        for method in ("dpo", "redi"):
            if method in self.method:
                rows = preference_pairs(iter_judged(judged), min_margin=opts.min_margin,
                                        pairs_per_task=opts.pairs_per_task)
                out["pairs"] = str(data / "pairs.jsonl")
                out["metrics"][f"{method}_pairs"] = write_jsonl(data / "pairs.jsonl", rows)
        if "topr" in self.method:
            rows = list(topr_samples(judged, opts))
            positives = sum(1 for r in rows if r["reward"] - opts.topr.baseline >= 0)
            out["topr"] = str(data / "topr.jsonl")
            out["metrics"].update(topr_samples=write_jsonl(data / "topr.jsonl", rows), topr_positives=positives,
                                  topr_negatives=len(rows) - positives)
        return out


class NegativesTrainStage(TrainStage):
    """TrainStage for redi and topr (settings from the recipe section); sft and dpo as in expert iteration."""

    def data_path(self, ctx) -> Path:
        if self.method == "redi":
            return ctx.dir / "data" / "pairs.jsonl"
        if self.method == "topr":
            return ctx.dir / "data" / "topr.jsonl"
        return super().data_path(ctx)

    def run(self, ctx) -> dict[str, Any]:
        if self.method not in OWN_METHODS:
            return super().run(ctx)
        from synthloop.loops import train

        settings = getattr(ctx.config.recipe, self.method)
        settings = settings.model_copy(update={"seed": settings.seed + ctx.round})
        out, data = ctx.dir / self.name, self.data_path(ctx)
        rows = sum(1 for _ in read_jsonl(data)) if data.is_file() else 0
        if rows == 0:
            ctx.log(f"{self.name}: no training data this round; the policy stays as it is")
            return {"skipped": "no training data", "metrics": {f"{self.method}_examples": 0}}
        model = ctx.checkpoint(self.role)
        common = dict(model=model, data=data, out=out, progress=ctx.progress, log=ctx.log)
        extra: dict[str, Any] = {}
        if self.method == "redi":
            result = train.redi(config=settings, **common)
        else:
            if settings.behavior_temperature is None:
                settings = settings.model_copy(update={"behavior_temperature": ctx.config.sampling.temperature})
            # the behaviour policy mu is the one that drew this round's samples
            behavior = ctx.record.checkpoint_in.get(self.role, model)
            result = train.topr(config=settings, behavior_model=behavior, **common)
            extra = {"behavior_model": behavior, "behavior_temperature": settings.behavior_temperature}
        ctx.set_checkpoint(result.checkpoint, self.role)
        metrics = {f"{self.method}_examples": result.examples, f"{self.method}_steps": result.steps,
                   f"{self.method}_loss": result.train_loss}
        log = [r for r in read_jsonl(out / "log.jsonl") if "loss" in r]
        for key, name in (("logps/positive", "logp_pos"), ("logps/negative", "logp_neg"),
                          ("topr/negative_weight", "neg_weight")):
            values = [r[key] for r in log if key in r]
            if values:
                metrics[f"{self.method}_{name}_first"] = round(values[0], 4)
                metrics[f"{self.method}_{name}_last"] = round(values[-1], 4)
        return {**result.model_dump(mode="json"), **extra, "metrics": metrics}


class LearningFromNegatives(ExpertIteration):
    name = "negatives"
    config_class = NegativesConfig

    def stages(self, round_: int) -> list[Stage]:
        method = self.loop.train.method(round_)
        if method == "grpo":  # GRPO samples its own rollouts while it trains
            return super().stages(round_)
        trains = [NegativesTrainStage(m) for m in method.split("+")]
        return [TasksStage(), SampleStage(), JudgeStage(), NegativesBuildStage(method, self.config), *trains,
                EvaluateStage()]
