"""The tasks stage of a loop whose tasks a synthesis program writes (`tasks.train: {kind: program}`, see
`synthloop.loops.tasks.program`).

Each round: the program runs through the generation runner into `round-NNN/task-writing/` (a run directory,
resumable like every stage: a killed stage rerun keeps the records written so far and their request cache, so
no task is written twice), on the policy's current checkpoint or a teacher's engine, with a seed of its own per
round. Its records become task rows; those that copy a held-out task are dropped (`HeldOutGuard`: the same
prompt, a shared word n-gram, a MinHash near-duplicate), with their reason and the held-out task they match,
into `round-NNN/tasks_dropped.jsonl`. When drops leave fewer than `tasks.per_round` tasks the program writes
more (its next items) until enough survive or it reaches `max_items_factor` items per task wanted. The first
`per_round` survivors (in item order) are `round-NNN/tasks.jsonl`.

`tasks_stage(loop)` is the tasks stage a recipe puts first: this one for a program source, else `TasksStage`.
"""

from __future__ import annotations

import zlib
from collections import Counter
from pathlib import Path
from typing import Any

from synthloop.engines.sample_context import derive_seed
from synthloop.loops.config import LoopConfig
from synthloop.loops.context import RoundContext
from synthloop.loops.stages import Stage, StageIncomplete, TasksStage, eval_tasks
from synthloop.loops.tasks.program import Decontamination, ProgramTasks
from synthloop.runs.jsonl import write_jsonl
from synthloop.runs.run_dir import RunDir
from synthloop.text import normal_form


def tasks_stage(loop: LoopConfig) -> Stage:
    """The stage that makes a round's training tasks: written by a program, or taken from a task source."""
    source = getattr(loop.tasks, "train", None)
    return ProgramTasksStage() if isinstance(source, ProgramTasks) else TasksStage()


class HeldOutGuard:
    """Finds tasks that copy a held-out task: the same prompt (whitespace and case aside), a shared word n-gram
    (`filters.decontaminate`), or a MinHash near-duplicate (`filters.dedup`'s signatures, an LSH index over the
    held-out prompts, confirmed by the estimated Jaccard similarity)."""

    def __init__(self, held_out: list[dict[str, Any]], settings: Decontamination, held_out_file: Path):
        from synthloop.judges.filters.decontaminate import Decontaminate, DecontaminateConfig, EvalSet
        from synthloop.judges.filters.dedup import NearDedup, NearDedupConfig

        self.settings = settings
        self.ids = [row["task_id"] for row in held_out]
        self.exact = {normal_form(row["prompt"]): row["task_id"] for row in held_out}
        self.ngram = None
        if settings.ngram is not None:
            self.ngram = Decontaminate(DecontaminateConfig(
                eval_sets=[EvalSet(path=held_out_file, fields=["prompt"], name="held-out")], field="text",
                n=settings.ngram))
        self.near = self.lsh = None
        if settings.near_duplicate is not None:
            from datasketch import MinHashLSH

            self.near = NearDedup(NearDedupConfig(threshold=settings.near_duplicate))
            self.lsh = MinHashLSH(threshold=settings.near_duplicate, num_perm=self.near.config.num_perm)
            self.signatures = {}
            for row in held_out:
                self.signatures[row["task_id"]] = signature = self.near.signature(row["prompt"])
                self.lsh.insert(row["task_id"], signature)

    def split(self, rows: list[dict[str, Any]], texts: list[str]) -> tuple[list[dict], list[dict]]:
        """(kept rows, dropped rows with `reason`, `detail`, `held_out`): `texts[i]` is what the n-gram and
        near-duplicate checks compare for `rows[i]` (its prompt, or the column the settings name)."""
        verdicts: list[tuple[str, str, str] | None] = []
        for row in rows:
            match = self.exact.get(normal_form(row["prompt"]))
            verdicts.append(("held out", "equals a held-out prompt", match) if match is not None else None)
        if self.ngram is not None:
            found = self.ngram.apply([{"id": i, "text": text} for i, text in enumerate(texts)])
            for dropped in found.dropped:
                i, detail = dropped.record["id"], dropped.detail
                if verdicts[i] is None:
                    verdicts[i] = (f"{self.settings.ngram}-gram", f"shares {detail['ngram'][:80]!r}",
                                   self.ids[detail["eval_row"]])
        if self.near is not None:
            for i, text in enumerate(texts):
                if verdicts[i] is not None:
                    continue
                signature = self.near.signature(text)
                scored = [(signature.jaccard(self.signatures[key]), key) for key in self.lsh.query(signature)]
                best = max(scored, default=None)
                if best is not None and best[0] >= self.settings.near_duplicate:
                    verdicts[i] = ("near duplicate", f"Jaccard ~{best[0]:.2f}", best[1])
        kept, dropped = [], []
        for row, verdict in zip(rows, verdicts, strict=True):
            if verdict is None:
                kept.append(row)
            else:
                reason, detail, held_out = verdict
                dropped.append({**row, "reason": reason, "detail": detail, "held_out": held_out})
        return kept, dropped


