"""The stages of the TT-SI / TT-D recipe (see `test_time.py` for the flow). Each resumes its own partial work
(generation runs from their records and cache, judging from its parts) and writes into round-XXX/:

    probe/ probe.jsonl          N samples per test input; each input's majority answer, share, uncertain or not
    similar/                    the written similar problems (a `similar_problems` run; dropped ones in filtered.jsonl)
    solutions/ verified/        fresh solutions of each written problem, judged against its label
    data/sft.jsonl              the accepted solutions of the kept problems: the adapter's training data
    train-sft/                  the temporary adapter (model/ deleted after answering unless recipe.keep_adapter)
    answers/ answers-judged/    the adapted model's greedy answers to the uncertain inputs, judged
    answers.jsonl report.json   per input: base, majority-vote and final answers, correct or not; the round's figures
"""

from __future__ import annotations

import shutil
import string
from pathlib import Path
from typing import Any

from synthloop.engines.base import Engine
from synthloop.judges.base import JudgeItem
from synthloop.judges.self_consistency import answer_key, majority
from synthloop.loops.context import RoundContext
from synthloop.loops.recipes.ttsi.config import TTSIConfig
from synthloop.loops.stages import Stage, StageIncomplete, eval_tasks, sample_chat
from synthloop.runs.jsonl import atomic_write, read_jsonl, write_jsonl
from synthloop.runs.run_dir import RunDir


def round_inputs(ctx: RoundContext, batch_size: int | None) -> list[dict[str, Any]]:
    """The round's test inputs: all held-out tasks, or the round's batch of them (wrapping around)."""
    tasks = eval_tasks(ctx)
    if batch_size is None or not tasks:
        return tasks
    start = ((ctx.round - 1) * batch_size) % len(tasks)
    return [tasks[(start + k) % len(tasks)] for k in range(min(batch_size, len(tasks)))]


