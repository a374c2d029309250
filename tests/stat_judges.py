"""A deterministic judge for STAT control-flow tests on the tiny random model (whose answers are noise).

It is a real `Judge` over the real sampled records, but its verdict depends on the task, not the answer: it
passes every arithmetic problem without a multiplication or division step ("times as", "equal groups/piles"),
and of those with one only the problems whose reference answer is a multiple of 3. A student judged by it is
"missing" the skills mul and div (about 2/3 failed), so the tests can check that the profile finds them, that
STAT-Sel moves the data toward them and that STAT-Syn makes tasks for them.
"""

from __future__ import annotations

from synthloop.judges.base import Judge, Judgement

MISSING = ("times as", "equal groups", "equal piles")


class MissingMulDiv(Judge):
    name = "missing_mul_div"

    def score(self, items):
        out = []
        for item in items:
            hard = any(marker in item.prompt for marker in MISSING)
            passed = not hard or int(item.reference) % 3 == 0
            out.append(Judgement(score=float(passed), passed=passed))
        return out


def make() -> MissingMulDiv:
    return MissingMulDiv()
