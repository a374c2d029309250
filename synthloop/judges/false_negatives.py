"""False-negative guards: drop "negatives" that actually answer the query (an unlabeled positive trains the
retriever to push away a right answer).

- `EmbeddingGuard`: positive-aware thresholds on an embedding model (NV-Retriever's rule, the same meaning as
  sentence-transformers' `mine_hard_negatives(relative_margin=..., max_score=...)`): a candidate whose
  similarity to the query is within `relative_margin` of the positive's is dropped, and so is one that is a
  near-duplicate of the positive.
- `LLMGuard`: a DSPy judge asks the model whether the passage answers the query (constrained to a boolean).

Both return, per candidate, None (keep) or the reason it is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import dspy

from synthloop.prompts.hard_negatives import JudgeAnswersQuery


class EmbeddingGuard:
    def __init__(self, embedder, *, relative_margin: float = 0.05, max_positive_similarity: float = 0.9):
        self.embedder = embedder
        self.relative_margin = relative_margin
        self.max_positive_similarity = max_positive_similarity

    def similarities(self, query: str, positive: str, candidates: Sequence[str]) -> tuple[float, list, list]:
        """(sim(query, positive), [sim(query, c)], [sim(positive, c)]), cosine."""
        from synthloop.embeddings import embed_lock

        with embed_lock:
            emb = self.embedder.encode([query, positive, *candidates], convert_to_tensor=True,
                                       normalize_embeddings=True)
        q, p, c = emb[0], emb[1], emb[2:]
        return float(q @ p), (c @ q).tolist(), (c @ p).tolist()

    def check(self, query: str, positive: str, candidates: Sequence[str]) -> tuple[list[str | None], list[dict]]:
        """Per candidate: the reason it is dropped (or None), and its similarities for the record."""
        if not candidates:
            return [], []
        pos_sim, q_sims, p_sims = self.similarities(query, positive, candidates)
        bound = (1 - self.relative_margin) * pos_sim
        reasons, scores = [], []
        for qs, ps in zip(q_sims, p_sims, strict=True):
            scores.append({"sim_query": round(qs, 4), "sim_positive": round(ps, 4), "sim_query_positive":
                           round(pos_sim, 4)})
            if ps >= self.max_positive_similarity:
                reasons.append(f"near-duplicate of the positive (similarity {ps:.2f} >= "
                               f"{self.max_positive_similarity})")
            elif qs > bound:
                reasons.append(f"as close to the query as the positive ({qs:.2f} > {1 - self.relative_margin:.2f} "
                               f"x {pos_sim:.2f}): likely answers it")
            else:
                reasons.append(None)
        return reasons, scores


class LLMGuard(dspy.Module):
    """Asks the configured LM, once per candidate (all in flight together), whether it answers the query."""

    def __init__(self):
        super().__init__()
        self.judge = dspy.Predict(JudgeAnswersQuery)

    async def acheck(self, query: str, candidates: Sequence[str]) -> list[str | None]:
        verdicts = await asyncio.gather(*[self.judge.acall(query=query, passage=c) for c in candidates])
        return ["LLM judge: the passage answers the query" if v.answers_query else None for v in verdicts]

    def check(self, query: str, candidates: Sequence[str]) -> list[str | None]:
        return ["LLM judge: the passage answers the query" if self.judge(query=query, passage=c).answers_query
                else None for c in candidates]