def template_slots(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def _records(path: Path) -> list[dict[str, Any]]:
    return sorted(RunDir(path).iter_records(), key=lambda r: r["id"]) if (path / "manifest.json").is_file() else []


def _rate(hits: list[bool]) -> float | None:
    return round(sum(hits) / len(hits), 4) if hits else None


def generator(ctx: RoundContext, settings: TTSIConfig) -> Engine:
    """The engine that writes and solves similar problems: the policy's (TT-SI) or the teacher's (TT-D), both
    owned by the loop's engine pool (which closes the other first, and everything before training)."""
    teacher = getattr(settings, "teacher", None)
    return ctx.engine() if teacher is None else ctx.engine_for("teacher", teacher)


class RecipeStage(Stage):
    def __init__(self, settings: TTSIConfig):
        self.settings = settings


class ProbeStage(RecipeStage):
    """N samples per test input from the base policy (no reference anywhere near it) -> majority vote."""

    name = "probe"
    uses_engine = True

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        batch = round_inputs(ctx, self.settings.batch_size)
        rows = [{k: v for k, v in row.items() if k != "reference"} for row in batch]
        out = sample_chat(ctx, rows, ctx.dir / "probe", ctx.config.sampling, ctx.seed("probe"))
        key = answer_key(self.settings.probe.answer_key)
        sampled = {r["task_id"]: r for r in _records(ctx.dir / "probe")}
        votes = []
        for row in batch:
            record = sampled.get(row["task_id"])
            vote = majority(key(s["text"]) for s in record["samples"]) if record else None
            share = vote.share if vote else 0.0
            votes.append({"task_id": row["task_id"], "prompt": row["prompt"], "answer": vote and vote.answer,
                          "share": share, "distinct": vote.distinct if vote else 0, "probed": record is not None,
                          "uncertain": share < self.settings.probe.min_agreement})
        write_jsonl(ctx.dir / "probe.jsonl", votes)
        uncertain = sum(v["uncertain"] for v in votes)
        return {**out, "path": str(ctx.dir / "probe.jsonl"), "metrics": {
            "tt_inputs": len(votes), "tt_uncertain": uncertain,
            "tt_uncertain_share": round(uncertain / len(votes), 4) if votes else None,
            "tt_probe_failed": out["failed"]}}


def uncertain_inputs(ctx: RoundContext) -> list[dict[str, Any]]:
    return [v for v in read_jsonl(ctx.dir / "probe.jsonl") if v["uncertain"]]


class SynthesizeStage(RecipeStage):
    """Similar problems for each uncertain input, written and solved by the generator (policy or teacher)."""

    name = "synthesize"
    uses_engine = True

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        from synthloop.synth.generate import generate
        from synthloop.synth.similar_problems import SimilarProblems

        cfg = self.settings.synthesis
        uncertain = uncertain_inputs(ctx)
        if not uncertain:
            return {"skipped": "no uncertain input", "metrics": {"tt_written": 0, "tt_problems": 0}}
        program = SimilarProblems(per_problem=cfg.per_input, answer_key=self.settings.probe.answer_key,
                                  max_copy=cfg.max_copy, min_words=cfg.min_words, keep_columns=["task_id"])
        items = list(program.items({"problem": v["prompt"], "task_id": v["task_id"]} for v in uncertain))
        summary = generate(program, engine=generator(ctx, self.settings), run=ctx.dir / "similar", inputs=items,
                           sampling=cfg.sampling, seed=ctx.seed("synthesize"), concurrency=ctx.config.concurrency,
                           progress=ctx.progress)
        if summary.status != "completed":
            raise StageIncomplete(f"{ctx.dir / 'similar'}: generation {summary.status}; rerun the loop to resume it")
        reasons: dict[str, int] = {}
        for row in summary.run.iter_filtered():
            reason = str(row.get("reason", "?")).split(" (")[0]
            reasons[reason] = reasons.get(reason, 0) + 1
        return {"run": str(ctx.dir / "similar"), "dropped": reasons, "output_tokens": summary.output_tokens,
                "generation_seconds": round(summary.seconds, 2),
                "metrics": {"tt_written": len(items), "tt_problems": summary.kept, "tt_write_failed": summary.failed}}


class SolveStage(RecipeStage):
    """`verify.samples` fresh solutions per written problem, by the generator, in the loop's prompt format."""

    name = "solve"
    uses_engine = True

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        problems = _records(ctx.dir / "similar")
        if not problems:
            return {"skipped": "no written problem", "metrics": {"tt_solved": 0}}
        v = self.settings.verify
        rows = [{"task_id": f"similar-{p['id']}", "prompt": p["new_problem"], "writer_answer": p["answer_key"],
                 "source_task": p["task_id"]} for p in problems]
        sampling = v.sampling.model_copy(update={"n": v.samples})
        out = sample_chat(ctx, rows, ctx.dir / "solutions", sampling, ctx.seed("solve"),
                          engine=generator(ctx, self.settings))
        return {**out, "metrics": {"tt_solved": out["kept"]}}


def kept_problems(judged: list[dict[str, Any]], min_agreement: float) -> list[dict[str, Any]]:
    """Written problems whose accepted share of solutions reaches `min_agreement` (and at least one is accepted)."""
    kept = []
    for record in judged:
        accepted = sum(s["accepted"] for s in record["samples"])
        if accepted and accepted / len(record["samples"]) >= min_agreement:
            kept.append(record)
    return kept


def labelled(records: list[dict[str, Any]], key, label: str) -> list[dict[str, Any]]:
    """Solution records with `reference` = the writer's answer or the solutions' majority answer; those without a
    label (no answer read) are left out."""
    out = []
    for record in records:
        vote = majority(key(s["text"]) for s in record["samples"])
        reference = record["writer_answer"] if label == "writer" else vote.answer
        if reference is not None:
            out.append({**record, "reference": reference, "solutions_majority": vote.answer,
                        "solutions_share": vote.share})
    return out


class VerifyStage(RecipeStage):
    """Self-consistency: the judges score each written problem's solutions against its label -> data/sft.jsonl."""

    name = "verify"

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        from synthloop.loops.judging import iter_judged, judge_records
        from synthloop.loops.pairs import sft_examples

        v = self.settings.verify
        records = labelled(_records(ctx.dir / "solutions"), answer_key(self.settings.probe.answer_key), v.label)
        with ctx.bar("verify", len(records)) as advance:
            for _ in judge_records(records, ctx.panel, ctx.dir / "verified", on_progress=advance):
                pass
        judged = sorted(iter_judged(ctx.dir / "verified"), key=lambda r: r["id"]) if records else []
        kept = kept_problems(judged, v.min_agreement)
        rows = list(sft_examples(kept, max_per_task=v.max_per_problem, include_truncated=v.include_truncated))
        n = write_jsonl(ctx.dir / "data" / "sft.jsonl", rows)
        trained = {r["task_id"] for r in rows}
        sources = {r["source_task"] for r in kept if r["id"] in trained}
        return {"path": str(ctx.dir / "data" / "sft.jsonl"), "metrics": {
            "tt_labelled": len(records), "tt_verified": len(trained), "tt_inputs_with_data": len(sources),
            "tt_sft_rows": n}}


class AnswerStage(RecipeStage):
    """Greedy answers to the uncertain inputs from the adapted model (the eval settings of round 0)."""

    name = "answer"
    uses_engine = True

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        from synthloop.loops.judging import judge_records

        if ctx.checkpoint("adapter") == ctx.checkpoint("policy"):
            return {"skipped": "no adapter was trained (no verified data): the base answers stand", "metrics": {}}
        ids = {v["task_id"] for v in uncertain_inputs(ctx)}
        rows = [row for row in round_inputs(ctx, self.settings.batch_size) if row["task_id"] in ids]
        out = sample_chat(ctx, rows, ctx.dir / "answers", ctx.config.eval, ctx.seed("answer"),
                          engine=ctx.engine("adapter"))
        with ctx.bar("judge answers", len(rows)) as advance:
            for _ in judge_records(RunDir(ctx.dir / "answers").iter_records(), ctx.panel,
                                   ctx.dir / "answers-judged", on_progress=advance):
                pass
        return {**out, "metrics": {"tt_answer_failed": out["failed"]}}


class ReportStage(RecipeStage):
    """Adapted vs unadapted answers on the same inputs; then the adapter is discarded."""

    name = "report"
    frees_engine = True  # the engine serving the adapter is closed before the adapter is deleted

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        from synthloop.loops.judging import iter_judged

        batch = round_inputs(ctx, self.settings.batch_size)
        probe = {v["task_id"]: v for v in read_jsonl(ctx.dir / "probe.jsonl")}
        base = {r["task_id"]: r["samples"][0] for r in iter_judged(ctx.run_dir / "round-000" / "eval-judged")}
        adapted = {r["task_id"]: r["samples"][0] for r in iter_judged(ctx.dir / "answers-judged")}
        voted = self._majority_correct(ctx, batch, probe)
        rows = []
        for task in batch:
            tid, vote = task["task_id"], probe[task["task_id"]]
            b = base.get(tid, {"text": None, "accepted": False})
            final = adapted.get(tid) if vote["uncertain"] else None
            rows.append({"task_id": tid, "prompt": task["prompt"], "reference": task.get("reference"),
                         "uncertain": vote["uncertain"], "share": vote["share"], "majority_answer": vote["answer"],
                         "majority_correct": voted.get(tid), "base_answer": b["text"], "base_correct": b["accepted"],
                         "final_answer": (final or b)["text"], "final_correct": (final or b)["accepted"],
                         "final_from": "adapter" if final else "base"})
        write_jsonl(ctx.dir / "answers.jsonl", rows)
        unsure = [r for r in rows if r["uncertain"]]
        sure = [r for r in rows if not r["uncertain"]]
        metrics = {
            "base_accuracy": _rate([r["base_correct"] for r in rows]),
            "eval_accuracy": _rate([r["final_correct"] for r in rows]),
            "base_acc_uncertain": _rate([r["base_correct"] for r in unsure]),
            "tt_acc_uncertain": _rate([r["final_correct"] for r in unsure]),
            "majority_acc_uncertain": _rate([bool(r["majority_correct"]) for r in unsure]),
            "base_acc_confident": _rate([r["base_correct"] for r in sure]),
            "tt_fixed": sum(r["final_correct"] and not r["base_correct"] for r in unsure),
            "tt_broken": sum(r["base_correct"] and not r["final_correct"] for r in unsure),
        }
        metrics["eval_tasks"] = len(rows)
        atomic_write(ctx.dir / "report.json", _dumps({"round": ctx.round, **metrics}))
        discarded = self._discard(ctx)
        return {"path": str(ctx.dir / "answers.jsonl"), "adapter_discarded": discarded, "metrics": metrics}

    def _majority_correct(self, ctx: RoundContext, batch: list[dict[str, Any]],
                          probe: dict[str, dict[str, Any]]) -> dict[str, bool]:
        """Whether each uncertain input's majority answer (self-consistency, the cheap alternative) is right: one
        probe sample that gives it, judged against the reference."""
        key = answer_key(self.settings.probe.answer_key)
        sampled = {r["task_id"]: r for r in _records(ctx.dir / "probe")}
        items, ids = [], []
        for task in batch:
            vote = probe[task["task_id"]]
            record = sampled.get(task["task_id"])
            if not vote["uncertain"] or record is None or vote["answer"] is None:
                continue
            text = next(s["text"] for s in record["samples"] if key(s["text"]) == vote["answer"])
            items.append(JudgeItem(prompt=task["prompt"], response=text, reference=task.get("reference")))
            ids.append(task["task_id"])
        verdicts = ctx.panel.score(items) if items else []
        return {tid: v.accepted for tid, v in zip(ids, verdicts, strict=True)}

    def _discard(self, ctx: RoundContext) -> bool:
        model = ctx.dir / "train-sft" / "model"
        ctx.set_checkpoint(ctx.checkpoint("policy"), "adapter")  # the next round adapts the base policy afresh
        if self.settings.keep_adapter or not model.is_dir():
            return False
        shutil.rmtree(model)
        return True


def _dumps(data: Any) -> str:
    import json

    return json.dumps(data, indent=2, default=str)
