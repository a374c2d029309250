"""Task generation from raw text (Bonito, Nayak et al., 2024): a passage in, a training task about it out.

One signature per built-in task type: small models write a question when the field is called
`question`, and a topic title when it is called `task`. Labelled types (yes-no QA, NLI) are
conditioned on a target label drawn in turn, so the labels of a dataset come out balanced.
`GenerateTask` / `GenerateLabeledTask` carry task types defined in a config (their description is
appended to the instruction).
"""

from typing import Literal

import dspy


class YesNoQuestion(dspy.Signature):
    """Read the passage and write a yes-no question about one fact stated in it. According to the passage,
    the correct answer to your question must be the given answer."""

    passage: str = dspy.InputField()
    answer: Literal["yes", "no"] = dspy.InputField(desc="the answer your question must have")
    question: str = dspy.OutputField(desc="a question starting with Is, Are, Does, Do, Did, Was, Can or Has")


class ExtractiveQuestion(dspy.Signature):
    """Copy a short phrase from the passage (a name, a number or a few words), then write a question about the
    passage that this phrase answers."""

    passage: str = dspy.InputField()
    answer: str = dspy.OutputField(desc="a short phrase copied word for word from the passage")
    question: str = dspy.OutputField(desc="a question starting with What, Which, Who, When, Where or How")


class NLIHypothesis(dspy.Signature):
    """Read the passage (the premise) and write one new sentence (the hypothesis) with the given relation to
    it: entailment means the passage shows the sentence is true; contradiction means the passage shows it
    is false; neutral means the passage does not say whether it is true."""

    passage: str = dspy.InputField()
    label: Literal["entailment", "neutral", "contradiction"] = dspy.InputField(desc="the relation to create")
    hypothesis: str = dspy.OutputField(desc="one sentence")


class OpenQuestion(dspy.Signature):
    """Read the passage and write a question about it that needs an explanation (why, how, or what for),
    then answer the question in one to three sentences using the passage."""

    passage: str = dspy.InputField()
    question: str = dspy.OutputField(desc="a question starting with Why, How or What")
    answer: str = dspy.OutputField(desc="the answer, in one to three sentences")


class SummaryRequest(dspy.Signature):
    """Read the passage, write an instruction that asks for a short summary of it, then write that summary in
    one to three sentences of your own."""

    passage: str = dspy.InputField()
    instruction: str = dspy.OutputField(desc="e.g. Summarize the study in two sentences.")
    summary: str = dspy.OutputField(desc="the summary")


class GenerateTask(dspy.Signature):
    """Read the passage and create one training task about it for an AI assistant, with the correct answer.
    The task must be answerable from the passage; do not copy the passage into the task."""

    passage: str = dspy.InputField()
    task: str = dspy.OutputField(desc="the question or instruction")
    answer: str = dspy.OutputField(desc="the correct answer, based on the passage")


class GenerateLabeledTask(dspy.Signature):
    """Read the passage and create one training task about it for an AI assistant whose correct answer,
    according to the passage, is the given answer. Do not copy the passage into the task."""

    passage: str = dspy.InputField()
    answer: str = dspy.InputField(desc="the answer the task must have")
    task: str = dspy.OutputField(desc="the question or instruction")


BUILTIN_SIGNATURES = {s.__name__: s for s in (YesNoQuestion, ExtractiveQuestion, NLIHypothesis, OpenQuestion,
                                              SummaryRequest)}
