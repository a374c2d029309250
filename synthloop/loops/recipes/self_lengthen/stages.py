"""The stages Self-Lengthen adds to the controller's (see `synthloop.loops.recipes.self_lengthen.recipe` for the round).

Each one resumes like the built-in stages: generation goes through the runner (records and request cache
in its run directory), files are written atomically, and everything else is a deterministic function of
files already on disk, so a stage killed half-way redoes only what it had not finished.
"""

from __future__ import annotations

import math
import statistics
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

from synthloop.judges.length import count_words, length_score, required_length
from synthloop.loops.context import RoundContext
from synthloop.loops.recipes.self_lengthen.config import SelfLengthenConfig
from synthloop.loops.recipes.self_lengthen.text import clean_expansion, round_words, split_parts, tail_words
from synthloop.loops.stages import (
    EvaluateStage,
    Stage,
    StageIncomplete,
    TasksStage,
    TrainStage,
    chat_program,
)
from synthloop.runs.jsonl import read_jsonl, write_jsonl
from synthloop.runs.run_dir import RunDir
from synthloop.train.config import SFTSettings

#: a held-out answer whose share of repeated word 3-grams exceeds this loops (the recipe's repetition filter
#: default): S_l alone rewards such an answer for its length, so `eval_sl_loops_zero` scores it 0 instead
LOOPING_SHARE = 0.25


def _pick(options: list[str], key: str) -> str:
    """The same option for the same key on every run (not Python's salted hash)."""
    return options[zlib.crc32(key.encode()) % len(options)]


def _mean(values: list[float], digits: int = 2) -> float | None:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return round(statistics.fmean(values), digits) if values else None


class LengthTasksStage(TasksStage):
    """The round's instructions, each with a length demand of the round's target appended: `prompt` is what the
    Generator is asked; `instruction` (the task alone) and `target` (words) are kept for the later stages."""

    def __init__(self, config: SelfLengthenConfig):
        self.config = config

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        out = super().run(ctx)
        target = self.config.target(ctx.round)
        rows = []
        for row in read_jsonl(Path(out["path"])):
            demand = _pick(self.config.demands, row["task_id"]).format(words=target)
            rows.append({**row, "instruction": row["prompt"], "target": target,
                         "prompt": f"{row['prompt'].rstrip()}\n\n{demand}"})
        write_jsonl(Path(out["path"]), rows)
        out["metrics"]["target_words"] = target
        return out


