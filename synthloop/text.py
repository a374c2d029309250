"""Small text helpers shared across floors: one normal form for comparing texts, words for n-gram measures, and
cutting texts to size."""

from __future__ import annotations

import re
from typing import Any

_WORD = re.compile(r"\w+", re.UNICODE)


def normal_form(text: Any) -> str:
    """Whitespace collapsed and lower-cased: two answers or tasks that differ only so count as the same."""
    return " ".join(str(text).split()).lower()


def normalize_words(text: str) -> str:
    """The text's words only, lower-cased, joined by single spaces (punctuation dropped): what n-gram measures
    (near-duplicates, decontamination, repetition) compare."""
    return " ".join(_WORD.findall(text.lower()))


def repetition_share(text: str, n: int = 3) -> float:
    """Share of the word n-grams of `text` (lower-cased, punctuation dropped) that repeat an earlier one: 0 when
    every n-gram is new, 0.5 when half of them are repeats (a looping answer climbs fast)."""
    words = normalize_words(text).split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def cut_start(text: str, n: int) -> str:
    """The first `n` characters (a response keeps its start), marked with "..." when cut."""
    return text if len(text) <= n else text[:n] + "..."


def cut_end(text: str, n: int) -> str:
    """The last `n` characters (a prompt keeps its end, where the question is), marked with "..." when cut."""
    return text if len(text) <= n else "..." + text[-n:]
