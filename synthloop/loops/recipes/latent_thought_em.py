"""Latent-thought EM (BoLT, "Reasoning to Learn from Latent Thoughts"): the model infers the thoughts behind its
training documents, and learns from the documents with those thoughts written out; each round the new checkpoint
infers the next round's thoughts.

Round r >= 1, on the same documents every round (`tasks.fresh_each_round: false`, the paper's fixed-data setting):

  tasks      the documents (rows of `tasks.train`; `prompt` holds the document)
  thoughts   E-step: the `latent_thoughts` program with the current policy: N thoughts per document, each scored
             by the engine's log-likelihoods (log p(X|Z), log p(Z), log q(Z|X), importance weight)
  build      draws thoughts by their normalized importance weights -> data/sft.jsonl, thought-augmented documents as
             plain text (`{"text": ...}`); data/raw.jsonl, the same documents without thoughts
  train-sft  M-step: SFT (plain-text language modelling, loss on thought and document) from the latest checkpoint,
             or from the starting model each round (`m_step_from: base`, as the paper retrains)
  train-control / evaluate-control   the control arm (`control_arm: true`): the raw documents, the same number of
             optimizer steps, from its own previous checkpoint (or the starting model), evaluated the same way
  evaluate   held-out perplexity of documents (`synthloop.loops.perplexity`), alone and, with `eval_context`, after
             a known latent in the thought slot (e.g. the GSM8K question behind a worked solution)

Not in this recipe (stated, not hidden): the paper also trains the posterior q(Z|X) (documents followed by their
thoughts); here only the joint p(Z, X) is trained, and the proposal improves only through the shared weights.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from synthloop.configs import Config
from synthloop.loops.recipes.base import Recipe
from synthloop.loops.stages import Stage, StageIncomplete, TasksStage, TrainStage, write_jsonl

if TYPE_CHECKING:
    from synthloop.loops.controller import RoundContext

Draw = Literal["sample", "best", "likelihood"]


class LatentThoughtEMConfig(Config):
    kind: Literal["latent_thought_em"] = "latent_thought_em"
    num_thoughts: int = Field(4, ge=1, le=64, description="E-step: thoughts sampled per document (BoLT's Monte Carlo "
                              "samples). sampling.temperature / top_p / max_tokens drive their sampling.")
    draw: Draw = Field(
        "sample", description="Which thoughts the M-step trains on: sample = resample by normalized importance "
        "weight p(Z) p(X|Z) / q(Z|X) (BoLT's E-step); best = the largest weight; likelihood = argmax log p(X|Z).")
    thoughts_per_document: int = Field(1, ge=1, description="Draws per document (with replacement; `sample` only).")
    template: str | None = Field(None, description="The thought-augmented document, one {thought} then {document} at "
                                 "the end (default: the latent_thoughts program's <thought>...</thought> format).")
    max_copy: float = Field(0.5, gt=0, le=1, description="A thought repeating this share of the document's words "
                            "(ROUGE-L recall) is never drawn: copying the document is the easy way to explain it.")
    min_thought_words: int = Field(5, ge=1, description="A shorter thought is never drawn.")
    keep_without_thought: bool = Field(
        True, description="A document none of whose thoughts may be drawn is trained on as plain text (both arms "
        "then see the same documents); false leaves it out of the round.")
    m_step_from: Literal["latest", "base"] = Field(
        "latest", description="The M-step trains from the latest checkpoint (cumulative), or from the starting model "
        "every round (base: the paper's setting); the E-step always samples the latest.")
    control_arm: bool = Field(
        True, description="Also train a control arm on the raw documents (no thoughts) for the same number of "
        "optimizer steps, and evaluate it the same way; its metrics are prefixed control_.")
    eval_context: str | None = Field(
        "reference", description="A column of the held-out rows holding a known latent (e.g. the GSM8K question, "
        "as tasks.eval's reference_column): perplexity is also reported with it in the thought slot. null: off.")

    @field_validator("template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from synthloop.synth.thought_scoring import check_template  # imports DSPy: only when a template is given

        return check_template(value)

    @model_validator(mode="after")
    def _check(self) -> LatentThoughtEMConfig:
        if self.thoughts_per_document > 1 and self.draw != "sample":
            raise ValueError(f"thoughts_per_document > 1 needs draw: sample ({self.draw} picks one thought)")
        return self

    def check_loop(self, loop) -> None:
        """Called by LoopConfig's validation with the whole loop config."""
        if any(m != "sft" for m in loop.train.plan):
            raise ValueError(f"recipe latent_thought_em trains with sft only (plain-text language modelling on "
                             f"thought-augmented documents); got train.plan {loop.train.plan}")


# -- E-step -----------------------------------------------------------------------------------------
class ThoughtsStage(Stage):
    """N thoughts per document from the current policy, scored: the `latent_thoughts` program through the runner."""

    name = "thoughts"
    uses_engine = True

    def __init__(self, options: LatentThoughtEMConfig):
        self.options = options

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        from synthloop.engines.types import Sampling
        from synthloop.runs.generate import generate
        from synthloop.synth.latent_thoughts import LatentThoughts

        o, cfg = self.options, ctx.config.sampling
        program = LatentThoughts(
            inputs={"path": ctx.outputs("tasks")["path"], "columns": {"document": "prompt"}},
            num_thoughts=o.num_thoughts, max_copy=o.max_copy, min_thought_words=o.min_thought_words,
            select="importance" if o.draw == "best" else "likelihood",
            **({"template": o.template} if o.template else {}))
        out = ctx.dir / "thoughts"
        summary = generate(program, engine=ctx.engine(), run=out, sampling=Sampling(
            temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens), seed=ctx.seed("thoughts"),
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
        from synthloop.runs.run_dir import RunDir, read_jsonl
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


class LatentThoughtEM(Recipe):
    name = "latent_thought_em"
    config_class = LatentThoughtEMConfig

    def initial_checkpoints(self) -> dict[str, str]:
        start = self.loop.engine.model
        return {"policy": start, "control": start} if self.config.control_arm else {"policy": start}

    def _evaluate(self, **kwargs: Any) -> Stage:
        from synthloop.loops.perplexity import PerplexityStage

        return PerplexityStage(context_column=self.config.eval_context, template=self.config.template, **kwargs)

    def baseline(self) -> list[Stage]:
        prefixes = ("", "control_") if self.config.control_arm else ("",)
        return [self._evaluate(prefixes=prefixes)]  # both arms start from the same model

    def stages(self, round_: int) -> list[Stage]:
        o = self.config
        stages: list[Stage] = [TasksStage(), ThoughtsStage(o), AugmentStage(o), MStepStage(o)]
        if o.control_arm:  # evaluated before the policy, so the policy's engine stays up for the next E-step
            stages += [ControlTrainStage(o),
                       self._evaluate(name="evaluate-control", role="control", prefixes=("control_",))]
        return [*stages, self._evaluate()]

    def describe(self, round_: int) -> str:
        return f"em N={self.config.num_thoughts}" if round_ else "baseline"