class ExtendStage(Stage):
    """The Extender lengthens every draft: split into parts at paragraph boundaries, each part expanded in turn
    (asked for its share of max(target, 2 x the draft's words), seeing the end of the text expanded so far),
    the expansions joined. Writes extend/extended.jsonl: every draft, with `failed` naming why it was not
    lengthened (truncated or too short draft, an expansion cut at max_tokens or empty, too little growth)."""

    name = "extend"
    uses_engine = True

    def __init__(self, config: SelfLengthenConfig):
        self.config = config

    def drafts(self, ctx: RoundContext) -> list[dict[str, Any]]:
        cfg = self.config
        items = []
        for record in sorted(RunDir(ctx.dir / "samples").iter_records(), key=lambda r: r["id"]):
            for j, sample in enumerate(record["samples"]):
                draft = sample["text"].strip()
                words = count_words(draft)
                failed = None
                if sample.get("finish_reason") == "length" and not cfg.include_truncated:
                    failed = "draft truncated"
                elif words < cfg.min_draft_words:
                    failed = "draft too short"
                items.append({"id": f"{record['task_id']}-{j}", "task_id": record["task_id"],
                              "instruction": record["instruction"], "prompt": record["prompt"],
                              "target": record["target"], "draft": draft, "draft_words": words,
                              "parts": split_parts(draft, cfg.parts) if failed is None else [],
                              "expansions": [], "requests": [], "failed": failed})
        return items

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        from synthloop.synth.chat import ChatSamples
        from synthloop.synth.generate import generate

        cfg, sampling = self.config, ctx.config.sampling
        items = self.drafts(ctx)
        program = ChatSamples(template=cfg.extend_template, n=1)
        tokens = seconds = 0.0
        for k in range(max((len(i["parts"]) for i in items), default=0)):
            todo = [i for i, item in enumerate(items) if item["failed"] is None and k < len(item["parts"])]
            rows = [self._request(items[i], i, k) for i in todo]
            out = ctx.dir / "extend" / f"part-{k}"
            summary = generate(program, engine=ctx.engine("extender"), run=out, inputs=rows, sampling=sampling,
                               seed=ctx.seed(f"extend-{k}"), concurrency=ctx.config.concurrency, progress=ctx.progress)
            if summary.status != "completed":
                raise StageIncomplete(f"{out}: generation {summary.status}; rerun the loop to resume it")
            tokens, seconds = tokens + summary.output_tokens, seconds + summary.seconds
            done = {r["extension"]: r for r in RunDir(out).iter_records()}
            for i in todo:
                self._take(items[i], done.get(i))
        for item in items:
            if item["failed"] is None and item["expansions"]:
                item["text"] = "\n\n".join(item["expansions"])
                item["words"] = count_words(item["text"])
                item["growth"] = round(item["words"] / max(1, item["draft_words"]), 3)
                if item["growth"] < cfg.min_growth:
                    item["failed"] = f"too little growth ({item['growth']:.2f}x < {cfg.min_growth:g}x)"
        path = ctx.dir / "extend" / "extended.jsonl"
        write_jsonl(path, items)
        ok = [i for i in items if i["failed"] is None]
        reasons = Counter(i["failed"].split(" (")[0] for i in items if i["failed"] is not None)
        metrics = {"drafts": len(items), "draft_words": _mean([i["draft_words"] for i in items], 1),
                   "extended": len(ok), "extended_words": _mean([i["words"] for i in ok], 1),
                   "growth": _mean([i["growth"] for i in ok]),
                   "extend_tokens_per_s": round(tokens / seconds, 1) if seconds else None}
        return {"path": str(path), "failed": dict(reasons), "metrics": metrics}

    def _request(self, item: dict[str, Any], index: int, k: int) -> dict[str, Any]:
        cfg = self.config
        whole = max(item["target"], 2 * item["draft_words"])
        share = count_words(item["parts"][k]) / max(1, item["draft_words"])
        context = ""
        if k > 0 and cfg.context_words > 0 and item["expansions"]:
            context = cfg.context_template.format(tail=tail_words(item["expansions"][-1], cfg.context_words))
        return {"extension": index, "instruction": item["instruction"], "part": item["parts"][k],
                "words": round_words(int(whole * share)), "context": context}

    def _take(self, item: dict[str, Any], record: dict[str, Any] | None) -> None:
        if item["failed"] is not None:
            return
        if record is None:
            item["failed"] = "expansion failed"
            return
        sample = record["samples"][0]
        text = clean_expansion(sample["text"])
        item["requests"].append(record["messages"])
        item["expansions"].append(text)
        if sample.get("finish_reason") == "length" and not self.config.include_truncated:
            item["failed"] = "expansion truncated"
        elif not text:
            item["failed"] = "empty expansion"


class FilterExtensionsStage(Stage):
    """The lengthened texts through `filters` (repetition, drift): kept ones in filtered/records/, dropped ones
    in filtered/filtered.jsonl with their reasons, counts in filtered/report.json."""

    name = "filter"

    def __init__(self, config: SelfLengthenConfig):
        self.config = config

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        from synthloop.judges.filters.pipeline import reason_kind, run_filters

        rows = [r for r in read_jsonl(Path(ctx.outputs("extend")["path"])) if r["failed"] is None]
        out = ctx.dir / "filtered"
        if not self.config.filters or not rows:
            kept_path = out / "kept.jsonl"
            write_jsonl(kept_path, rows)
            return {"path": str(kept_path), "metrics": {"extensions_kept": len(rows)}}
        report = run_filters(rows, self.config.filters, out, input_name="extensions", log=ctx.log)
        dropped = Counter(reason_kind(r["reason"]) for r in RunDir(out).iter_filtered())
        return {"path": str(out / "records" / "part-00000.jsonl"), "dropped": dict(dropped),
                "metrics": {"extensions_kept": report.counts["out"],
                            **{f"dropped_{k.replace(' ', '_')}": v for k, v in dropped.items()}}}


class BuildLengthDataStage(Stage):
    """Training data from the kept extensions. Generator: the instruction with a demand of the extension's own
    length (rounded: Self-Lengthen's length-control step, so the number asked is the number written) -> the
    extension. Extender: each expansion request as it was sent -> its (cleaned) expansion."""

    name = "build"

    def __init__(self, config: SelfLengthenConfig):
        self.config = config

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        program = chat_program(ctx, 1)
        generator, extender = [], []
        for row in read_jsonl(Path(ctx.outputs("filter")["path"])):
            words = round_words(row["words"])
            demand = _pick(self.config.demands, row["id"]).format(words=words)
            messages = list(program.prompt({**row, "prompt": f"{row['instruction'].rstrip()}\n\n{demand}"}))
            generator.append({"prompt": messages, "completion": [{"role": "assistant", "content": row["text"]}],
                              "task_id": row["task_id"], "words": row["words"]})
            for request, expansion in zip(row["requests"], row["expansions"], strict=True):
                extender.append({"prompt": request, "completion": [{"role": "assistant", "content": expansion}],
                                 "task_id": row["task_id"]})
        data = ctx.dir / "data"
        write_jsonl(data / "sft-generator.jsonl", generator)
        write_jsonl(data / "sft-extender.jsonl", extender)
        return {"generator": str(data / "sft-generator.jsonl"), "extender": str(data / "sft-extender.jsonl"),
                "metrics": {"generator_rows": len(generator), "extender_rows": len(extender),
                            "data_words": _mean([r["words"] for r in generator], 1)}}


