"""The `recipe:` section of Self-Lengthen (a Generator and an Extender, both the policy's roles)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synthloop.configs import Config
from synthloop.judges.filters.pipeline import FilterSpec
from synthloop.judges.filters.repetition import RepetitionConfig
from synthloop.judges.filters.similarity import SimilarityConfig
from synthloop.judges.llm_judge import LLMJudgeConfig
from synthloop.train.config import SFTSettings

EXTEND_TEMPLATE = (
    "You are an expert in writing polishing. Expand the passage below into about {words} words: enrich it with "
    "more information, specific details and descriptions. Do not continue past its end, do not repeat content, "
    "and reply with the expanded passage only.\n\nInstruction: {instruction}\n\n{context}Passage:\n\n{part}"
)
CONTEXT_TEMPLATE = "The text before this passage ends with: \"... {tail}\"\n\n"
DEMANDS = ["Write about {words} words.", "Your answer should be around {words} words long.",
           "Use roughly {words} words."]


class QualityJudge(Config):
    kind: Literal["llm", "none"] = Field(
        "llm", description="llm: synthloop's LLM judge (pointwise 1-10) on a fixed model; none: no quality score.")
    model: str | None = Field(None, description="The judging model (default: the starting policy, engine.model; "
                                                "it stays the same in every round).")
    llm: LLMJudgeConfig = Field(LLMJudgeConfig(max_input_chars=3000),
                                description="Judge settings (decoding, input cut, seed).")


class SelfLengthenConfig(Config):
    kind: Literal["self_lengthen"] = "self_lengthen"
    targets: list[int] = Field(default_factory=lambda: [100, 200, 400], min_length=1,
                               description="Length target (words) of round 1, 2, ...; the last one repeats.")
    demands: list[str] = Field(default_factory=lambda: list(DEMANDS), min_length=1,
                               description="Length demands appended to instructions ({words}); each task gets one "
                                           "(varied phrasing, as Self-Lengthen's length-control step).")
    parts: int = Field(2, ge=1, le=8, description="Parts the Extender splits each draft into (the paper: 2).")
    extend_template: str = Field(EXTEND_TEMPLATE, description="The Extender's request per part: {instruction}, "
                                 "{part}, {words} (the part's share of the target), {context}.")
    context_template: str = Field(CONTEXT_TEMPLATE, description="Fills {context} for parts after the first "
                                  "({tail}: the end of the text expanded so far); the first part gets ''.")
    context_words: int = Field(40, ge=0, description="Words of the expanded text so far shown with the next part "
                                                     "(0: none; parts are then independent).")
    min_draft_words: int = Field(20, ge=1, description="Drafts shorter than this are not extended.")
    min_growth: float = Field(1.2, ge=1.0, description="An extension must have at least this many times the draft's "
                                                       "words (the paper: 1.2).")
    include_truncated: bool = Field(False, description="Extend drafts and keep expansions cut at max_tokens.")
    filters: list[FilterSpec] = Field(
        default_factory=lambda: [
            RepetitionConfig(field="text", n=3, max_share=0.25),
            SimilarityConfig(field="expansions", to="parts", min=0.5),
            SimilarityConfig(field="text", to="instruction", min=0.2),
        ],
        description="Filters over the extensions (synthloop.judges.filters). Columns: text (the whole), draft, "
                    "instruction, parts and expansions (lists, compared element by element).")
    extender_sft: SFTSettings | None = Field(None, description="The Extender's SFT settings (default: train.sft).")
    quality: QualityJudge = Field(QualityJudge(), description="The quality judge of the held-out answers.")

    def target(self, round_: int) -> int:
        return self.targets[min(round_, len(self.targets)) - 1]
