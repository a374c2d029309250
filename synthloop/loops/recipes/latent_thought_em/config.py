"""The `recipe:` section of latent-thought EM (BoLT)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from synthloop.configs import Config

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