class RoleSFTStage(TrainStage):
    """SFT of one role on data/sft-<label>.jsonl, from that role's checkpoint, into train-<label>/."""

    def __init__(self, label: str, role: str, settings: SFTSettings | None = None):
        super().__init__("sft", role)
        self.label, self.override = label, settings
        self.name = f"train-{label}"

    def data_path(self, ctx: RoundContext) -> Path:
        return ctx.dir / "data" / f"sft-{self.label}.jsonl"

    def settings(self, ctx: RoundContext) -> SFTSettings:
        return self.override or ctx.config.train.sft

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        out = super().run(ctx)
        out["metrics"] = {f"{self.label}_{k}": v for k, v in out["metrics"].items()}
        return out


class LengthEvaluateStage(EvaluateStage):
    """The held-out evaluation (greedy answers, the loop's judges), plus per answer: words (LongWriter's count),
    S_l against the required length (the task's `reference`), repeated 3-gram share, embedding relevance to the
    prompt, and the quality judge's score. Per answer in eval-length.jsonl; means (and S_l per set) as metrics,
    with the share of looping answers and S_l where those score 0 (a loop cut at max_tokens is long, not good)."""

    def __init__(self, config: SelfLengthenConfig):
        self.config = config

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        from synthloop.judges.base import JudgeItem
        from synthloop.judges.filters.repetition import repetition_share
        from synthloop.judges.similarity import EmbeddingSimilarityJudge

        out = super().run(ctx)
        records = sorted(RunDir(ctx.dir / "eval").iter_records(), key=lambda r: r["id"])
        items = [JudgeItem(prompt=r["messages"][-1]["content"], response=r["samples"][0]["text"]) for r in records]
        relevance = EmbeddingSimilarityJudge().score(items)
        quality = self.quality(ctx, items)
        rows = []
        for record, item, rel, q in zip(records, items, relevance, quality, strict=True):
            required, words = required_length(record["reference"]), count_words(item.response)
            rows.append({"id": record["id"], "set": record.get("set"), "required": required, "words": words,
                         "sl": round(length_score(required, words), 2),
                         "repetition": round(repetition_share(item.response, 3), 4), "relevance": round(rel.score, 4),
                         "quality": q, "finish_reason": record["samples"][0].get("finish_reason")})
        write_jsonl(ctx.dir / "eval-length.jsonl", rows)
        metrics = {"eval_sl": _mean([r["sl"] for r in rows]), "eval_words": _mean([r["words"] for r in rows], 1),
                   "eval_required": _mean([r["required"] for r in rows], 1),
                   "eval_repetition": _mean([r["repetition"] for r in rows], 4),
                   "eval_looping": _mean([float(r["repetition"] > LOOPING_SHARE) for r in rows], 4),
                   "eval_sl_loops_zero": _mean([0.0 if r["repetition"] > LOOPING_SHARE else r["sl"] for r in rows]),
                   "eval_relevance": _mean([r["relevance"] for r in rows], 4),
                   "eval_quality": _mean([r["quality"] for r in rows]),
                   "eval_quality_failed": sum(r["quality"] is None for r in rows)
                   if self.config.quality.kind == "llm" else None}
        for name in sorted({r["set"] for r in rows if r["set"]}):
            subset = [r for r in rows if r["set"] == name]
            metrics[f"eval_sl_{name}"] = _mean([r["sl"] for r in subset])
            metrics[f"eval_words_{name}"] = _mean([r["words"] for r in subset], 1)
        out["metrics"].update(metrics)
        return out

    def quality(self, ctx: RoundContext, items: list) -> list[float | None]:
        """The quality judge's score of each answer (None where it failed, or with no judge), on a fixed model."""
        cfg = self.config.quality
        if cfg.kind == "none" or not items:
            return [None] * len(items)
        from synthloop.judges.llm_judge import LLMJudge
        from synthloop.runs.cache import CachedEngine, RequestCache

        model = cfg.model or ctx.config.engine.model
        engine = ctx.engine_for("judge", ctx.config.engine.model_copy(update={"model": model}))
        cached = CachedEngine(engine, RequestCache(ctx.dir / "eval-quality.sqlite"))
        try:
            verdicts = LLMJudge(cached, cfg.llm).score(items)
        finally:
            cached.close()
        return [None if math.isnan(v.score) else v.score for v in verdicts]
