"""Skill-targeted training (STAT): a teacher names the skills of the inventory a task needs.

The output types are narrowed per inventory (`Literal[<skill names>]`), so under constrained decoding the
teacher can only answer with names from the inventory, and always names at least one (`skill`).
"""

import dspy


class LabelTaskSkills(dspy.Signature):
    """Which of the listed skills does solving this task need? Choose only from the list: first the skill the
    task needs most, then any other listed skill it also really requires (often none)."""

    task: str = dspy.InputField(desc="a task given to a student")
    skill_list: list[str] = dspy.InputField(desc="the skills to choose from, with what each one means")
    skill: str = dspy.OutputField(desc="the name of the skill the task needs most, copied from the list")
    other_skills: list[str] = dspy.OutputField(desc="names of other listed skills it also needs, or an empty list")
