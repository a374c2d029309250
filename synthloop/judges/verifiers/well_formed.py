"""The collapse guard: a response must be a real answer, not a trick that passes a format check.

A model trained on what a format verifier accepts learns the cheapest way through it: "all lowercase" or "no
commas" are passed by an empty answer, a single word, or one phrase repeated until max_tokens. This verifier
fails those, so in a panel beside a format verifier (`judges: [{kind: ifeval}, {kind: well_formed}]`) it is one
more gate: at least `min_words` words, and at most `max_repeated_share` of the word n-grams repeating an earlier
one (`text.repetition_share`; ordinary prose is near 0 for n = 3, a looping answer climbs fast).
"""

from __future__ import annotations

from typing import Any

from synthloop.judges.verifiers.base import Verdict
from synthloop.text import repetition_share


class WellFormedVerifier:
    name = "well_formed"

    def __init__(self, min_words: int = 5, max_repeated_share: float = 0.3, n: int = 3):
        self.min_words, self.max_repeated_share, self.n = min_words, max_repeated_share, n

    def verify(self, response: str, reference: Any = None) -> Verdict:
        words = len((response or "").split())
        if words < self.min_words:
            return Verdict(passed=False, score=0.0, reason=f"too short: {words} word(s) < {self.min_words}")
        share = repetition_share(response, self.n)
        if share > self.max_repeated_share:
            return Verdict(passed=False, score=0.0, reason=f"repeats itself: {share:.0%} of its {self.n}-grams "
                                                           f"repeat (> {self.max_repeated_share:.0%})")
        return Verdict(passed=True, score=1.0, reason=f"{words} words, {share:.0%} repeated {self.n}-grams")

    __call__ = verify
