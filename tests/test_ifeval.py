"""IFEval checkers (lm-eval's copy of Google's reference code, with the Punkt model offline)."""

from __future__ import annotations

import json

import pytest

from synthloop.judges.base import JudgeItem, VerifierJudge
from synthloop.judges.verifiers.ifeval import IFEvalVerifier, check

SHARED = __import__("conftest").SHARED

# (instruction id, kwargs, response, followed?) -- each checked by hand against the instruction's wording
CASES = [
    ("punctuation:no_comma", {}, "Hello world. No commas here.", True),
    ("punctuation:no_comma", {}, "Hello, world.", False),
    ("length_constraints:number_words", {"relation": "at least", "num_words": 5}, "one two three four", False),
    ("length_constraints:number_words", {"relation": "at least", "num_words": 5}, "one two three four five six", True),
    ("length_constraints:number_words", {"relation": "less than", "num_words": 4}, "one two three", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*first* then *second*", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "only *one* here", False),
    ("change_case:english_lowercase", {}, "all of this is lowercase.", True),
    ("change_case:english_lowercase", {}, "This is Not.", False),
    ("detectable_format:title", {}, "<<A Poem of Joy>>\nJoy is here.", True),
    ("detectable_format:title", {}, "A Poem of Joy\nJoy is here.", False),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Done. Any other questions?", True),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Any other questions? Done.", False),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* apples\n* pears", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* apples\n* pears\n* plums", False),
    ("keywords:existence", {"keywords": ["river", "stone"]}, "A stone fell in the river.", True),
    ("keywords:existence", {"keywords": ["river", "stone"]}, "A stone fell.", False),
    # Punkt's English abbreviations: "Dr." does not end a sentence, so this is two sentences
    ("length_constraints:number_sentences", {"relation": "less than", "num_sentences": 3},
     "Dr. Smith went home. He slept.", True),
    ("length_constraints:number_sentences", {"relation": "less than", "num_sentences": 3},
     "He went home. He slept. He woke.", False),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], at [address].", True),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name].", False),
]


@pytest.mark.parametrize(("instruction", "kwargs", "response", "followed"), CASES)
def test_checker_agrees_with_hand_verified_cases(instruction, kwargs, response, followed):
    assert check(response, [instruction], [kwargs]) == [followed]


def test_loose_mode_forgives_a_preamble_line():
    response = "Sure! Here It Is:\nall of this is lowercase."
    assert check(response, ["change_case:english_lowercase"], [{}]) == [False]
    assert check(response, ["change_case:english_lowercase"], [{}], loose=True) == [True]


def test_verifier_through_verifier_judge():
    row = {"instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"], "kwargs": [{}, {}]}
    judge = VerifierJudge(IFEvalVerifier())
    good, half = judge.score([JudgeItem(prompt="p", response="all lowercase and no commas", reference=row),
                              JudgeItem(prompt="p", response="all lowercase, with a comma", reference=row)])
    assert good.passed and good.score == 1.0
    assert not half.passed and half.score == 0.5 and "punctuation:no_comma" in half.rationale


def test_gpt4_responses_match_the_published_pass_rate():
    """The IFEval paper reports GPT-4 at 76.9% prompt-level strict and 79.3% loose accuracy."""
    inputs = [json.loads(line) for line in (SHARED / "ifeval" / "input_data.jsonl").open()]
    responses = [json.loads(line)["response"]
                 for line in (SHARED / "ifeval" / "input_response_data_gpt4_20231107_145030.jsonl").open()]
    strict, loose = IFEvalVerifier(), IFEvalVerifier(loose=True)
    s = sum(strict.verify(r, row).passed for row, r in zip(inputs, responses, strict=True)) / len(inputs)
    lo = sum(loose.verify(r, row).passed for row, r in zip(inputs, responses, strict=True)) / len(inputs)
    assert 0.74 <= s <= 0.80, s
    assert s < lo <= 0.83, lo
