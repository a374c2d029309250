"""Embedding diversity selection: keep the `k` records that cover the set best (k-center greedy over
all-MiniLM-L6-v2 embeddings, cosine distance), or the record nearest each of `k` k-means centroids.
Each dropped record's reason names its nearest kept record and the distance to it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from synthloop.configs import Config
from synthloop.judges.filters.base import Dropped, Filter, FilterResult, record_id, record_text


class DiversityConfig(Config):
    kind: Literal["diversity"] = "diversity"
    k: int = Field(ge=1, description="Records to keep.")
    method: Literal["k_center", "k_means"] = Field("k_center", description="k_center: greedy farthest-point "
                                                   "coverage (keeps outliers); k_means: one record per cluster.")
    field: str = Field("all", description="Text embedded: all, prompt, response, or a column.")
    encoder: str = Field("all-minilm-l6-v2", description="Sentence-transformers model (default: the offline MiniLM).")
    batch_size: int = Field(64, ge=1, description="Texts embedded per batch.")
    seed: int = Field(0, description="First center (k_center) / k-means initialisation.")


def embed(texts: list[str], encoder: str = "all-minilm-l6-v2", batch_size: int = 64) -> np.ndarray:
    """Unit-norm sentence embeddings (sentence-transformers)."""
    from synthloop.embeddings import embed_lock, load_embedder

    with embed_lock:
        return load_embedder(encoder).encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                             convert_to_numpy=True, show_progress_bar=False)


def k_center_greedy(emb: np.ndarray, k: int, first: int = 0) -> list[int]:
    """Farthest-point selection: each new center is the point farthest from every chosen one."""
    chosen = [first]
    dist = 1.0 - emb @ emb[first]
    for _ in range(min(k, len(emb)) - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, 1.0 - emb @ emb[nxt])
    return chosen


class Diversity(Filter):
    kind = "diversity"

    def __init__(self, config: DiversityConfig):
        self.config = config

    def select(self, emb: np.ndarray) -> list[int]:
        k = min(self.config.k, len(emb))
        if self.config.method == "k_center":
            return k_center_greedy(emb, k, first=self.config.seed % len(emb))
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=k, n_init=3, random_state=self.config.seed).fit(emb)
        chosen = []
        for c in range(k):
            members = np.flatnonzero(km.labels_ == c)
            if len(members):
                chosen.append(int(members[np.argmin(((emb[members] - km.cluster_centers_[c]) ** 2).sum(1))]))
        return chosen

    def apply(self, records: Sequence[dict[str, Any]]) -> FilterResult:
        if len(records) <= self.config.k:
            return FilterResult(list(records), [])
        emb = embed([record_text(r, self.config.field) for r in records], self.config.encoder, self.config.batch_size)
        chosen = sorted(set(self.select(emb)))
        chosen_set = set(chosen)
        sims = emb @ emb[chosen].T
        kept, dropped = [], []
        for i, record in enumerate(records):
            if i in chosen_set:
                kept.append(record)
                continue
            j = int(np.argmax(sims[i]))
            near = record_id(records[chosen[j]], chosen[j])
            dropped.append(Dropped(record, f"not selected for diversity (cosine distance {1 - sims[i, j]:.3f} to "
                                           f"kept record {near})", {"nearest": near}))
        return FilterResult(kept, dropped, {"method": self.config.method, "k": self.config.k})
