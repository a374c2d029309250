"""A judge that scores how close a response stays to its reference in meaning (embedding cosine).

Used to check that a rewrite is faithful to its source (`synth.rewrite`) and as a metric when compiling
such programs. It measures closeness in topic and content, not factual equivalence: a rewrite that
changes one number scores almost as high as a faithful one. Pair it with an LLM check when that matters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synthloop.embeddings import DEFAULT_EMBEDDER, embed_lock, load_embedder
from synthloop.judges.base import Judge, JudgeItem, Judgement


class EmbeddingSimilarityJudge(Judge):
    """Cosine similarity (clipped to [0, 1]) of the response to the reference, or to the prompt if there is none."""

    name = "embedding_similarity"
    scale = (0.0, 1.0)

    def __init__(self, model: str = DEFAULT_EMBEDDER):
        self.model = model

    def score(self, items: Sequence[JudgeItem]) -> list[Judgement]:
        if not items:
            return []
        anchors = [str(i.reference) if i.reference is not None else i.prompt for i in items]
        vectors = embed(anchors + [i.response for i in items], self.model)
        n = len(items)
        cosines = np.clip(np.sum(vectors[:n] * vectors[n:], axis=1), 0.0, 1.0)
        return [
            Judgement(score=float(c), rationale=f"cosine {c:.2f}")
            for c in cosines
        ]

    def describe(self) -> dict:
        return {"judge": self.name, "model": self.model}


def embed(texts: list[str], model: str = DEFAULT_EMBEDDER) -> np.ndarray:
    """Unit-length embeddings, one row per text (MiniLM reads the first 256 word pieces of each)."""
    encoder = load_embedder(model)
    with embed_lock:
        return encoder.encode(list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                              show_progress_bar=False)
