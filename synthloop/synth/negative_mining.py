"""Mining negatives from a corpus: BM25 (bm25s) and embedding nearest neighbours (sentence-transformers),
with the positive excluded and the top ranks skipped (they hold most of the unlabeled positives).

    corpus = Corpus(passages, ids)
    miner = BM25Miner(corpus)               # or EmbeddingMiner(corpus, load_embedder())
    mine(miner, query, positive=text, positive_id="123", skip_top=3, count=5)
        -> [Candidate(text, source="bm25", rank=4, score=...), ...]   # ranks 4..8 among non-positives
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    return _SPACES.sub(" ", text).strip().lower()


@dataclass
class Candidate:
    """A negative candidate and where it came from (rank is 1-based among non-positive passages)."""

    text: str
    source: str
    rank: int | None = None
    score: float | None = None
    doc_id: str | None = None

    def meta(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "text"}


class Corpus:
    def __init__(self, passages: list[str], ids: list[str] | None = None):
        if not passages:
            raise ValueError("the corpus to mine negatives from is empty")
        if ids is not None and len(ids) != len(passages):
            raise ValueError("corpus ids and passages differ in number")
        self.passages = passages
        self.ids = ids
        self.normalized = [normalize(p) for p in passages]

    @classmethod
    def from_rows(cls, rows: Iterable[dict[str, Any]]) -> Corpus:
        passages, ids = [], []
        for row in rows:
            if "passage" not in row:
                raise KeyError(f"corpus rows need a 'passage' column (map one with columns: {{passage: ...}}); "
                               f"got {', '.join(row)}")
            passages.append(str(row["passage"]))
            ids.append(None if row.get("id") is None else str(row["id"]))
        return cls(passages, ids if all(i is not None for i in ids) else None)

    def __len__(self) -> int:
        return len(self.passages)

    def is_positive(self, index: int, positive: str, positive_id: str | None) -> bool:
        if positive_id is not None and self.ids is not None and self.ids[index] == str(positive_id):
            return True
        return self.normalized[index] == normalize(positive)


class Miner(Protocol):
    name: str
    corpus: Corpus

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The k best (corpus index, score) for the query, best first."""


class BM25Miner:
    name = "bm25"

    def __init__(self, corpus: Corpus):
        import bm25s

        self.corpus = corpus
        self._bm25s = bm25s
        self.retriever = bm25s.BM25()
        self.retriever.index(bm25s.tokenize(corpus.passages, stopwords="en", show_progress=False),
                             show_progress=False)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        tokens = self._bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)
        known = [[t for t in tokens[0] if t in self.retriever.vocab_dict]]
        if not known[0]:
            return []
        docs, scores = self.retriever.retrieve(known, k=min(k, len(self.corpus)), show_progress=False)
        return [(int(d), float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]


class EmbeddingMiner:
    name = "embedding"

    def __init__(self, corpus: Corpus, embedder, *, batch_size: int = 64, show_progress: bool = False):
        from synthloop.embeddings import embed_lock

        self.corpus = corpus
        self.embedder = embedder
        with embed_lock:
            self.embeddings = embedder.encode(corpus.passages, batch_size=batch_size, convert_to_tensor=True,
                                              normalize_embeddings=True, show_progress_bar=show_progress)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        from sentence_transformers.util import semantic_search

        from synthloop.embeddings import embed_lock

        with embed_lock:
            q = self.embedder.encode([query], convert_to_tensor=True, normalize_embeddings=True)
        hits = semantic_search(q, self.embeddings, top_k=min(k, len(self.corpus)))[0]
        return [(int(h["corpus_id"]), float(h["score"])) for h in hits]


def mine(miner: Miner, query: str, *, positive: str, positive_id: str | None = None, skip_top: int = 3,
         count: int = 5) -> list[Candidate]:
    """Candidates at ranks skip_top+1 .. skip_top+count, ranked among the passages that are not the positive."""
    corpus = miner.corpus
    depth = skip_top + count + 8  # room for the positive and its duplicates
    ranked = [(i, s) for i, s in miner.search(query, depth) if not corpus.is_positive(i, positive, positive_id)]
    out = []
    for rank, (index, score) in enumerate(ranked, start=1):
        if rank <= skip_top:
            continue
        if len(out) == count:
            break
        doc_id = corpus.ids[index] if corpus.ids is not None else None
        out.append(Candidate(corpus.passages[index], miner.name, rank=rank, score=round(score, 4), doc_id=doc_id))
    return out
