"""Rewriting text into a target style (WRAP, Maini et al., 2024), and checking the rewrite stayed faithful."""

import dspy


class RewriteInStyle(dspy.Signature):
    """Rewrite the text in the target style. Keep every fact of the text and add no facts, numbers or claims
    that are not in it; fix grammar and remove noise such as navigation text or repeated phrases."""

    text: str = dspy.InputField(desc="the source text")
    rewrite: str = dspy.OutputField(desc="the rewritten text")


class CheckFaithfulness(dspy.Signature):
    """Decide whether the rewrite is faithful to the source: it states nothing that the source does not
    support, and it does not contradict the source."""

    source: str = dspy.InputField()
    rewrite: str = dspy.InputField()
    faithful: bool = dspy.OutputField(desc="true if faithful, false otherwise")
