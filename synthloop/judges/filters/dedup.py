"""Exact and near-duplicate removal. Near duplicates: MinHash signatures of word n-gram shingles,
indexed by LSH (datasketch), confirmed by the signatures' estimated Jaccard similarity. The first
record of a cluster is kept; each later one is dropped naming the record it duplicates."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from synthloop.configs import Config
from synthloop.judges.filters.base import Dropped, Filter, FilterResult, record_id, record_text
from synthloop.text import normalize_words


class ExactDedupConfig(Config):
    kind: Literal["exact_dedup"] = "exact_dedup"
    field: str = Field("all", description="Text compared: all, prompt, response, or a column.")


class ExactDedup(Filter):
    kind = "exact_dedup"

    def __init__(self, config: ExactDedupConfig | None = None):
        self.config = config or ExactDedupConfig()

    def apply(self, records: Sequence[dict[str, Any]]) -> FilterResult:
        seen: dict[str, Any] = {}
        kept, dropped = [], []
        for i, record in enumerate(records):
            key = hashlib.sha1(normalize_words(record_text(record, self.config.field)).encode()).hexdigest()
            if key in seen:
                dropped.append(Dropped(record, f"exact duplicate of record {seen[key]}", {"of": seen[key]}))
            else:
                seen[key] = record_id(record, i)
                kept.append(record)
        return FilterResult(kept, dropped)


class NearDedupConfig(Config):
    kind: Literal["near_dedup"] = "near_dedup"
    field: str = Field("all", description="Text compared: all, prompt, response, or a column.")
    threshold: float = Field(0.7, gt=0, le=1, description="Jaccard similarity (of shingle sets) at which two "
                                                          "records count as near-duplicates.")
    shingle_words: int = Field(3, ge=1, description="Words per shingle.")
    num_perm: int = Field(128, ge=16, description="MinHash permutations (more: more exact, slower).")
    seed: int = Field(1, description="MinHash seed.")


class NearDedup(Filter):
    kind = "near_dedup"

    def __init__(self, config: NearDedupConfig | None = None):
        self.config = config or NearDedupConfig()

    def signature(self, text: str):
        """The MinHash signature of `text`'s word shingles (what near-duplicates are found by)."""
        from datasketch import MinHash

        words = normalize_words(text).split()
        n = self.config.shingle_words
        shingles = {" ".join(words[i:i + n]) for i in range(max(1, len(words) - n + 1))} if words else {""}
        sig = MinHash(num_perm=self.config.num_perm, seed=self.config.seed)
        sig.update_batch([s.encode() for s in shingles])
        return sig

    def apply(self, records: Sequence[dict[str, Any]]) -> FilterResult:
        from datasketch import MinHashLSH

        lsh = MinHashLSH(threshold=self.config.threshold, num_perm=self.config.num_perm)
        signatures: dict[str, Any] = {}
        kept, dropped = [], []
        for i, record in enumerate(records):
            sig = self.signature(record_text(record, self.config.field))
            best, best_sim = None, 0.0
            for key in lsh.query(sig):  # LSH candidates, confirmed by the estimated Jaccard
                sim = sig.jaccard(signatures[key])
                if sim >= self.config.threshold and sim > best_sim:
                    best, best_sim = key, sim
            if best is not None:
                dropped.append(Dropped(record, f"near-duplicate (Jaccard ~{best_sim:.2f}) of record {best}",
                                       {"of": best, "jaccard": round(best_sim, 3)}))
                continue
            key = str(record_id(record, i))
            if key in signatures:
                key = f"{key}#{i}"
            signatures[key] = sig
            lsh.insert(key, sig)
            kept.append(record)
        return FilterResult(kept, dropped)
