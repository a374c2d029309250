"""LLM-as-judge (JudgeLM / MT-Bench style): score one response, or compare two.

The verdict comes first and the rationale after it (JudgeLM's output order): the verdict is what
counts, and constrained decoding fixes its type (an integer 1-10), so it always parses.
"""

from typing import Literal

import dspy

Score = Literal[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]


class ScoreResponse(dspy.Signature):
    """You are a strict, impartial judge. Rate the assistant's response to the user's prompt on a
    scale of 1 to 10 for helpfulness, correctness, relevance, harmlessness and level of detail.
    10 is an excellent answer; 1 is useless, wrong or harmful. Do not let length sway you."""

    prompt: str = dspy.InputField(desc="the conversation so far, ending with the user's request")
    response: str = dspy.InputField(desc="the assistant's response to judge")
    score: Score = dspy.OutputField(desc="1 (worst) to 10 (best)")
    rationale: str = dspy.OutputField(desc="one short sentence explaining the score")


class ScoreResponseWithReference(dspy.Signature):
    """You are a strict, impartial judge. A reference answer is given: rate the assistant's response
    to the user's prompt on a scale of 1 to 10 by how correct and complete it is compared with the
    reference, and how helpful and harmless it is. 10 matches the reference or is better; 1 is
    wrong, useless or harmful."""

    prompt: str = dspy.InputField(desc="the conversation so far, ending with the user's request")
    reference: str = dspy.InputField(desc="a reference answer, assumed correct")
    response: str = dspy.InputField(desc="the assistant's response to judge")
    score: Score = dspy.OutputField(desc="1 (worst) to 10 (best)")
    rationale: str = dspy.OutputField(desc="one short sentence explaining the score")


class CompareResponses(dspy.Signature):
    """You are a strict, impartial judge. Two assistants answered the same user prompt. Rate each
    response on a scale of 1 to 10 for helpfulness, correctness, relevance, harmlessness and level
    of detail; a higher score means a better response. Give equal scores only if they are equally
    good. The order in which the responses appear must not influence you, nor their length."""

    prompt: str = dspy.InputField(desc="the conversation so far, ending with the user's request")
    response_a: str = dspy.InputField(desc="assistant A's response")
    response_b: str = dspy.InputField(desc="assistant B's response")
    score_a: Score = dspy.OutputField(desc="assistant A's score, 1 (worst) to 10 (best)")
    score_b: Score = dspy.OutputField(desc="assistant B's score, 1 (worst) to 10 (best)")
    rationale: str = dspy.OutputField(desc="one short sentence explaining the scores")


class CompareResponsesWithReference(dspy.Signature):
    """You are a strict, impartial judge. Two assistants answered the same user prompt, and a
    reference answer is given. Rate each response on a scale of 1 to 10 by how correct and complete
    it is compared with the reference, and how helpful and harmless it is; a higher score means a
    better response. The order in which the responses appear must not influence you, nor their length."""

    prompt: str = dspy.InputField(desc="the conversation so far, ending with the user's request")
    reference: str = dspy.InputField(desc="a reference answer, assumed correct")
    response_a: str = dspy.InputField(desc="assistant A's response")
    response_b: str = dspy.InputField(desc="assistant B's response")
    score_a: Score = dspy.OutputField(desc="assistant A's score, 1 (worst) to 10 (best)")
    score_b: Score = dspy.OutputField(desc="assistant B's score, 1 (worst) to 10 (best)")
    rationale: str = dspy.OutputField(desc="one short sentence explaining the scores")
