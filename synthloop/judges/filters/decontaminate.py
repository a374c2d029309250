"""Decontamination against evaluation sets: drop records that share a word n-gram with any eval example
(GPT-3's 13-gram rule by default). Every match is reported: which record, which eval set and row, and
the shared n-gram, so a contamination report can be read, not just counted."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from synthloop.configs import Config
from synthloop.judges.filters.base import Dropped, Filter, FilterResult, record_id, record_text
from synthloop.text import normalize_words


class EvalSet(Config):
    path: Path = Field(description="An evaluation set: any file or directory `inputs.path` accepts.")
    fields: list[str] = Field(default_factory=list, description="Columns holding eval text (default: every string "
                                                                "or list-of-strings column).")
    name: str | None = Field(None, description="Name in the report (default: the file name).")


class DecontaminateConfig(Config):
    kind: Literal["decontaminate"] = "decontaminate"
    eval_sets: list[EvalSet] = Field(description="Evaluation sets to decontaminate against.")
    field: str = Field("all", description="Record text checked: all, prompt, response, or a column.")
    n: int = Field(13, ge=3, description="Words per n-gram (13 as in GPT-3's contamination study).")
    max_matches_reported: int = Field(1000, ge=0, description="Most matches listed in the report.")


def _ngrams(text: str, n: int) -> list[str]:
    words = normalize_words(text).split()
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def _key(gram: str) -> bytes:
    return hashlib.blake2b(gram.encode(), digest_size=8).digest()


def _texts(row: dict[str, Any], fields: list[str]) -> list[str]:
    out = []
    for name, value in row.items():
        if fields and name not in fields:
            continue
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list):
            out.extend(v for v in value if isinstance(v, str))
    return out


class Decontaminate(Filter):
    kind = "decontaminate"

    def __init__(self, config: DecontaminateConfig):
        from synthloop.runs.inputs import DatasetInput

        self.config = config
        self.index: dict[bytes, tuple[str, int]] = {}
        self.sizes: dict[str, int] = {}
        for spec in config.eval_sets:
            name = spec.name or Path(spec.path).name
            rows = 0
            for row_index, row in enumerate(DatasetInput(path=spec.path).rows()):
                rows += 1
                for text in _texts(row, spec.fields):
                    for gram in _ngrams(text, config.n):
                        self.index.setdefault(_key(gram), (name, row_index))
            self.sizes[name] = rows

    def apply(self, records: Sequence[dict[str, Any]]) -> FilterResult:
        kept, dropped, matches = [], [], []
        per_set: dict[str, int] = dict.fromkeys(self.sizes, 0)
        for i, record in enumerate(records):
            hit = None
            for gram in _ngrams(record_text(record, self.config.field), self.config.n):
                found = self.index.get(_key(gram))
                if found:
                    hit = (gram, found)
                    break
            if hit is None:
                kept.append(record)
                continue
            gram, (eval_name, eval_row) = hit
            per_set[eval_name] += 1
            match = {"record": record_id(record, i), "eval_set": eval_name, "eval_row": eval_row, "ngram": gram}
            if len(matches) < self.config.max_matches_reported:
                matches.append(match)
            dropped.append(Dropped(record, f"contaminated: shares a {self.config.n}-gram with {eval_name} row "
                                           f"{eval_row}: {gram[:80]!r}", match))
        return FilterResult(kept, dropped, {"eval_sets": self.sizes, "matches_per_eval_set": per_set,
                                            "matches": matches, "ngrams_indexed": len(self.index)})
