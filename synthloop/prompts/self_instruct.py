"""Self-instruct (Wang et al., 2023): propose a new task from sampled ones, then answer it."""

import dspy


class ProposeTask(dspy.Signature):
    """Come up with one new task for an AI assistant. Study the example tasks, then write a new task
    that differs from all of them in topic and in kind (e.g. explain, classify, rewrite, plan,
    compare, brainstorm). The task must be self-contained, answerable in text alone, and written
    as a direct instruction or question in one to three sentences."""

    example_tasks: list[str] = dspy.InputField(desc="existing tasks, for inspiration only")
    new_task: str = dspy.OutputField(desc="the new task, as the user would type it")


class RespondToTask(dspy.Signature):
    """Complete the task as a helpful, knowledgeable assistant: give the full answer itself,
    not a description of how to answer."""

    task: str = dspy.InputField()
    response: str = dspy.OutputField(desc="the complete answer to the task")
