"""The building blocks recipes compose a round from. Each stage is resumable on its own, and the controller
records it as done (with its outputs) only once it finished, so a killed loop re-enters the stage it was in:

- `TasksStage`    the round's training tasks -> round-XXX/tasks.jsonl (disjoint from the held-out set; a program
                  source writes them: `synthloop.loops.program_tasks`)
- `SampleStage`   N answers per task from the current policy, through the runner -> round-XXX/samples/
- `JudgeStage`    every sample scored by the judges -> round-XXX/judged/ (append-only, skips judged tasks)
- `TrainStage`    SFT / DPO / GRPO from the current policy -> round-XXX/train-<method>/model (the new policy)
- `EvaluateStage` greedy answers on the held-out tasks, judged -> round-XXX/eval/, eval-judged/ (with the figures
                  of `synthloop.loops.heldout`: answer length, each judge's mean, IFEval's metrics on IFEval rows)

A stage returns its outputs as a dict; `outputs["metrics"]` (flat numbers) goes into the round table.
Recipes add their own stages by subclassing `Stage` (see `synthloop.loops.recipes`).
"""

from __future__ import annotations

import itertools
import statistics
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from synthloop.engines.base import Engine
from synthloop.engines.types import Sampling
from synthloop.loops.context import RoundContext
from synthloop.loops.report import accuracy_interval
from synthloop.runs.jsonl import read_jsonl, write_jsonl
from synthloop.runs.run_dir import RunDir, RunIncomplete
from synthloop.text import normal_form


class StageIncomplete(RunIncomplete):
    """A stage stopped before finishing (e.g. SIGTERM while sampling); rerun the loop to resume it."""


class Stage(ABC):
    #: the stage's name within a round (unique; it names its state entry)
    name: str
    #: needs the engine serving the current policy (sampling, evaluation)
    uses_engine: ClassVar[bool] = False
    #: needs the memory: the controller closes the engine first (training)
    frees_engine: ClassVar[bool] = False

    @abstractmethod
    def run(self, ctx: RoundContext) -> dict[str, Any]:
        """Do the stage's work (resuming any partial work in ctx.dir) and return its outputs."""


# -- helpers ----------------------------------------------------------------------------------------
def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def eval_tasks(ctx: RoundContext) -> list[dict[str, Any]]:
    """The held-out tasks, materialized once into the run directory (eval_tasks.jsonl)."""
    path = ctx.run_dir / "eval_tasks.jsonl"
    if not path.is_file():
        rows = ctx.config.tasks.eval.rows()
        if ctx.config.tasks.eval_count is not None:
            rows = itertools.islice(rows, ctx.config.tasks.eval_count)
        write_jsonl(path, (dict(row, task_id=f"eval-{i}") for i, row in enumerate(rows)))
    return list(read_jsonl(path))


def _train_rows(ctx: RoundContext, held_out: set[str]) -> Iterator[dict[str, Any]]:
    """Training tasks minus any whose prompt is a held-out prompt, with their stream index."""
    for i, row in enumerate(ctx.config.tasks.train.rows()):
        if normal_form(row["prompt"]) not in held_out:
            yield dict(row, task_id=f"train-{i}")


