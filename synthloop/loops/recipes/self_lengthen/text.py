"""Text helpers of Self-Lengthen: split a draft into parts, clean an expansion, state a length demand.

    split_parts("P1\\n\\nP2\\n\\nP3\\n\\nP4", 2)      # ["P1\\n\\nP2", "P3\\n\\nP4"]: balanced by words, at paragraphs
    clean_expansion("Here is the expanded passage:\\n\\nText...")   # "Text..."
    round_words(347)                                 # 350
"""

from __future__ import annotations

import re

from synthloop.judges.length import count_words

_PARAGRAPHS = re.compile(r"\n\s*\n")
_SENTENCES = re.compile(r"(?<=[.!?])\s+(?=\S)")

#: a first line that only announces the text ("Here's an expanded version of the passage:", "Expanded passage:")
_PREAMBLE = re.compile(
    r"^\s*(?:(?:sure|certainly|of course|okay)[,!.]?\s*)?"
    r"(?:(?:here(?:'s| is| are)|below is|this is)\b[^\n]{0,120}?:|(?:the )?(?:expanded|revised|enriched|rewritten)"
    r"\b[^\n]{0,60}:|(?:sure|certainly|of course)[!.]?)\s*$",
    re.IGNORECASE,
)


def _units(text: str) -> tuple[list[str], str]:
    """Paragraphs, else lines, else sentences (the coarsest units that give more than one), and their separator."""
    for splitter, sep in ((_PARAGRAPHS, "\n\n"), (re.compile(r"\n"), "\n")):
        units = [u.strip() for u in splitter.split(text) if u.strip()]
        if len(units) > 1:
            return units, sep
    return [u.strip() for u in _SENTENCES.split(text.strip()) if u.strip()], " "


def split_parts(text: str, parts: int) -> list[str]:
    """Split `text` into at most `parts` consecutive parts of about equal word counts, cutting only between
    paragraphs (or lines, or sentences when the text is a single paragraph); a part that ends past the
    share's boundary by less than half its last unit keeps that unit."""
    units, sep = _units(text)
    if parts <= 1 or len(units) <= 1:
        return [sep.join(units)] if units else []
    sizes = [max(1, count_words(u)) for u in units]
    total = sum(sizes)
    groups: list[list[str]] = [[]]
    done = 0
    for unit, size in zip(units, sizes, strict=True):
        boundary = len(groups) * total / parts  # where the current part should end
        if groups[-1] and len(groups) < parts and done + size / 2 > boundary:
            groups.append([])
        groups[-1].append(unit)
        done += size
    return [sep.join(g) for g in groups if g]


def clean_expansion(text: str) -> str:
    """An expansion without the announcing first line small models put before the text."""
    text = text.strip()
    first, _, rest = text.partition("\n")
    if rest.strip() and _PREAMBLE.match(first):
        text = rest.strip()
    return text


def round_words(words: int) -> int:
    """A length as people state it: to the nearest 10 words below 1,000, the nearest 100 above."""
    step = 10 if words < 1000 else 100
    return max(step, int(round(words / step)) * step)


def tail_words(text: str, n: int) -> str:
    """The last `n` words of a text (whole text if shorter), for context between parts."""
    words = text.split()
    return " ".join(words[-n:]) if n > 0 else ""
