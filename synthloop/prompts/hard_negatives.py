"""Hard negatives for retriever training ("Don't Retrieve, Generate"): passage -> query, query -> a passage
that looks relevant but does not answer it, and a judge that catches "negatives" that do answer it."""

import dspy


class WriteQuery(dspy.Signature):
    """Write the search query a person would type to find this passage: a short, specific question or
    keyword query that the passage answers. Use your own words; do not copy a sentence from the passage."""

    passage: str = dspy.InputField()
    query: str = dspy.OutputField(desc="one search query, under 25 words")


class WriteHardNegative(dspy.Signature):
    """Write a short article paragraph about the subject of the query, using its key words, but about a
    different aspect of the subject, so that it does not answer the query. Write it like a real document (a
    research abstract or an encyclopedia article), and do not repeat the query."""

    query: str = dspy.InputField()
    paragraph: str = dspy.OutputField()


class JudgeAnswersQuery(dspy.Signature):
    """Decide whether the passage answers the query, fully or in part. A passage that is only on the same
    topic does not answer it."""

    query: str = dspy.InputField()
    passage: str = dspy.InputField()
    answers_query: bool = dspy.OutputField(desc="true if the passage answers the query")
