"""Length following: how close a response's length comes to the length the prompt asked for.

    count_words("Hello, world! 你好")           # 4: English words + Chinese characters (LongWriter's count)
    length_score(required=400, output=300)       # 83.33: LongWriter's S_l, on its 0-100 scale
    LengthFollowingJudge().score([JudgeItem(prompt=..., response=..., reference=400)])   # S_l / 100

The score is LongWriter's length score S_l (Bai et al. 2024, "LongWriter: Unleashing 10,000+ Word
Generation from Long Context LLMs", section 2.2; evaluation/eval_length.py in THUDM/LongWriter):

    S_l = 100 * max(0, 1 - (l'/l - 1) / 3)    if l' > l
    S_l = 100 * max(0, 1 - (l/l' - 1) / 2)    if l' <= l

with l the required length and l' the output length, both counted by `count_words` (English words plus
Chinese characters, as LongWriter's pred.py counts them). Too short is punished harder than too long: half
the required length scores 50, twice it scores 66.7; a quarter of it or four times it score 0. An empty
response scores 0 (the limit of the formula as l' -> 0; LongWriter's code would divide by zero).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from synthloop.judges.base import Judge, JudgeItem, Judgement

_CHINESE = re.compile(r"[\u4e00-\u9fff]")
_ENGLISH = re.compile(r"\b[a-zA-Z]+\b")


def count_words(text: str) -> int:
    """LongWriter's length count: English words (runs of ASCII letters) plus Chinese characters."""
    return len(_CHINESE.findall(text)) + len(_ENGLISH.findall(text))


def length_score(required: float, output: float) -> float:
    """LongWriter's S_l in [0, 100] for a required length and an output length (see the module doc)."""
    if required <= 0:
        raise ValueError(f"the required length must be positive (got {required})")
    if output <= 0:
        return 0.0
    if output > required:
        return 100.0 * max(0.0, 1.0 - (output / required - 1.0) / 3.0)
    return 100.0 * max(0.0, 1.0 - (required / output - 1.0) / 2.0)


def required_length(reference: Any) -> int:
    """The required length a task carries as its reference: an int, or a string holding one number."""
    if isinstance(reference, bool):
        raise ValueError(f"not a required length: {reference!r}")
    if isinstance(reference, int | float):
        return int(reference)
    numbers = re.findall(r"\d+", str(reference or ""))
    if len(numbers) != 1:
        raise ValueError(f"not a required length (expected one number): {reference!r}")
    return int(numbers[0])


class LengthFollowingJudge(Judge):
    """S_l / 100 of each response against its item's reference (the required length in words); a judge, a
    panel member (`{kind: length, min_score: 0.8}` makes it pass/fail), or a GRPO reward
    (`synthloop.judges.rewards.judge_reward`)."""

    name = "length_following"
    scale = (0.0, 1.0)

    def score(self, items: Sequence[JudgeItem]) -> list[Judgement]:
        out = []
        for item in items:
            try:
                required = required_length(item.reference)
            except ValueError as exc:
                out.append(Judgement(score=float("nan"), rationale=f"no required length: {exc}"))
                continue
            words = count_words(item.response)
            s = length_score(required, words) / 100.0
            out.append(Judgement(score=s, rationale=f"{words} words for {required} required: S_l {100 * s:.1f}"))
        return out

    def describe(self) -> dict[str, Any]:
        return {"judge": self.name}