def sample_stats(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Judged records -> accuracy of samples, pass@n, mean score and length."""
    tasks = samples = accepted = solved = truncated = 0
    scores, tokens = [], []
    for record in records:
        tasks += 1
        hits = [s["accepted"] for s in record["samples"]]
        samples += len(hits)
        accepted += sum(hits)
        solved += any(hits)
        scores += [s["score"] for s in record["samples"]]
        tokens += [s.get("tokens", 0) for s in record["samples"]]
        truncated += sum(s.get("finish_reason") == "length" for s in record["samples"])
    return {"tasks": tasks, "samples": samples, "accepted": accepted,
            "accuracy": round(accepted / samples, 4) if samples else None,
            "pass_at_n": round(solved / tasks, 4) if tasks else None, "score": _mean(scores),
            "tokens": _mean([float(t) for t in tokens]),
            "truncated": round(truncated / samples, 4) if samples else None}


# -- stages -----------------------------------------------------------------------------------------
class TasksStage(Stage):
    name = "tasks"

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        cfg = ctx.config.tasks
        held_out = {normal_form(r["prompt"]) for r in eval_tasks(ctx)}
        per = cfg.per_round
        start = (ctx.round - 1) * per if cfg.fresh_each_round else 0
        rows, length = [], 0
        for i, row in enumerate(_train_rows(ctx, held_out)):
            length = i + 1
            if i >= start:
                rows.append(row)
            if len(rows) == per:
                break
        if len(rows) < per and length:  # a finite source ran out: wrap around it
            wanted = {(start + k) % length for k in range(min(per, length))}
            rows = [r for i, r in enumerate(_train_rows(ctx, held_out)) if i in wanted]
        if not rows:
            raise ValueError("tasks.train yields no task that is not in the held-out set")
        path = ctx.dir / "tasks.jsonl"
        write_jsonl(path, rows)
        return {"path": str(path), "count": len(rows), "metrics": {"tasks": len(rows)}}


def chat_program(ctx: RoundContext, n: int):
    """The loop's prompt (template, system turn) as a chat program answering each task `n` times."""
    from synthloop.synth.chat import ChatSamples

    return ChatSamples(template=ctx.config.prompt.template, system=ctx.config.prompt.system, n=n)


def sample_chat(ctx: RoundContext, rows: list[dict[str, Any]], out: Path, sampling: Sampling, seed: int,
                engine: Engine | None = None) -> dict[str, Any]:
    """`sampling.n` answers per row with the loop's prompt, through the runner (cache, resume, errors) into the run
    `out`; from the policy's current checkpoint unless another `engine` is given (a teacher, an adapter). The
    policy's samples run where the loop's `executor` says (in this process, or on replicas on a Ray cluster)."""
    from synthloop.synth.generate import generate
    from synthloop.synth.ray_executor import replicas_for

    remote = None
    if engine is None:
        policy = ctx.config.engine.model_copy(update={"model": ctx.checkpoint()})
        remote = replicas_for(ctx.config.executor, policy)
    summary = generate(chat_program(ctx, sampling.n), engine=None if remote else engine or ctx.engine(),
                       remote=remote, run=out, inputs=rows, sampling=sampling, seed=seed,
                       concurrency=ctx.config.concurrency, progress=ctx.progress)
    if summary.status != "completed":
        raise StageIncomplete(f"{out}: generation {summary.status}; rerun the loop to resume it")
    return {"run": str(out), "kept": summary.kept, "failed": summary.failed, "output_tokens": summary.output_tokens,
            "generation_seconds": round(summary.seconds, 2),
            "tokens_per_s": round(summary.output_tokens / summary.seconds, 1) if summary.seconds else None}


class SampleStage(Stage):
    name = "sample"
    uses_engine = True

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        rows = list(read_jsonl(Path(ctx.outputs("tasks")["path"])))
        out = sample_chat(ctx, rows, ctx.dir / "samples", ctx.config.sampling, seed=ctx.seed("sample"))
        return {**out, "metrics": {"sample_tokens_per_s": out["tokens_per_s"]}}


class JudgeStage(Stage):
    name = "judge"

    def __init__(self, source: str = "samples", out: str = "judged", prefix: str = "sample"):
        self.source, self.out, self.prefix = source, out, prefix
        if source != "samples":
            self.name = f"judge-{source}"

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        from synthloop.loops.judging import iter_judged, judge_records

        run = RunDir(ctx.dir / self.source)
        total = run.manifest().get("counts", {}).get("kept")
        with ctx.bar(f"judge {self.source}", total) as advance:
            for _ in judge_records(run.iter_records(), ctx.panel, ctx.dir / self.out, on_progress=advance):
                pass
        stats = sample_stats(iter_judged(ctx.dir / self.out))
        return {"path": str(ctx.dir / self.out), **stats,
                "metrics": {f"{self.prefix}_{k}": v for k, v in stats.items()}}


class EvaluateStage(Stage):
    """Greedy answers of the current policy on the held-out tasks into `<out>/`, judged into `<out>-judged/`;
    metrics `<prefix>_accuracy`, ... (a second evaluation in the same round takes another name, out and prefix)."""

    name = "evaluate"
    uses_engine = True
    out = "eval"  # class defaults too: subclasses with their own __init__ (LengthEvaluateStage) keep working
    prefix = "eval"

    def __init__(self, name: str = "evaluate", out: str = "eval", prefix: str = "eval"):
        self.name, self.out, self.prefix = name, out, prefix

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        from synthloop.loops.heldout import heldout_metrics
        from synthloop.loops.judging import iter_judged, judge_records

        rows = eval_tasks(ctx)
        out = sample_chat(ctx, rows, ctx.dir / self.out, ctx.config.eval, seed=ctx.seed("eval"))
        records = RunDir(ctx.dir / self.out).iter_records()
        judged = ctx.dir / f"{self.out}-judged"
        with ctx.bar("judged", len(rows), unit="") as advance:
            for _ in judge_records(records, ctx.panel, judged, on_progress=advance):
                pass
        judged_records = list(iter_judged(judged))
        stats = sample_stats(judged_records)
        p = self.prefix
        return {**out, **stats, "judged": str(judged), "metrics": {
            f"{p}_accuracy": stats["accuracy"],
            f"{p}_accuracy_ci95": accuracy_interval(stats["accepted"], stats["samples"]),
            f"{p}_score": stats["score"], f"{p}_tokens": stats["tokens"],
            f"{p}_truncated": stats["truncated"], f"{p}_tasks": stats["tasks"], f"{p}_failed": out["failed"],
            **heldout_metrics(ctx, rows, judged_records, self.out, p)}}


class TrainStage(Stage):
    """Train the current policy with `method` on the data file a build stage wrote (sft: data/sft.jsonl,
    dpo: data/pairs.jsonl) or, for grpo, on the round's tasks with the judges as reward. Subclasses change what
    they need through the hooks: `data_path`, `settings`, `start_checkpoint`, `train` (the step call) and
    `step_metrics`."""

    frees_engine = True

    def __init__(self, method: str, role: str = "policy"):
        self.method, self.role = method, role
        self.name = f"train-{method}"

    def data_path(self, ctx: RoundContext) -> Path:
        return ctx.dir / "data" / {"sft": "sft.jsonl", "dpo": "pairs.jsonl", "grpo": "prompts.jsonl"}[self.method]

    def settings(self, ctx: RoundContext):
        """The method's training settings (default: the loop's `train.<method>`); recipes may override. `run` adds
        the round number to the seed."""
        return getattr(ctx.config.train, self.method)

    def start_checkpoint(self, ctx: RoundContext) -> str:
        """The checkpoint training starts from (default: the role's current one); recipes may override."""
        return ctx.checkpoint(self.role)

    def train(self, ctx: RoundContext, *, model: str, data: Path, out: Path, settings):
        """The training step itself (a `synthloop.train` call) -> its `TrainResult`."""
        from synthloop import train
        from synthloop.judges.rewards import judge_reward
        from synthloop.train.launch import Factory

        common = dict(model=model, out=out, progress=ctx.progress, log=ctx.log)
        if self.method == "grpo":
            weights = settings.reward_weights or ctx.panel.weights
            if settings.launcher.kind == "accelerate":  # each training process rebuilds the judges from their specs
                funcs = Factory(target="synthloop.judges.rewards:rewards_from_specs",
                                kwargs={"specs": [spec.model_dump(mode="json") for spec in ctx.config.judges]})
            else:
                funcs = [judge_reward(judge) for judge in ctx.panel.judges]
            return train.grpo(prompts=data, reward_funcs=funcs,
                              config=settings.model_copy(update={"reward_weights": weights}), **common)
        return getattr(train, self.method)(data=data, config=settings, **common)

    def step_metrics(self, ctx: RoundContext, out: Path, result) -> dict[str, Any]:
        """Metrics read from the step's own log, beside examples, steps and loss."""
        if self.method != "grpo":
            return {}
        rewards = [r["reward"] for r in read_jsonl(out / "log.jsonl") if "reward" in r]
        return {"grpo_reward_first": rewards[0] if rewards else None,
                "grpo_reward_last": rewards[-1] if rewards else None}

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        settings = self.settings(ctx)
        settings = settings.model_copy(update={"seed": settings.seed + ctx.round})
        out, data = ctx.dir / self.name, self.data_path(ctx)
        if self.method == "grpo" and not data.is_file():
            write_jsonl(data, self.grpo_prompts(ctx))
        rows = sum(1 for _ in read_jsonl(data)) if data.is_file() else 0
        if rows == 0:
            ctx.log(f"{self.name}: no training data this round; the {self.role} stays as it is")
            return {"skipped": "no training data", "metrics": {f"{self.method}_examples": 0}}
        result = self.train(ctx, model=self.start_checkpoint(ctx), data=data, out=out, settings=settings)
        ctx.set_checkpoint(result.checkpoint, self.role)
        metrics = {f"{self.method}_examples": result.examples, f"{self.method}_steps": result.steps,
                   f"{self.method}_loss": result.train_loss, **self.step_metrics(ctx, out, result)}
        return {**result.model_dump(mode="json"), "metrics": metrics}

    def grpo_prompts(self, ctx: RoundContext) -> Iterator[dict[str, Any]]:
        program = chat_program(ctx, 1)
        for row in read_jsonl(Path(ctx.outputs("tasks")["path"])):
            yield {"prompt": list(program.prompt(row)), "reference": row.get("reference"),
                   "task_id": row["task_id"]}
