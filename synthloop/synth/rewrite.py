"""Rewriting raw or low-quality text into a target style (Q&A, textbook, Wikipedia-like; extensible), with a
faithfulness check.

Each style has its own predictor (compiling gives it its own demos) and its instruction. Each input text
gets `rewrites_per_text` rewrites of successive styles. Faithfulness: the rewrite's all-MiniLM-L6-v2
cosine similarity to the source must reach `min_similarity` (it catches drift off topic and invented
content, not a changed number), and optionally an LLM check (`llm_check`) must call it faithful.
Unfaithful rewrites go to filtered.jsonl with the reason. Records: `text` (the rewrite), `source`,
`style`, `faithfulness`, and `messages` (the rewrite as an assistant answer to a rewriting request).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, Literal

import dspy
from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthloop.configs import ConfigError
from synthloop.judges.base import JudgeItem
from synthloop.judges.similarity import EmbeddingSimilarityJudge
from synthloop.prompts.rewrite import CheckFaithfulness, RewriteInStyle
from synthloop.runs.inputs import DatasetInput
from synthloop.synth.base import (
    PROMPT_ECHO,
    BaseProgramConfig,
    SynthProgram,
    as_text,
    carry_columns,
    clip,
    expand_builtins,
    ngram_overlap,
    text_rows,
)


class Style(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Identifier, stored in every record as style.")
    description: str = Field(description="The target style, told to the model (added to the instruction).")


BUILTIN_STYLES: dict[str, Style] = {s.name: s for s in [
    Style(name="qa", description="Target style: questions and answers. Turn the text into several pairs of "
          "'Question: ...' and 'Answer: ...' lines that together cover its facts."),
    Style(name="textbook", description="Target style: a textbook. Write a clear, well-organised explanation for "
          "students, defining terms and connecting the ideas of the text."),
    Style(name="wikipedia", description="Target style: a Wikipedia article. Write in a neutral, encyclopedic tone, "
          "in the third person, starting with a sentence that says what the subject is."),
]}


class FaithfulnessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_similarity: float | None = Field(0.5, ge=-1, le=1, description="Drop rewrites whose embedding cosine "
                                                                        "similarity to the source is below this "
                                                                        "(null: no embedding check).")
    llm_check: bool = Field(False, description="Also ask the model whether the rewrite is faithful (one more call "
                                               "per record); drop it when the model says no.")
    embedder: str = Field("all-minilm-l6-v2", description="Sentence-transformers model for the similarity.")


class RewriteConfig(BaseProgramConfig):
    kind: Literal["rewrite"] = "rewrite"
    inputs: DatasetInput | None = Field(
        None, description="The texts: {path: ..., columns: {text: <column>}}; a run's messages work too "
        "({text: messages.-1.content}). Python callers may pass rows to generate() instead.")
    styles: list[Style] = Field(
        default_factory=lambda: list(BUILTIN_STYLES.values()),
        description="Target styles, taken in turn. A name picks a built-in (qa, textbook, wikipedia); a mapping "
        "{name, description} adds your own.")
    rewrites_per_text: int = Field(1, ge=1, description="Rewrites made from each text (of successive styles).")
    max_text_chars: int = Field(2000, ge=100, description="Texts are cut to this many characters (at a sentence "
                                                          "end) before rewriting.")
    min_text_chars: int = Field(100, ge=1, description="Shorter texts are skipped.")
    min_length_ratio: float = Field(0.3, ge=0, description="Drop rewrites shorter than this fraction of the source.")
    max_copied: float = Field(0.5, ge=0, le=1, description="Drop rewrites more than this share of whose word 8-grams "
                                                           "are copied from the source (not rewritten).")
    faithfulness: FaithfulnessConfig = FaithfulnessConfig()
    keep_columns: list[str] = Field(default_factory=list, description="Input columns copied into every record "
                                                                      "(e.g. skills, for a later judge).")

    @field_validator("styles", mode="before")
    @classmethod
    def _builtin_names(cls, value: Any) -> Any:
        return expand_builtins(value, BUILTIN_STYLES, "style", "name and description")


class Rewrite(SynthProgram):
    name = "rewrite"
    config_class = RewriteConfig

    def __init__(self, config: RewriteConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.styles = {s.name: s for s in self.config.styles}
        self.rewriters = {
            name: dspy.Predict(RewriteInStyle.with_instructions(f"{RewriteInStyle.instructions}\n\n{s.description}"))
            for name, s in self.styles.items()
        }
        self.check = dspy.Predict(CheckFaithfulness)
        self.similarity = EmbeddingSimilarityJudge(self.config.faithfulness.embedder)

    def inputs(self) -> Iterator[dict[str, Any]]:
        if self.config.inputs is None:
            raise ConfigError("rewrite needs program.inputs (a dataset with a text column)")
        names = list(self.styles)
        turn = 0
        for text, kept in text_rows(self.config.inputs, "text", self.config.min_text_chars, self.config.keep_columns):
            for _ in range(self.config.rewrites_per_text):
                yield {"text": text, "style": names[turn % len(names)], **kept}
                turn += 1

    def _style_of(self, text: str, style: str | None) -> str:
        if style is None:  # rows from a caller: a style that depends only on the text
            names = list(self.styles)
            return names[int(hashlib.sha256(text.encode()).hexdigest(), 16) % len(names)]
        if style not in self.styles:
            raise ValueError(f"style {style!r} is not configured ({', '.join(self.styles)})")
        return style

    def _similarity(self, source: str, rewrite: str) -> float | None:
        if self.config.faithfulness.min_similarity is None:
            return None
        item = JudgeItem(prompt="", response=rewrite, reference=source)
        return round(self.similarity.score([item])[0].score, 4)

    async def aforward(self, text: Any, style: str | None = None, **_: Any) -> dspy.Prediction:
        source = clip(as_text(text), self.config.max_text_chars)
        style = self._style_of(source, style)
        rewrite = (await self.rewriters[style].acall(text=source)).rewrite.strip()
        faithful = None
        if self.config.faithfulness.llm_check:
            faithful = bool((await self.check.acall(source=source, rewrite=rewrite)).faithful)
        return dspy.Prediction(source=source, style=style, rewrite=rewrite, llm_faithful=faithful,
                               similarity=self._similarity(source, rewrite))

    def to_record(self, inputs: dict[str, Any], prediction: dspy.Prediction) -> dict[str, Any]:
        request = f"Rewrite the following text. {self.styles[prediction.style].description}\n\n{prediction.source}"
        record = {
            "text": prediction.rewrite,
            "source": prediction.source,
            "style": prediction.style,
            "faithfulness": {"similarity": prediction.similarity, "llm_faithful": prediction.llm_faithful},
            "messages": [{"role": "user", "content": request}, {"role": "assistant", "content": prediction.rewrite}],
        }
        return carry_columns(record, inputs, self.config.keep_columns)

    def accept(self, record: dict[str, Any]) -> str | None:
        text, source, checks = record["text"], record["source"], record["faithfulness"]
        if not text:
            return "empty rewrite"
        if PROMPT_ECHO.search(text):
            return "copied the prompt's template or format"
        if len(text) < self.config.min_length_ratio * len(source):
            return f"too short ({len(text)} characters for a source of {len(source)})"
        bound = self.config.faithfulness.min_similarity
        if bound is not None and checks["similarity"] is not None and checks["similarity"] < bound:
            return f"unfaithful: similarity {checks['similarity']:.2f} to the source < {bound}"
        if checks["llm_faithful"] is False:
            return "unfaithful: the LLM check says the rewrite is not supported by the source"
        copied = ngram_overlap(text, source)
        if copied > self.config.max_copied:
            return f"near-copy of the source ({copied:.0%} of its 8-grams are the source's)"
        return None

    def judge_item(self, record: dict[str, Any], reference: Any = None) -> JudgeItem:
        return JudgeItem(prompt=record["messages"][0]["content"], response=record["text"],
                         reference=record["source"] if reference is None else reference)
