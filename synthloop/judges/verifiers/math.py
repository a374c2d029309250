"""Final-answer match for math word problems (GSM8K and the like).

The answer is read from the response the way graders do: a `#### 42` line, then `\\boxed{42}`, then
"the answer is 42", then the last number in the text. Numbers are compared exactly as fractions after
normalisation: thousands separators, currency, percent signs, trailing units and words, fractions
(`3/4`), mixed numbers (`1 1/2`), decimals (`0.50` == `1/2`) and negatives.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from synthloop.judges.verifiers.base import Verdict

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+"
_MARKERS = [
    re.compile(r"####\s*\$?\s*(" + _NUMBER + ")"),
    re.compile(r"\\boxed\{\s*\$?\s*(" + _NUMBER + r")\s*[^}]*\}"),
    re.compile(r"answer\s*(?:is|:|=)\s*:?\s*\$?\s*(" + _NUMBER + ")", re.IGNORECASE),
]
_ANY_NUMBER = re.compile(r"(?<![\w.])(" + _NUMBER + ")")
_MIXED = re.compile(r"^(-?\d+)\s+(\d+)\s*/\s*(\d+)$")


def parse_number(text: str) -> Fraction | None:
    """'1,234.50' -> 2469/2; '$3/4' -> 3/4; '2 1/2' -> 5/2; '50%' -> 50; anything else -> None."""
    s = text.strip().replace("$", "").replace("%", "").strip().rstrip(".").strip()
    mixed = _MIXED.match(s)
    if mixed:
        whole, num, den = (int(g) for g in mixed.groups())
        if den == 0:
            return None
        sign = -1 if whole < 0 else 1
        return Fraction(whole) + sign * Fraction(num, den)
    s = s.replace(",", "").replace(" ", "")
    try:
        if "/" in s:
            num, den = s.split("/", 1)
            return Fraction(Decimal(num)) / Fraction(Decimal(den)) if Decimal(den) != 0 else None
        return Fraction(Decimal(s))
    except (InvalidOperation, ValueError, ZeroDivisionError):
        return None


def extract_answer(response: str) -> str | None:
    """The final answer a grader would read from a free-text response, or None."""
    for marker in _MARKERS:
        found = marker.findall(response)
        if found:
            return found[-1].strip()
    numbers = _ANY_NUMBER.findall(response)
    return numbers[-1].strip() if numbers else None


def gsm8k_gold(answer_field: str) -> str:
    """GSM8K's `answer` field ends with '#### <number>'."""
    return answer_field.split("####")[-1].strip()


class MathAnswerVerifier:
    name = "math_answer"

    def verify(self, response: str, reference: Any) -> Verdict:
        gold = parse_number(gsm8k_gold(str(reference)) if "####" in str(reference) else str(reference))
        if gold is None:
            return Verdict(passed=False, score=0.0, reason=f"reference {reference!r} is not a number")
        extracted = extract_answer(response or "")
        if extracted is None:
            return Verdict(passed=False, score=0.0, reason="no number in the response")
        value = parse_number(extracted)
        if value is None:
            return Verdict(
                passed=False, score=0.0, reason=f"cannot read {extracted!r} as a number", extracted=extracted
            )
        if value == gold:
            return Verdict(passed=True, score=1.0, reason="final answer matches", extracted=extracted)
        return Verdict(passed=False, score=0.0, reason=f"final answer {extracted} != {gold}", extracted=extracted)

    __call__ = verify
