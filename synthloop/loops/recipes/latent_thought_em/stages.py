"""The stages latent-thought EM adds: the E-step (thoughts), the draw into training data, the M-step and the
control arm."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

from synthloop.loops.context import RoundContext
from synthloop.loops.recipes.latent_thought_em.config import Draw, LatentThoughtEMConfig
from synthloop.loops.stages import Stage, StageIncomplete, TrainStage
from synthloop.runs.jsonl import write_jsonl


# -- E-step -----------------------------------------------------------------------------------------
class ThoughtsStage(Stage):
    """N thoughts per document from the current policy, scored: the `latent_thoughts` program through the runner."""

    name = "thoughts"
    uses_engine = True

    def __init__(self, options: LatentThoughtEMConfig):
        self.options = options

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        from synthloop.synth.generate import generate
        from synthloop.synth.latent_thoughts import LatentThoughts

        o, cfg = self.options, ctx.config.sampling
        program = LatentThoughts(
            inputs={"path": ctx.outputs("tasks")["path"], "columns": {"document": "prompt"}},
            num_thoughts=o.num_thoughts, max_copy=o.max_copy, min_thought_words=o.min_thought_words,
            select="importance" if o.draw == "best" else "likelihood",
            **({"template": o.template} if o.template else {}))
        out = ctx.dir / "thoughts"
        summary = generate(program, engine=ctx.engine(), run=out, sampling=cfg, seed=ctx.seed("thoughts"),
            concurrency=ctx.config.concurrency, json_max_chars=ctx.config.engine.json_string_max_chars,
            progress=ctx.progress)
        if summary.status != "completed":
            raise StageIncomplete(f"{out}: the E-step {summary.status}; rerun the loop to resume it")
        seconds = summary.seconds
        return {"run": str(out), "kept": summary.kept, "filtered": summary.filtered, "failed": summary.failed,
                "output_tokens": summary.output_tokens, "generation_seconds": round(seconds, 2),
                "metrics": {"estep_tokens_per_s": round(summary.output_tokens / seconds, 1) if seconds else None,
                            "estep_failed": summary.failed}}


def draw_thoughts(candidates: list[dict[str, Any]], how: Draw, k: int, rng: random.Random) -> list[int]:
    """Indices of the thoughts the M-step trains on; [] when none may be drawn (see the config's `draw`)."""
    eligible = [i for i, c in enumerate(candidates) if c["eligible"]]
    if not eligible:
        return []
    if how == "sample":
        weights = [candidates[i]["weight"] for i in eligible]
        return rng.choices(eligible, weights=weights if sum(weights) > 0 else None, k=k)
    key = "log_weight" if how == "best" else "logp_document_given_thought"
    return [max(eligible, key=lambda i: candidates[i][key])]


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def estep_stats(records: list[dict[str, Any]], drawn: dict[int, list[int]]) -> dict[str, Any]:
    """What the E-step found, per document token of the round's documents under the policy that sampled it:
    logp (log p(X), no thought), marginal (log of the mean importance weight over the N thoughts: an importance
    estimate of log p(X) under the thought model, with q approximated as thought_scoring states), gain (log p(X|Z)
    - log p(X) of the drawn thoughts), and the effective sample size of the weights (1 / sum w^2)."""
    tokens = sum(r["document_tokens"] for r in records)
    if not records or not tokens:
        return {}
    logp = sum(r["logp_document"] for r in records)
    scored = [r for r in records if r["candidates"]]  # a document all of whose samples were dropped has none
    scored_tokens = sum(r["document_tokens"] for r in scored)
    marginal = sum(_logsumexp([c["log_weight"] for c in r["candidates"]]) - math.log(len(r["candidates"]))
                   for r in scored)
    gains, gain_tokens, thought_tokens, ess = 0.0, 0, [], []
    for r in records:
        picks = drawn.get(r["id"], [])
        weights = [c["weight"] for c in r["candidates"] if c["eligible"]]
        if sum(weights) > 0:
            ess.append(1.0 / sum(w * w for w in weights))
        for i in picks:
            gains += r["candidates"][i]["logp_document_given_thought"] - r["logp_document"]
            gain_tokens += r["document_tokens"]
            thought_tokens.append(r["candidates"][i]["thought_tokens"])
    return {"estep_logp_per_token": round(logp / tokens, 4),
            "estep_marginal_per_token": round(marginal / scored_tokens, 4) if scored_tokens else None,
            "estep_gain_per_token": round(gains / gain_tokens, 4) if gain_tokens else None,
            "estep_ess": round(sum(ess) / len(ess), 3) if ess else None,
            "estep_thought_tokens": round(sum(thought_tokens) / len(thought_tokens), 1) if thought_tokens else None,
            "estep_dropped_samples": sum(len(r.get("dropped", [])) for r in records)}


class AugmentStage(Stage):
    """The E-step's records -> data/sft.jsonl (thought-augmented documents, drawn by weight) and data/raw.jsonl."""

    name = "build"

    def __init__(self, options: LatentThoughtEMConfig):
        self.options = options

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        from synthloop.runs.jsonl import read_jsonl
        from synthloop.runs.run_dir import RunDir
        from synthloop.synth.thought_scoring import DEFAULT_TEMPLATE, augmented_text

        o = self.options
        template = o.template or DEFAULT_TEMPLATE
        tasks = list(read_jsonl(Path(ctx.outputs("tasks")["path"])))
        run = RunDir(ctx.dir / "thoughts")
        records = {r["id"]: r for r in run.iter_records()}
        records.update({row["id"]: {**row["record"], "id": row["id"]} for row in run.iter_filtered()
                        if row.get("record")})  # documents whose thoughts were all ineligible
        rng = random.Random(ctx.seed("draw"))
        rows, raw, drawn, plain = [], [], {}, 0
        for i, task in enumerate(tasks):
            document = str(task["prompt"])
            raw.append({"text": document, "task_id": task["task_id"]})
            record = records.get(i)
            picks = draw_thoughts(record["candidates"], o.draw, o.thoughts_per_document, rng) if record else []
            drawn[i] = picks
            for k in picks:
                cand = record["candidates"][k]
                rows.append({"text": augmented_text(document, cand["thought"], template), "task_id": task["task_id"],
                             "thought_index": k, "weight": cand["weight"]})
            if not picks and o.keep_without_thought:
                plain += 1
                rows.append({"text": document, "task_id": task["task_id"], "thought_index": None, "weight": None})
        data = ctx.dir / "data"
        n = write_jsonl(data / "sft.jsonl", rows)
        write_jsonl(data / "raw.jsonl", raw)
        stats = estep_stats([records[i] for i in sorted(records)], drawn)
        metrics = {"sft_data": n, "estep_documents": len(tasks),
                   "estep_with_thought": sum(1 for p in drawn.values() if p), "estep_plain": plain, **stats}
        return {"sft": str(data / "sft.jsonl"), "raw": str(data / "raw.jsonl"), "metrics": metrics}


# -- M-step and the control arm -------------------------------------------------------------------------
class MStepStage(TrainStage):
    """SFT on the thought-augmented documents; from the starting model every round with `m_step_from: base`."""

    def __init__(self, options: LatentThoughtEMConfig):
        super().__init__("sft")
        self.options = options

    def start_checkpoint(self, ctx: RoundContext) -> str:
        return ctx.config.engine.model if self.options.m_step_from == "base" else ctx.checkpoint(self.role)


class ControlTrainStage(MStepStage):
    """The control arm: the same documents without thoughts, as many optimizer steps as this round's M-step."""

    def __init__(self, options: LatentThoughtEMConfig):
        super().__init__(options)
        self.role, self.name = "control", "train-control"

    def data_path(self, ctx: RoundContext) -> Path:
        return ctx.dir / "data" / "raw.jsonl"

    def settings(self, ctx: RoundContext):
        steps = ctx.outputs("train-sft").get("steps")
        return super().settings(ctx).model_copy(update={"max_steps": steps}) if steps else super().settings(ctx)

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        if not ctx.outputs("train-sft").get("steps"):
            ctx.log("train-control: the M-step did not train this round; neither does the control arm")
            return {"skipped": "the M-step did not train", "metrics": {}}
        out = super().run(ctx)
        out["metrics"] = {f"control_{k}": v for k, v in out["metrics"].items()}
        return out
