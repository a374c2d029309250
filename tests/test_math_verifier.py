"""The math final-answer verifier, on hand-checked cases and on GSM8K's own reference solutions."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from helpers import ROOT

from synthloop.judges.verifiers import MathAnswerVerifier, extract_answer, gsm8k_gold, parse_number

GSM8K = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1,234", 1234),
        ("$18.00", 18),
        ("50%", 50),
        ("3/4", Fraction(3, 4)),
        ("-7", -7),
        ("0.5", Fraction(1, 2)),
        ("2 1/2", Fraction(5, 2)),
        (".25", Fraction(1, 4)),
        ("12.", 12),
        ("1 / 3", Fraction(1, 3)),
    ],
)
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1/0", "--3"])
def test_parse_number_rejects(text):
    assert parse_number(text) is None


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        ("She has 3 + 4 = 7 apples.\n#### 7", "7"),
        ("So the total is \\boxed{1,200} dollars.", "1,200"),
        ("First 2 then 5. The answer is 12 eggs.", "12"),
        ("Answer: $4.50", "4.50"),
        ("He walks 3 miles, then 4 miles, 7 miles in total", "7"),
        ("No digits here.", None),
    ],
)
def test_extract_answer(response, answer):
    assert extract_answer(response) == answer


def test_verdicts_and_reasons():
    v = MathAnswerVerifier()
    assert v.verify("The answer is 18.", "Janet sells ... #### 18").passed
    assert v.verify("#### 18.0", "18").passed
    assert v.verify("so 0.75 of the cake", "3/4").passed
    wrong = v.verify("The answer is 17.", "18")
    assert not wrong.passed and wrong.reason == "final answer 17 != 18" and wrong.extracted == "17"
    assert v.verify("I don't know", "18").reason == "no number in the response"
    assert not v.verify("#### 5", "not a number").passed


def test_gsm8k_reference_solutions_verify_against_their_own_answers():
    """Every GSM8K test solution, read as a model response, matches its own gold answer."""
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines()]
    v = MathAnswerVerifier()
    assert len(rows) == 1319
    failures = [r for r in rows if not v.verify(r["answer"], gsm8k_gold(r["answer"])).passed]
    assert not failures, failures[:2]
    # and the solutions with the final line removed still carry the answer as their last number mostly
    stripped = sum(v.verify(r["answer"].split("####")[0], r["answer"]).passed for r in rows)
    assert stripped / len(rows) > 0.9
