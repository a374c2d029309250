"""Latent thoughts (BoLT): document -> the thought that would have produced it -> a thought-augmented document.

Per document, `num_thoughts` thoughts are sampled (distinct seeds, all in flight at once), scored with the
engine's log-likelihoods (`thought_scoring`: log p(X|Z), log p(Z), log q(Z|X), importance weights), and one
is kept: by default the thought under which the model finds the document most likely (argmax log p(X|Z));
`select: importance` keeps the largest importance weight instead. Thoughts that mostly copy the document
(ROUGE-L recall of its words >= `max_copy`) or are too short cannot be chosen: copying the document into the
thought is the easy way to make it likely.

Record: document, thought (the chosen one), text (the thought-augmented document, in `template`'s format:
train on it as plain text), chosen (index), logp_document and document_tokens (the no-thought baseline),
gain_per_token ((log p(X|Z*) - log p(X)) / tokens), and `candidates`: every sampled thought with its scores,
normalized importance weight, copy ratio and eligibility, so that an EM loop can resample or reweight;
`dropped`: the failure kind of each sample that could not be scored (cut off at max_tokens, unparseable,
empty): the document keeps its other samples.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, Literal

import dspy
from pydantic import Field, field_validator
from rouge_score import rouge_scorer

from synthloop.configs import Config
from synthloop.engines.dspy_bridge import current_engine
from synthloop.engines.failures import classify_failure
from synthloop.engines.sample_context import child_seeds
from synthloop.prompts.latent_thoughts import InferLatentThought
from synthloop.runs.inputs import DatasetInput
from synthloop.synth import thought_scoring
from synthloop.synth.base import SynthProgram
from synthloop.synth.hard_negatives import clean


class LatentThoughtsConfig(Config):
    kind: Literal["latent_thoughts"] = "latent_thoughts"
    inputs: DatasetInput = Field(description="Rows with a `document` column (map one with inputs.columns, "
                                             "e.g. {document: text}).")
    num_thoughts: int = Field(4, ge=1, le=64, description="Thoughts sampled per document (BoLT's N, the E-step's "
                                                          "Monte Carlo samples).")
    select: Literal["likelihood", "importance"] = Field(
        "likelihood", description="Which thought is kept: likelihood = argmax log p(document | thought); "
        "importance = argmax of the importance weight p(thought) p(document | thought) / q(thought | document).")
    template: str = Field(
        thought_scoring.DEFAULT_TEMPLATE, description="The thought-augmented document: one {thought}, then "
        "{document} at the end. Scores use exactly this text, so train on this format.")
    max_copy: float = Field(0.5, gt=0, le=1, description="A thought whose ROUGE-L recall of the document's words "
                                                         "is at least this cannot be chosen (it copies the "
                                                         "document).")
    min_thought_words: int = Field(5, ge=1, description="A shorter thought cannot be chosen.")

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        return thought_scoring.check_template(value)


class LatentThoughts(SynthProgram):
    name = "latent_thoughts"
    config_class = LatentThoughtsConfig

    def __init__(self, config: LatentThoughtsConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.infer = dspy.Predict(InferLatentThought)
        self._rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

    def inputs(self) -> Iterator[dict[str, Any]]:
        for row in self.config.inputs.rows():
            if "document" not in row:
                raise KeyError(f"{self.config.inputs.path}: rows need a 'document' column "
                               f"(map one with inputs.columns); got {', '.join(row)}")
            yield {"document": str(row["document"])}

    def copy_ratio(self, document: str, thought: str) -> float:
        """Share of the document's words that appear, in order, in the thought (ROUGE-L recall)."""
        return self._rouge.score(document, thought)["rougeL"].recall

    async def aforward(self, document: str) -> dspy.Prediction:
        cfg = self.config
        engine = current_engine()
        outs = await asyncio.gather(*[self.infer.acall(document=document, config={"seed": s})
                                      for s in child_seeds(cfg.num_thoughts)], return_exceptions=True)
        thoughts, dropped = self._usable(outs)
        scores = await thought_scoring.ascore_thoughts(engine, document, thoughts, template=cfg.template)
        return self._choose(document, scores, dropped)

    @staticmethod
    def _usable(outs: list[Any]) -> tuple[list[str], list[str]]:
        """The sampled thoughts that can be scored, and why the others cannot: a sample cut off at max_tokens or
        unparseable, or an empty thought, is dropped (the other samples still count); when every sample failed,
        the first failure is raised, so the runner retries the document with fresh seeds. Other errors propagate."""

        thoughts, dropped, failure = [], [], None
        for out in outs:
            if isinstance(out, BaseException):
                kind, resample, transient = classify_failure(out)
                if not resample or transient:
                    raise out
                dropped.append(kind)
                failure = failure or out
                continue
            thought = clean(out.thought)
            if thought:
                thoughts.append(thought)
            else:
                dropped.append("empty")
        if not thoughts and failure is not None:
            raise failure
        return thoughts, dropped

    def _choose(self, document: str, scores: thought_scoring.DocumentScores,
                dropped: list[str] | None = None) -> dspy.Prediction:
        cfg = self.config
        rows = []
        for cand in scores.candidates:
            copy = self.copy_ratio(document, cand.thought)
            words = len(cand.thought.split())
            reason = (f"copies the document (ROUGE-L recall {copy:.2f} >= {cfg.max_copy})" if copy >= cfg.max_copy
                      else f"too short ({words} words)" if words < cfg.min_thought_words else None)
            rows.append({"thought": cand.thought,
                         "logp_document_given_thought": round(cand.logp_document_given_thought, 4),
                         "logp_thought": round(cand.logp_thought, 4), "logq_thought": round(cand.logq_thought, 4),
                         "log_weight": round(cand.log_weight, 4), "thought_tokens": cand.thought_tokens,
                         "copy": round(copy, 4), "eligible": reason is None, "reason": reason})
        weights = thought_scoring.normalized_weights([r["log_weight"] if r["eligible"] else None for r in rows])
        for row, w in zip(rows, weights, strict=True):
            row["weight"] = round(w, 6)
        key = "logp_document_given_thought" if cfg.select == "likelihood" else "log_weight"
        eligible = [i for i, r in enumerate(rows) if r["eligible"]]
        chosen = max(eligible, key=lambda i: rows[i][key]) if eligible else None
        thought = rows[chosen]["thought"] if chosen is not None else None
        gain = (None if chosen is None else
                round((rows[chosen]["logp_document_given_thought"] - scores.logp_document) / scores.document_tokens, 4))
        return dspy.Prediction(
            document=document, thought=thought, chosen=chosen,
            text=thought_scoring.augmented_text(document, thought, cfg.template) if thought is not None else None,
            logp_document=round(scores.logp_document, 4), document_tokens=scores.document_tokens,
            gain_per_token=gain, select=cfg.select, candidates=rows, dropped=dropped or [])

    def to_record(self, inputs: dict[str, Any], prediction: dspy.Prediction) -> dict[str, Any]:
        keys = ("document", "thought", "text", "chosen", "select", "logp_document", "document_tokens",
                "gain_per_token", "candidates", "dropped")
        return {k: prediction[k] for k in keys}

    def accept(self, record: dict[str, Any]) -> str | None:
        if record["chosen"] is None:
            reasons = sorted({c["reason"].split(" (")[0] for c in record["candidates"]}
                             | {f"{kind} sample" for kind in record.get("dropped", [])})
            return f"no eligible thought ({'; '.join(reasons)})"
        return None
