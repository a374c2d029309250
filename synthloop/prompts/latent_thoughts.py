"""Latent thoughts (BoLT, "Reasoning to Learn from Latent Thoughts"): infer the thinking behind a document."""

import dspy


class InferLatentThought(dspy.Signature):
    """The document below was written by an expert who thought before writing. Reconstruct the latent
    thoughts behind it: the background knowledge, reasoning and intermediate steps the author had in mind
    but did not write out, so that a reader who studies these thoughts first finds the document easy to
    follow. Write the thoughts themselves, not a summary, and do not copy sentences from the document."""

    document: str = dspy.InputField()
    thought: str = dspy.OutputField(desc="the author's latent thoughts: background, reasoning and steps")
