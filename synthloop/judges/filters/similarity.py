"""Drift: drop records whose text strays from what it should stay close to (embedding cosine, all-MiniLM-L6-v2).

    {kind: similarity, field: response, to: prompt, min: 0.2}       # the answer is about the instruction
    {kind: similarity, field: expansions, to: parts, min: 0.5}      # each expansion stays on its source part

When both columns hold lists of the same length, the pairs are compared element by element and the
lowest cosine decides (one part that drifted drops the record). MiniLM reads the first 256 word pieces
of a text, so compare parts of long texts rather than whole ones. Cosine measures topic and content, not
facts: a text that changes a number stays close.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from synthloop.configs import Config
from synthloop.judges.filters.base import Dropped, Filter, FilterResult, record_text


class SimilarityConfig(Config):
    kind: Literal["similarity"] = "similarity"
    field: str = Field("response", description="The text checked: response, prompt, all, or a column (a column "
                                               "holding a list compares element by element with `to`).")
    to: str = Field("prompt", description="What it must stay close to: prompt, response, all, or a column.")
    min: float | None = Field(0.2, ge=-1, le=1, description="Drop records whose cosine is below this.")
    max: float | None = Field(None, ge=-1, le=1, description="Drop records whose cosine is above this (copies).")
    encoder: str = Field("all-minilm-l6-v2", description="Sentence-transformers model (default: the offline MiniLM).")

    @model_validator(mode="after")
    def _bounds(self) -> SimilarityConfig:
        if self.min is None and self.max is None:
            raise ValueError("similarity: set min, max or both")
        return self


def _texts(record: dict[str, Any], name: str) -> list[str]:
    value = record.get(name) if name not in ("response", "prompt", "all") else None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return [record_text(record, name)]


class SimilarityFilter(Filter):
    kind = "similarity"

    def __init__(self, config: SimilarityConfig):
        self.config = config

    def cosines(self, records: Sequence[dict[str, Any]]) -> list[np.ndarray]:
        """Per record, the cosine of each (text, anchor) pair."""
        from synthloop.judges.similarity import embed

        pairs = []
        for record in records:
            texts, anchors = _texts(record, self.config.field), _texts(record, self.config.to)
            if len(anchors) == 1 and len(texts) > 1:
                anchors = anchors * len(texts)
            if len(texts) != len(anchors):
                raise ValueError(f"similarity: record {record.get('id', '?')}: {len(texts)} texts in "
                                 f"{self.config.field!r} but {len(anchors)} in {self.config.to!r}")
            pairs.append((texts, anchors))
        flat = [t for texts, anchors in pairs for t in (*texts, *anchors)]
        vectors = embed(flat, self.config.encoder) if flat else np.zeros((0, 1))
        out, at = [], 0
        for texts, _ in pairs:
            k = len(texts)
            a, b = vectors[at:at + k], vectors[at + k:at + 2 * k]
            out.append(np.sum(a * b, axis=1))
            at += 2 * k
        return out

    def apply(self, records: Sequence[dict[str, Any]]) -> FilterResult:
        kept, dropped = [], []
        lows = []
        for record, cos in zip(records, self.cosines(records), strict=True):
            worst = int(np.argmin(cos)) if len(cos) else 0
            low, high = float(np.min(cos)), float(np.max(cos))
            lows.append(low)
            where = f" (element {worst})" if len(cos) > 1 else ""
            detail = {"cosines": [round(float(c), 3) for c in cos]}
            if self.config.min is not None and low < self.config.min:
                dropped.append(Dropped(record, f"drift: cosine {low:.2f} of {self.config.field} to {self.config.to}"
                                               f"{where} < {self.config.min:g}", detail))
            elif self.config.max is not None and high > self.config.max:
                dropped.append(Dropped(record, f"too similar: cosine {high:.2f} of {self.config.field} to "
                                               f"{self.config.to} > {self.config.max:g}", detail))
            else:
                kept.append(record)
        extra = {"cosine_mean": round(float(np.mean(lows)), 4)} if lows else {}
        return FilterResult(kept, dropped, extra)
