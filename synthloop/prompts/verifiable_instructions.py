"""Verifiable instructions (in the spirit of AutoIF, Tulu 3's IFEval-style data and Instruct-SkillMix with
constraints as the skills): a task and checkable constraints, written as one natural request."""

import dspy


class StateConstraintsInRequest(dspy.Signature):
    """Rewrite the task and its constraints as one request that a user might send to an AI assistant. Keep the
    task as it is, with any text or example it includes, and state every constraint in the request in natural
    words. Keep each constraint's exact values: numbers, quoted words and phrases, letters, markers such as P.S.
    or ***, and languages. Do not answer the request and do not add constraints of your own."""

    task: str = dspy.InputField(desc="what the user wants done")
    constraints: list[str] = dspy.InputField(desc="rules the answer must follow; the request must state each one")
    request: str = dspy.OutputField(desc="the user's request: the task and every constraint, in the user's words")


class StateConstraintsNaturally(dspy.Signature):
    """Restate the constraints as a user would add them after the task, in natural words addressed to the
    assistant. Keep each constraint's exact values: numbers, quoted words and phrases, letters, markers such as
    P.S. or ***, and languages. Do not repeat or answer the task, and do not add constraints of your own."""

    task: str = dspy.InputField(desc="the task the constraints apply to, for context only")
    constraints: list[str] = dspy.InputField(desc="rules the answer must follow; state every one")
    constraints_text: str = dspy.OutputField(desc="the constraints in the user's words, one to four sentences")
