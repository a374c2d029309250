"""Task generation from raw text (Bonito, Nayak et al., 2024): a passage in, a training task about it out.

Each task type (yes-no QA, extractive QA, NLI, ...) adds its own description to the instruction, and a
labelled type narrows `answer` to its labels (constrained decoding enforces them).
"""

import dspy


class GenerateTask(dspy.Signature):
    """Create one training task about the passage for an AI assistant, together with its correct answer.
    The task must be answerable from the passage alone. Write the task without copying the passage into it:
    the passage is shown to the assistant next to your task."""

    passage: str = dspy.InputField(desc="the source text the task is about")
    task: str = dspy.OutputField(desc="the question, statement or instruction of the task")
    answer: str = dspy.OutputField(desc="the correct answer to the task, based on the passage")
