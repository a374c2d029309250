"""Hard negatives for retriever training: (query, positive, negatives) rows for sentence-transformers.

Per input passage (the positive):
  (a) the query is taken from the input, or written from the passage by the model (`WriteQuery`);
  (b) corpus-free negatives: the model writes passages that look relevant to the query but do not answer it
      (`WriteHardNegative`, "Don't Retrieve, Generate");
  (c) mined negatives: BM25 (bm25s) and embedding nearest neighbours (all-MiniLM-L6-v2) from a corpus, with
      the positive excluded and the top `skip_top` ranks skipped;
  (d) a false-negative guard drops candidates that likely answer the query: embedding thresholds relative
      to the positive (default), an LLM judge, or both.
Candidates are taken round-robin over `sources` in order; the first `num_negatives` that pass the guard
become the record's negatives.

Record format (sentence-transformers' MultipleNegativesRankingLoss takes the columns in this order):
  anchor, positive, negative_1, ..., negative_k    the training columns (strings)
  query_generated                                   whether the anchor was written by the model
  positive_id                                       the input's id, when it has one
  negatives_meta                                    per negative: source, rank, score, similarities
  dropped                                           per rejected candidate: text, source, reason
`training_dataset(run)` returns just the training columns as a `datasets.Dataset`.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import dspy
from pydantic import Field, model_validator

from synthloop.configs import Config
from synthloop.engines.sample_context import child_seeds
from synthloop.prompts.hard_negatives import WriteHardNegative, WriteQuery
from synthloop.runs.inputs import DatasetInput
from synthloop.synth.base import SynthProgram
from synthloop.synth.negative_mining import BM25Miner, Candidate, Corpus, EmbeddingMiner, mine, normalize

Source = Literal["generated", "bm25", "embedding"]
_LABEL = re.compile(r"^\s*(?:search\s+)?(?:query|passage|question)\s*:\s*", re.IGNORECASE)


class HardNegativesConfig(Config):
    kind: Literal["hard_negatives"] = "hard_negatives"
    inputs: DatasetInput = Field(
        description="Rows with the positive `passage` and, optionally, its `query` and `positive_id` "
        "(map column names with inputs.columns, e.g. {passage: text, query: question})."
    )
    corpus: DatasetInput | None = Field(
        None,
        description="Passages to mine negatives from (column `passage`, optional `id`). "
        "Default: every passage of the inputs file (skip/limit ignored). Read only when sources include bm25 "
        "or embedding.",
    )
    sources: list[Source] = Field(
        ["generated"],
        min_length=1,
        description="Where negative candidates come from, in order of preference: generated (written by the "
        "model from the query alone, corpus-free), bm25 and embedding (mined from the corpus).",
    )
    num_negatives: int = Field(1, ge=1, le=32, description="Negatives per row (columns negative_1..k).")
    generated_per_query: int = Field(
        2, ge=0, le=16, description="Passages the model writes per query (more than num_negatives leaves room "
        "for the guard).")
    mined_per_query: int = Field(5, ge=0, le=100, description="Candidates each miner returns per query.")
    skip_top: int = Field(
        3, ge=0, description="Mining: ranks skipped after the positive (the top hits are often unlabeled "
        "positives).")
    generate_queries: Literal["auto", "always", "never"] = Field(
        "auto", description="auto: write a query only for rows without one; always: write one for every row "
        "(passage -> query); never: rows without a query are an error.")
    guard: Literal["embedding", "llm", "both", "none"] = Field(
        "embedding", description="False-negative guard: embedding thresholds (below), an LLM judge asking "
        "whether the passage answers the query, both, or none.")
    relative_margin: float = Field(
        0.05, ge=0, lt=1, description="Embedding guard: drop a candidate whose similarity to the query exceeds "
        "(1 - relative_margin) x the positive's (sentence-transformers' meaning).")
    max_positive_similarity: float = Field(
        0.9, gt=0, le=1, description="Embedding guard: drop a candidate at least this similar to the positive.")
    embedding_model: str = Field(
        "all-minilm-l6-v2", description="Embedding model for mining and the guard: all-minilm-l6-v2 (embedded, "
        "offline), a local directory or a hub id.")

    @model_validator(mode="after")
    def _sources_have_candidates(self):
        if "generated" in self.sources and self.generated_per_query == 0:
            raise ValueError("sources include generated but generated_per_query is 0")
        if set(self.sources) & {"bm25", "embedding"} and self.mined_per_query == 0:
            raise ValueError("sources include a miner (bm25, embedding) but mined_per_query is 0")
        return self


def clean(text: str) -> str:
    text = text.strip().strip('"').strip()
    return _LABEL.sub("", text, count=1).strip()


class HardNegatives(SynthProgram):
    name = "hard_negatives"
    config_class = HardNegativesConfig

    def __init__(self, config: HardNegativesConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.write_query = dspy.Predict(WriteQuery)
        self.write_negative = dspy.Predict(WriteHardNegative)
        from synthloop.judges.false_negatives import LLMGuard

        self.llm_guard = LLMGuard()
        self._setup_lock = threading.Lock()
        self._miners: list | None = None
        self._embedding_guard = None

    # -- inputs and lazily built resources ------------------------------------------------------------
    def inputs(self) -> Iterator[dict[str, Any]]:
        for row in self.config.inputs.rows():
            if "passage" not in row:
                raise KeyError(f"{self.config.inputs.path}: rows need a 'passage' column "
                               f"(map one with inputs.columns); got {', '.join(row)}")
            item = {"passage": str(row["passage"])}
            if row.get("query"):
                item["query"] = str(row["query"])
            if row.get("positive_id") is not None:
                item["positive_id"] = str(row["positive_id"])
            yield item

    def _embedder(self):
        from synthloop.embeddings import load_embedder

        return load_embedder(self.config.embedding_model)

    def miners(self) -> list:
        with self._setup_lock:
            if self._miners is None:
                wanted = [s for s in self.config.sources if s != "generated"]
                miners = []
                if wanted:
                    source = self.config.corpus or self.config.inputs.model_copy(update={"skip": 0, "limit": None})
                    if self.config.corpus is None:  # the inputs' passages, with their ids
                        rows = ({"passage": r["passage"], "id": r.get("positive_id")} for r in source.rows())
                    else:
                        rows = source.rows()
                    corpus = Corpus.from_rows(rows)
                    for name in wanted:
                        miners.append(BM25Miner(corpus) if name == "bm25" else EmbeddingMiner(corpus, self._embedder()))
                self._miners = miners
            return self._miners

    def embedding_guard(self):
        from synthloop.judges.false_negatives import EmbeddingGuard

        with self._setup_lock:
            if self._embedding_guard is None:
                self._embedding_guard = EmbeddingGuard(self._embedder(), relative_margin=self.config.relative_margin,
                                                       max_positive_similarity=self.config.max_positive_similarity)
            return self._embedding_guard

    # -- the program ------------------------------------------------------------------------------------
    async def aforward(self, passage: str, query: str | None = None, positive_id: str | None = None,
                       ) -> dspy.Prediction:
        cfg = self.config
        generated_query = query is None or cfg.generate_queries == "always"
        if generated_query:
            if cfg.generate_queries == "never":
                raise ValueError("a row has no query and generate_queries is never")
            query = clean((await self.write_query.acall(passage=passage)).query)
        by_source: dict[str, list[Candidate]] = {}
        if "generated" in cfg.sources and cfg.generated_per_query:
            outs = await asyncio.gather(*[self.write_negative.acall(query=query, config={"seed": s})
                                          for s in child_seeds(cfg.generated_per_query)])
            by_source["generated"] = [Candidate(clean(o.paragraph), "generated") for o in outs]
        for miner in await asyncio.to_thread(self.miners):
            by_source[miner.name] = await asyncio.to_thread(
                mine, miner, query, positive=passage, positive_id=positive_id, skip_top=cfg.skip_top,
                count=cfg.mined_per_query)
        return await self._select(query, passage, positive_id, generated_query, by_source)

    async def _select(self, query, passage, positive_id, generated_query, by_source) -> dspy.Prediction:
        cfg = self.config
        ordered = [c for group in _round_robin([by_source.get(s, []) for s in cfg.sources]) for c in group]
        dropped: list[dict] = []
        seen = {normalize(passage)}
        candidates: list[Candidate] = []
        for cand in ordered:
            key = normalize(cand.text)
            if not key:
                dropped.append({"text": cand.text, "source": cand.source, "reason": "empty"})
            elif key in seen:
                reason = "identical to the positive" if key == normalize(passage) else "duplicate candidate"
                dropped.append({"text": cand.text, "source": cand.source, "reason": reason})
            else:
                seen.add(key)
                candidates.append(cand)
        texts = [c.text for c in candidates]
        reasons: list[str | None] = [None] * len(candidates)
        scores: list[dict] = [{} for _ in candidates]
        if cfg.guard in ("embedding", "both") and texts:
            reasons, scores = await asyncio.to_thread(self.embedding_guard().check, query, passage, texts)
        if cfg.guard in ("llm", "both"):
            todo = [i for i, r in enumerate(reasons) if r is None]
            verdicts = await self.llm_guard.acheck(query, [texts[i] for i in todo])
            for i, verdict in zip(todo, verdicts, strict=True):
                reasons[i] = verdict
        negatives, meta = [], []
        for cand, reason, score in zip(candidates, reasons, scores, strict=True):
            if reason is not None:
                dropped.append({"text": cand.text, "source": cand.source, "reason": reason, **score})
            elif len(negatives) < cfg.num_negatives:
                negatives.append(cand.text)
                meta.append({**cand.meta(), **score})
        return dspy.Prediction(anchor=query, positive=passage, negatives=negatives, negatives_meta=meta,
                               dropped=dropped, query_generated=generated_query, positive_id=positive_id)

    def to_record(self, inputs: dict[str, Any], prediction: dspy.Prediction) -> dict[str, Any]:
        record: dict[str, Any] = {"anchor": prediction.anchor, "positive": prediction.positive}
        for i in range(self.config.num_negatives):
            record[f"negative_{i + 1}"] = prediction.negatives[i] if i < len(prediction.negatives) else None
        record.update(query_generated=prediction.query_generated, positive_id=prediction.positive_id,
                      negatives_meta=prediction.negatives_meta, dropped=prediction.dropped)
        return record

    def accept(self, record: dict[str, Any]) -> str | None:
        if not record["anchor"].strip():
            return "empty query"
        have = sum(record.get(f"negative_{i + 1}") is not None for i in range(self.config.num_negatives))
        if have < self.config.num_negatives:
            dropped = len(record["dropped"])
            return (f"only {have} of {self.config.num_negatives} negatives ({have + dropped} candidates found, "
                    f"{dropped} dropped)")
        return None


def _round_robin(groups: list[list[Candidate]]) -> Iterator[list[Candidate]]:
    for i in range(max((len(g) for g in groups), default=0)):
        yield [g[i] for g in groups if i < len(g)]



def training_dataset(run: str | Path, num_negatives: int | None = None):
    """The run's records as a `datasets.Dataset` with exactly the columns MultipleNegativesRankingLoss takes:
    anchor, positive, negative_1..k (k: all negatives the records have, or `num_negatives`)."""
    import datasets

    from synthloop.runs.run_dir import RunDir

    rows = list(RunDir(Path(run)).iter_records())
    if not rows:
        raise ValueError(f"{run}: no records")
    k = num_negatives if num_negatives is not None else sum(1 for key in rows[0] if key.startswith("negative_"))
    columns = ["anchor", "positive", *[f"negative_{i + 1}" for i in range(k)]]
    return datasets.Dataset.from_dict({c: [r[c] for r in rows] for c in columns})
