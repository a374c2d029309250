"""Repetition: drop texts that repeat themselves, the typical failure of a small model asked to write long.

The measure is the share of a text's word n-grams that already occurred earlier in it (0: every n-gram is
new; 0.5: half of them are repeats). A text that loops on a sentence scores high quickly; ordinary prose
scores near 0 for n >= 3. Self-Lengthen's own check (QwenLM/Self-Lengthen, utils.check_response) rejects
any repeated 13-gram: that is `n: 13, max_share: 0`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from synthloop.configs import Config
from synthloop.judges.filters.base import RecordFilter, record_text
from synthloop.text import repetition_share


class RepetitionConfig(Config):
    kind: Literal["repetition"] = "repetition"
    field: str = Field("response", description="Text checked: response, prompt, all, or a column.")
    n: int = Field(3, ge=1, description="Words per n-gram.")
    max_share: float = Field(0.2, ge=0, lt=1, description="Drop texts whose share of repeated n-grams exceeds this.")


class RepetitionFilter(RecordFilter):
    kind = "repetition"

    def __init__(self, config: RepetitionConfig | None = None):
        self.config = config or RepetitionConfig()

    def reason(self, record: dict[str, Any]) -> str | None:
        share = repetition_share(record_text(record, self.config.field), self.config.n)
        if share > self.config.max_share:
            return f"repetition: {share:.0%} of its {self.config.n}-grams repeat (> {self.config.max_share:.0%})"
        return None
