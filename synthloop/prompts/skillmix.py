"""Instruct-SkillMix (Kaur et al., 2024): extract skills, then write instructions that need a random mix of them.

Stage 1 lists skills, either those a given instruction needs or those a topic calls for; stage 2 writes an
instruction that exercises k drawn skills at once and answers it.
"""

import dspy


class SkillsOfInstruction(dspy.Signature):
    """List the skills an AI assistant needs to answer this request well. A skill is a short name of two to
    five words for a specific ability (e.g. "persuasive writing", "unit conversion", "recipe adaptation"),
    not a topic and not a sentence."""

    instruction: str = dspy.InputField(desc="a request a user sent to an AI assistant")
    skills: list[str] = dspy.OutputField(desc="one to five skill names")


class SkillsOfTopic(dspy.Signature):
    """List the skills an AI assistant needs to handle user requests about the topic. A skill is a short name
    of two to five words for a specific ability (e.g. "budget planning", "code debugging", "tone adjustment"),
    not a topic and not a sentence."""

    topic: str = dspy.InputField()
    skills: list[str] = dspy.OutputField(desc="three to eight distinct skill names")


class WriteSkillMixInstruction(dspy.Signature):
    """Write one realistic request that a user might send to an AI assistant. Answering it well must require
    every one of the listed skills at once. The request is self-contained (it includes any text or data it
    refers to) and is written as the user would type it, in one to four sentences."""

    skills: list[str] = dspy.InputField(desc="the skills the request must require, all of them")
    query_type: str = dspy.InputField(desc="the kind of request to write")
    instruction: str = dspy.OutputField(desc="the user's request")


class RespondWithSkills(dspy.Signature):
    """Answer the user's request as a helpful, knowledgeable assistant. Give the complete answer itself, not a
    description of how to answer, and make sure it shows every one of the listed skills."""

    instruction: str = dspy.InputField(desc="the user's request")
    skills: list[str] = dspy.InputField(desc="skills the answer must show")
    response: str = dspy.OutputField(desc="the complete answer")
