"""Record-by-record filters: length bounds, and refusals / shirkers.

Shirkers (Instruct-SkillMix): responses that do not do the task — refusals, "as an AI" disclaimers,
promises without content ("Sure, here is the poem:" and nothing after), placeholders left unfilled,
or the instruction echoed back. The patterns are listed here so a report reason names the one that hit.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from synthloop.configs import Config
from synthloop.judges.filters.base import RecordFilter, record_text
from synthloop.judges.preference_data import record_prompt_response


class LengthConfig(Config):
    kind: Literal["length"] = "length"
    field: str = Field("response", description="Text measured: response, prompt, all, or a column.")
    unit: Literal["words", "chars"] = Field("words", description="What is counted.")
    min: int = Field(1, ge=0, description="Drop records shorter than this.")
    max: int | None = Field(None, ge=1, description="Drop records longer than this (default: no bound).")


class LengthFilter(RecordFilter):
    kind = "length"

    def __init__(self, config: LengthConfig | None = None):
        self.config = config or LengthConfig()

    def reason(self, record: dict[str, Any]) -> str | None:
        text = record_text(record, self.config.field)
        n = len(text.split()) if self.config.unit == "words" else len(text)
        if n < self.config.min:
            return f"too short ({n} {self.config.unit} < {self.config.min})"
        if self.config.max is not None and n > self.config.max:
            return f"too long ({n} {self.config.unit} > {self.config.max})"
        return None


REFUSALS = [
    r"\bI(?:'m| am) (?:sorry|afraid),? (?:but )?I (?:can(?:'t|not)|won't|am unable|'m unable|am not able)",
    r"\bI(?: really)? (?:can(?:'t|not)|won't|am unable to|'m unable to|am not able to) "
    r"(?:help|assist|provide|answer|comply|fulfil|fulfill|do that|create|write|generate)",
    r"\bas an AI(?: language model)?\b",
    r"\bI(?:'m| am) (?:just )?an? (?:AI|language model|large language model)\b",
    r"\bI (?:do not|don't) have (?:the ability|access|personal (?:opinions|experiences))",
    r"\b(?:it is|it's) not appropriate for me to\b",
    r"\bI must (?:decline|refuse)\b",
]
SHIRKS = [
    r"^\s*(?:sure|certainly|of course|okay|ok)[,!.]?\s*(?:here (?:is|are)[^\n]*:?)?\s*$",  # a promise, nothing else
    r"^\s*here (?:is|are) [^\n]{0,80}:\s*$",
    r"\[(?:insert|your|name|placeholder|add)[^\]]*\]",  # placeholders left unfilled
    r"\b(?:lorem ipsum|TODO|TBD)\b",
    r"^\s*I(?:'d| would) be (?:happy|glad) to help[.!]?\s*$",
]


class RefusalConfig(Config):
    kind: Literal["refusal"] = "refusal"
    refusals: bool = Field(True, description="Drop refusals and 'as an AI' disclaimers.")
    shirkers: bool = Field(True, description="Drop content-free promises, unfilled placeholders, echoed prompts.")
    extra_patterns: list[str] = Field(default_factory=list, description="More regexes (case-insensitive) that drop.")
    echo_overlap: float = Field(0.9, gt=0, le=1, description="Drop a response whose words are at least this share "
                                                             "of the prompt's and vice versa (an echo).")


class RefusalFilter(RecordFilter):
    kind = "refusal"

    def __init__(self, config: RefusalConfig | None = None):
        self.config = config or RefusalConfig()
        flags = re.IGNORECASE | re.MULTILINE
        self.patterns = []
        if self.config.refusals:
            self.patterns += [("refusal", re.compile(p, flags)) for p in REFUSALS]
        if self.config.shirkers:
            self.patterns += [("shirker", re.compile(p, flags)) for p in SHIRKS]
        self.patterns += [("pattern", re.compile(p, flags)) for p in self.config.extra_patterns]

    def reason(self, record: dict[str, Any]) -> str | None:
        prompt, response = record_prompt_response(record)
        if not response.strip():
            return "shirker: empty response"
        for kind, pattern in self.patterns:
            hit = pattern.search(response)
            if hit:
                return f"{kind}: matches {hit.group(0).strip()[:60]!r}"
        if self.config.shirkers:
            p_words = set(re.findall(r"\w+", (prompt if isinstance(prompt, str) else
                                             " ".join(m.get("content", "") for m in prompt)).lower()))
            r_words = set(re.findall(r"\w+", response.lower()))
            if p_words and r_words:
                shared, bound = len(p_words & r_words), self.config.echo_overlap
                if shared / len(r_words) >= bound and shared / len(p_words) >= bound:
                    return "shirker: the response echoes the prompt"
        return None
