"""Self-consistency without a reference: the answer each sample gives, the majority answer of N samples, and how
strongly the samples agree on it.

    key = answer_key("math")
    vote = majority([key(s) for s in sampled_texts])     # Vote(answer="9", share=0.75, votes=8, distinct=2)

Keys: `math` reads a sample's final number the way the math verifier does (`#### 42`, `\\boxed{42}`, "the
answer is 42", else the last number) and writes it canonically (`9`, `-3/4`), so "9 marbles" and "9.0" agree;
`text` is the whole answer, whitespace-collapsed and lower-cased, for short-answer tasks. A sample without an
answer (None) is a vote for nothing: it lowers the majority's share without being a candidate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

AnswerKey = Literal["math", "text"]


def math_key(text: str) -> str | None:
    from synthloop.judges.verifiers.math import extract_answer, parse_number

    found = extract_answer(text or "")
    value = parse_number(found) if found is not None else None
    if value is None:
        return None
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def text_key(text: str) -> str | None:
    normal = " ".join((text or "").split()).lower().rstrip(" .!")
    return normal or None


def answer_key(kind: AnswerKey) -> Callable[[str], str | None]:
    return {"math": math_key, "text": text_key}[kind]


@dataclass(frozen=True)
class Vote:
    answer: str | None  # the most frequent answer (ties: the one given first); None if no sample gave one
    share: float        # its votes / all samples (samples without an answer count in the denominator)
    votes: int          # samples
    distinct: int       # distinct answers given


def majority(keys: Iterable[str | None]) -> Vote:
    keys = list(keys)
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return Vote(answer=None, share=0.0, votes=len(keys), distinct=0)
    top = max(counts.values())
    answer = next(k for k in keys if k is not None and counts[k] == top)
    return Vote(answer=answer, share=round(top / len(keys), 4), votes=len(keys), distinct=len(counts))