class ProgramTasksStage(Stage):
    """The round's training tasks written by the program (see the module docstring)."""

    name = "tasks"
    uses_engine = True

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        from synthloop import synth
        from synthloop.synth.generate import generate

        source: ProgramTasks = ctx.config.tasks.train  # type: ignore[assignment]
        wanted = ctx.config.tasks.per_round
        seed_round = ctx.round if getattr(ctx.config.tasks, "fresh_each_round", True) else 1
        program_config = source.program
        if "seed" in type(program_config).model_fields:  # its items (base tasks, draws) differ by round
            program_seed = derive_seed(ctx.config.seed, seed_round, program_config.seed)
            program_config = program_config.model_copy(update={"seed": program_seed})
        program = synth.build(program_config)
        engine = ctx.engine() if source.engine is None else ctx.engine_for("teacher", source.engine)
        held_out = eval_tasks(ctx)
        guard = HeldOutGuard(held_out, source.decontamination, ctx.run_dir / "eval_tasks.jsonl")
        out = ctx.dir / "task-writing"
        column = source.decontamination.column
        target = wanted
        while True:
            summary = generate(program, engine=engine, run=out, num_records=target, sampling=source.sampling,
                               seed=derive_seed(ctx.config.seed, seed_round, zlib.crc32(b"task-writing")),
                               concurrency=ctx.config.concurrency, max_attempts=source.max_attempts,
                               max_items=source.max_items_factor * wanted, progress=ctx.progress,
                               json_max_chars=(source.engine or ctx.config.engine).json_string_max_chars)
            if summary.status not in ("completed", "incomplete"):
                raise StageIncomplete(f"{out}: task writing {summary.status}; rerun the loop to resume it")
            records = sorted(RunDir(out).iter_records(), key=lambda r: r["id"])
            rows = [{"task_id": f"r{ctx.round}-{r['id']}", **source.task_row(r)} for r in records]
            texts = [row["prompt"] if column is None else str(record.get(column, row["prompt"]))
                     for row, record in zip(rows, records, strict=True)]
            kept, dropped = guard.split(rows, texts)
            if len(kept) >= wanted or summary.status == "incomplete":
                break  # enough, or the program has no more items to try
            target = summary.kept + wanted - len(kept)
        tasks = kept[:wanted]
        if not tasks:
            raise ValueError(f"tasks.train: the program wrote no task that is not a held-out task ({summary.kept} "
                             f"written, {len(dropped)} dropped: see {ctx.dir / 'tasks_dropped.jsonl'})")
        write_jsonl(ctx.dir / "tasks_dropped.jsonl", dropped)
        path = ctx.dir / "tasks.jsonl"
        write_jsonl(path, tasks)
        reasons = Counter(d["reason"] for d in dropped)
        if dropped:
            ctx.log(f"tasks: {len(dropped)} of {len(rows)} written task(s) copy a held-out task: "
                    + ", ".join(f"{n} {reason}" for reason, n in reasons.items()))
        metrics = {"tasks_written": summary.kept, "tasks_program_filtered": summary.filtered,
                   "tasks_failed": summary.failed, "tasks_dropped_held_out": len(dropped), "tasks": len(tasks)}
        return {"path": str(path), "count": len(tasks), "run": str(out), "written": summary.kept,
                "dropped": dict(reasons), "dropped_path": str(ctx.dir / "tasks_dropped.jsonl"),
                "program_seed": getattr(program_config, "seed", None), "engine": "policy" if source.engine is None
                else "teacher", "metrics": metrics}
