"""Extractive answers: the response must be a short span found word for word in the reference passage.

Matching ignores case, surrounding punctuation, repeated whitespace and quote styles, as SQuAD-style
graders do; it does not accept paraphrases. A very long "span" (the whole passage copied) fails.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from synthloop.judges.verifiers.base import Verdict

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).lower()
    return " ".join(re.sub(r"[^\w%$.,'\-/ ]", " ", text).split()).strip(" .,'\"")


class SpanVerifier:
    name = "span_in_passage"

    def __init__(self, max_words: int = 30):
        self.max_words = max_words

    def verify(self, response: str, reference: Any) -> Verdict:
        answer, passage = normalize(response or ""), normalize(str(reference or ""))
        if not answer:
            return Verdict(passed=False, score=0.0, reason="empty answer")
        words = len(answer.split())
        if words > self.max_words:
            return Verdict(passed=False, score=0.0, reason=f"answer too long for a span ({words} words)",
                           extracted=answer)
        if re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", passage):
            return Verdict(passed=True, score=1.0, reason="answer found in the passage", extracted=answer)
        return Verdict(passed=False, score=0.0, reason="answer not found in the passage", extracted=answer)

    __call__ = verify
