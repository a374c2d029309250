"""A deterministic judge for control-flow tests of loops on the tiny random model, whose answers are noise
(the math verifier would almost never accept one, and training stages would then have no data).

It is a real `Judge` over the real sampled text: the score is the share of distinct characters, so
samples differ in score (preference pairs form) and all are accepted with min_score 0 (SFT data forms).
"""

from __future__ import annotations

from synthloop.judges.base import Judge, Judgement


class DistinctChars(Judge):
    name = "distinct_chars"

    def score(self, items):
        return [Judgement(score=len(set(i.response)) / (len(i.response) + 1)) for i in items]


def make() -> DistinctChars:
    return DistinctChars()
