"""Instruct-SkillMix (Kaur et al., 2024): extract skills, then write instructions that need a random mix of them.

Stage 1 lists skills, either those a given instruction needs or those a topic calls for; stage 2 writes an
instruction that exercises k drawn skills at once and answers it.
"""

import dspy


class SkillsOfInstruction(dspy.Signature):
    """List the skills an AI assistant needs to answer the request well. A skill is an ability, such as a
    kind of writing, of reasoning or of knowledge, named in two to four words."""

    instruction: str = dspy.InputField(desc="a request a user sent to an AI assistant")
    skills: list[str] = dspy.OutputField(desc="one to five skill names")


class SkillsOfTopic(dspy.Signature):
    """List the skills an AI assistant needs to help people with requests about the topic. A skill is an
    ability, such as a kind of writing, of reasoning or of knowledge, named in two to four words."""

    topic: str = dspy.InputField()
    skills: list[str] = dspy.OutputField(desc="three to eight skill names")


class WriteSkillMixInstruction(dspy.Signature):
    """Write a request that a user might send to an AI assistant, of the given kind. Answering it must need all
    the listed skills together. Write it as the user would, in one to four sentences, with any text it refers
    to included."""

    skills: list[str] = dspy.InputField(desc="the skills the request must require, all of them")
    query_type: str = dspy.InputField(desc="the kind of request to write")
    instruction: str = dspy.OutputField(desc="the user's request")


class RespondWithSkills(dspy.Signature):
    """Answer the user's request as a helpful, knowledgeable assistant. Give the complete answer itself, not a
    description of how to answer, and make sure it shows every one of the listed skills."""

    instruction: str = dspy.InputField(desc="the user's request")
    skills: list[str] = dspy.InputField(desc="skills the answer must show")
    response: str = dspy.OutputField(desc="the complete answer")
