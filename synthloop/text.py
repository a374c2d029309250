"""Small text helpers shared across floors: one normal form for comparing texts, and cutting texts to size."""

from __future__ import annotations

from typing import Any


def normal_form(text: Any) -> str:
    """Whitespace collapsed and lower-cased: two answers or tasks that differ only so count as the same."""
    return " ".join(str(text).split()).lower()


def cut_start(text: str, n: int) -> str:
    """The first `n` characters (a response keeps its start), marked with "..." when cut."""
    return text if len(text) <= n else text[:n] + "..."


def cut_end(text: str, n: int) -> str:
    """The last `n` characters (a prompt keeps its end, where the question is), marked with "..." when cut."""
    return text if len(text) <= n else "..." + text[-n:]
