"""Hard negatives for retriever training ("Don't Retrieve, Generate"): passage -> query, query -> a passage
that looks relevant but does not answer it, and a judge that catches "negatives" that do answer it."""

import dspy


class WriteQuery(dspy.Signature):
    """Write the search query a person would type to find this passage: a short, specific question or
    keyword query that the passage answers. Use your own words; do not copy a sentence from the passage."""

    passage: str = dspy.InputField()
    query: str = dspy.OutputField(desc="one search query, under 25 words")


class WriteHardNegative(dspy.Signature):
    """Write a passage that a search engine would wrongly return for the query: it is on the same topic and
    uses the query's key terms, and it reads like a real document, but it does NOT answer the query (for
    example it discusses a related question, a different population, condition, method or outcome).
    Do not mention the query or say that the passage does not answer it."""

    query: str = dspy.InputField()
    passage: str = dspy.OutputField(desc="a realistic passage of 60 to 150 words that does not answer the query")


class JudgeAnswersQuery(dspy.Signature):
    """Decide whether the passage answers the query, fully or in part. A passage that is only on the same
    topic does not answer it."""

    query: str = dspy.InputField()
    passage: str = dspy.InputField()
    answers_query: bool = dspy.OutputField(desc="true if the passage answers the query")
